/*
 * lpaccel.c - the driver library (see lpaccel.h). C99, freestanding: no
 * libc call; register offsets and fields only from the generated
 * lpaccel_regs.h (offsetof into its lpaccel_t, the _bm/_bp macros).
 */
#include "lpaccel.h"

#include "lpaccel_regs.h"

/* Byte offset of register NAME in the CSR bank. */
#define REG(name) ((uint32_t)offsetof(lpaccel_t, name))
/* Field F of register R in the 32-bit value v. */
#define GET(v, R, F) (((v) & (uint32_t)LPACCEL__##R##__##F##_bm) >> LPACCEL__##R##__##F##_bp)
/* Value v placed in field F of register R. */
#define PUT(v, R, F) (((uint32_t)(v) << LPACCEL__##R##__##F##_bp) & (uint32_t)LPACCEL__##R##__##F##_bm)
/* The widest value field F of register R holds. */
#define MAXV(R, F) ((uint32_t)LPACCEL__##R##__##F##_bm >> LPACCEL__##R##__##F##_bp)

/* Activation exponent header alignment (docs/soc.md section 2). */
#define ACT_HEADER_ALIGN 64u
/* Activations come in blocks of 32 (BFP16). */
#define ACT_BLOCK 32u

static const char *const err_text[LPACCEL_ERR_COUNT] = {
    "ok",
    "argument out of range",
    "address or length not a multiple of 4",
    "MAGIC is not 'LPAC': not an lpaccel, or the link does not reach its CSR bank",
    "register map major version differs from lpaccel_regs.h: rebuild the firmware",
    "device not opened (lpaccel_open)",
    "format not built into this device (CAP_FORMATS)",
    "rows/cols/group outside what the device takes (CAP_MAX_ROWS, CAP_MAX_COLS)",
    "buffer outside the device memory (CAP_MEM_SIZE)",
    "job queue full and no job of this driver to pop; soft reset the device",
    "no job outstanding",
    "the device did not finish in time",
    "a job completed with an error code",
    "completion record out of push order (hardware fault); soft reset the device",
    "bus error (unmapped or read-only register, or memory outside the window)",
    "link: no valid response after every retry (check the port, baud and cable)",
    "link: the bridge refused the command",
    "link: the bridge refused the address (alignment or 4 KiB crossing)",
    "link: the device is not an lpaccel host bridge (LINK_INFO)",
    "I/O error on the byte port",
};

const char *lpaccel_strerror(int err)
{
    if (err < 0 || err >= LPACCEL_ERR_COUNT)
        return "unknown error";
    return err_text[err];
}

const char *lpaccel_format_name(uint32_t format)
{
    static const char *const names[] = LPACCEL_FORMAT_NAMES;
    return format < LPACCEL_FORMAT_COUNT ? names[format] : "?";
}

const char *lpaccel_job_error_text(uint32_t code)
{
    static const char *const texts[] = LPACCEL_GEMV_ERROR_TEXTS;
    return code < LPACCEL_GEMV_ERROR_COUNT ? texts[code] : "reserved job error code";
}

const char *lpaccel_dma_error_name(uint32_t code)
{
    static const char *const names[] = LPACCEL_DMA_ERROR_NAMES;
    return code < LPACCEL_DMA_ERROR_COUNT ? names[code] : "?";
}

uint32_t lpaccel_act_bytes(uint32_t cols)
{
    uint32_t blocks = cols / ACT_BLOCK;
    uint32_t header = (blocks + ACT_HEADER_ALIGN - 1) / ACT_HEADER_ALIGN * ACT_HEADER_ALIGN;
    return header + 2u * cols;
}

uint32_t lpaccel_result_bytes(uint32_t rows)
{
    return 4u * rows;
}

/* --- register access ------------------------------------------------------------ */

int lpaccel_reg_read(lpaccel_dev *dev, uint32_t addr, uint32_t *value)
{
    if (dev == NULL || dev->hal == NULL || value == NULL)
        return LPACCEL_ERR_ARG;
    if (addr % 4u)
        return LPACCEL_ERR_ALIGN;
    return dev->hal->reg_read(dev->hal->ctx, addr, value);
}

int lpaccel_reg_write(lpaccel_dev *dev, uint32_t addr, uint32_t value)
{
    if (dev == NULL || dev->hal == NULL)
        return LPACCEL_ERR_ARG;
    if (addr % 4u)
        return LPACCEL_ERR_ALIGN;
    return dev->hal->reg_write(dev->hal->ctx, addr, value);
}

/* 64-bit registers: low word first, then the high word (the bank makes it atomic). */
static int read64(lpaccel_dev *dev, uint32_t addr, uint64_t *value)
{
    uint32_t lo, hi;
    int err = lpaccel_reg_read(dev, addr, &lo);
    if (err)
        return err;
    err = lpaccel_reg_read(dev, addr + 4u, &hi);
    if (err)
        return err;
    *value = (uint64_t)hi << 32 | lo;
    return LPACCEL_OK;
}

static int write64(lpaccel_dev *dev, uint32_t addr, uint64_t value)
{
    int err = lpaccel_reg_write(dev, addr, (uint32_t)value);
    if (err)
        return err;
    return lpaccel_reg_write(dev, addr + 4u, (uint32_t)(value >> 32));
}

static void let_pass(lpaccel_dev *dev, uint32_t cycles)
{
    if (dev->hal->wait != NULL)
        dev->hal->wait(dev->hal->ctx, cycles);
}

/* --- identification ---------------------------------------------------------------- */

int lpaccel_open(lpaccel_dev *dev, const lpaccel_hal *hal)
{
    uint32_t v;
    unsigned i;
    int err;

    if (dev == NULL || hal == NULL || hal->reg_read == NULL || hal->reg_write == NULL ||
        hal->mem_read == NULL || hal->mem_write == NULL)
        return LPACCEL_ERR_ARG;
    dev->hal = hal;
    dev->open = false;
    dev->poll_cycles = 64;
    dev->max_poll_cycles = 4096;
    dev->next_tag = 0;
    dev->out_head = 0;
    dev->out_count = 0;
    dev->job_shadow_valid = 0;
    for (i = 0; i < LPACCEL_JOB_REGS; i++)
        dev->job_shadow[i] = 0;

    if ((err = lpaccel_reg_read(dev, REG(MAGIC), &v)))
        return err;
    if (v != (uint32_t)LPACCEL__MAGIC__VALUE_reset)
        return LPACCEL_ERR_NOT_LPACCEL;
    if ((err = lpaccel_reg_read(dev, REG(VERSION), &v)))
        return err;
    dev->info.version_major = GET(v, VERSION, MAJOR);
    dev->info.version_minor = GET(v, VERSION, MINOR);
    if (dev->info.version_major != (uint32_t)LPACCEL__VERSION__MAJOR_reset)
        return LPACCEL_ERR_VERSION;
    if ((err = lpaccel_reg_read(dev, REG(BUILD_HASH), &dev->info.build_hash)))
        return err;
    if ((err = lpaccel_reg_read(dev, REG(CAP_FORMATS), &v)))
        return err;
    dev->info.formats = GET(v, CAP_FORMATS, MASK);
    if ((err = lpaccel_reg_read(dev, REG(CAP_ENGINE), &v)))
        return err;
    dev->info.lanes = GET(v, CAP_ENGINE, LANES);
    dev->info.word_bits = GET(v, CAP_ENGINE, WORD_BITS);
    if ((err = lpaccel_reg_read(dev, REG(CAP_MAX_ROWS), &v)))
        return err;
    dev->info.max_rows = GET(v, CAP_MAX_ROWS, VALUE);
    if ((err = lpaccel_reg_read(dev, REG(CAP_MAX_COLS), &v)))
        return err;
    dev->info.max_cols = GET(v, CAP_MAX_COLS, VALUE);
    if ((err = lpaccel_reg_read(dev, REG(CAP_MEMORY), &v)))
        return err;
    dev->info.memory_kind = GET(v, CAP_MEMORY, KIND);
    if ((err = read64(dev, REG(CAP_MEM_SIZE), &dev->info.memory_size)))
        return err;
    if ((err = lpaccel_reg_read(dev, REG(CAP_JOBS), &v)))
        return err;
    dev->info.job_depth = GET(v, CAP_JOBS, DEPTH);
    dev->open = true;
    return LPACCEL_OK;
}

/* --- memory ------------------------------------------------------------------------------- */

static int check_range(const lpaccel_dev *dev, uint64_t addr, uint64_t n)
{
    if (!dev->open)
        return LPACCEL_ERR_NOT_OPEN;
    if (addr & 3u || n & 3u)
        return LPACCEL_ERR_ALIGN;
    if (addr > dev->info.memory_size || n > dev->info.memory_size - addr)
        return LPACCEL_ERR_RANGE;
    return LPACCEL_OK;
}

int lpaccel_mem_write(lpaccel_dev *dev, uint64_t addr, const void *data, size_t n)
{
    int err;
    if (dev == NULL || (data == NULL && n))
        return LPACCEL_ERR_ARG;
    if ((err = check_range(dev, addr, n)))
        return err;
    return n ? dev->hal->mem_write(dev->hal->ctx, (uint32_t)addr, data, n) : LPACCEL_OK;
}

int lpaccel_mem_read(lpaccel_dev *dev, uint64_t addr, void *data, size_t n)
{
    int err;
    if (dev == NULL || (data == NULL && n))
        return LPACCEL_ERR_ARG;
    if ((err = check_range(dev, addr, n)))
        return err;
    return n ? dev->hal->mem_read(dev->hal->ctx, (uint32_t)addr, data, n) : LPACCEL_OK;
}

/* --- jobs ----------------------------------------------------------------------------------- */

int lpaccel_check_job(const lpaccel_dev *dev, const lpaccel_job *job)
{
    uint64_t word;
    if (dev == NULL || job == NULL)
        return LPACCEL_ERR_ARG;
    if (!dev->open)
        return LPACCEL_ERR_NOT_OPEN;
    if (job->format >= 32u || !(dev->info.formats >> job->format & 1u))
        return LPACCEL_ERR_FORMAT;
    if (job->rows < 1u || job->rows > dev->info.max_rows || job->rows > MAXV(JOB_ROWS, COUNT))
        return LPACCEL_ERR_SHAPE;
    if (job->group < 1u || job->group > MAXV(JOB_GROUP, SIZE))
        return LPACCEL_ERR_SHAPE;
    /* BCQ needs 1 to 4 planes; the other formats none (the hardware's BAD_PLANES). */
    if (job->format == LPACCEL_FORMAT_BCQ ? job->planes < 1u || job->planes > 4u
                                           : job->planes != 0u || job->offset)
        return LPACCEL_ERR_SHAPE;
    if (job->cols < 1u || job->cols > dev->info.max_cols || job->cols % job->group ||
        job->cols % ACT_BLOCK)
        return LPACCEL_ERR_SHAPE;
    /* The memory word is a power of two: masks, not 64-bit division (which
     * would need a runtime helper on a 32-bit soft CPU). */
    word = dev->info.word_bits / 8u;
    if (word == 0u || (word & (word - 1u)))
        return LPACCEL_ERR_ARG;
    if (job->weight_addr & (word - 1u) || job->act_addr & (word - 1u) || job->result_addr & 3u)
        return LPACCEL_ERR_ALIGN;
    /* The weight stream's length depends on the repacked layout; the hardware
     * checks it (BAD_ADDRESS). The other two buffers are checked here. */
    if (job->weight_addr >= dev->info.memory_size)
        return LPACCEL_ERR_RANGE;
    if (job->act_addr > dev->info.memory_size ||
        lpaccel_act_bytes(job->cols) > dev->info.memory_size - job->act_addr)
        return LPACCEL_ERR_RANGE;
    if (job->result_addr > dev->info.memory_size ||
        lpaccel_result_bytes(job->rows) > dev->info.memory_size - job->result_addr)
        return LPACCEL_ERR_RANGE;
    return LPACCEL_OK;
}

enum { J_WEIGHT, J_ACT, J_RESULT, J_ROWS, J_COLS, J_FORMAT, J_GROUP, J_TAG, J_FLAGS };

/* Write a JOB_* register only if its value changed since the last job. */
static int write_job_reg(lpaccel_dev *dev, unsigned slot, uint32_t addr, uint64_t value,
                         bool wide)
{
    int err;
    if (dev->job_shadow_valid >> slot & 1u && dev->job_shadow[slot] == value)
        return LPACCEL_OK;
    /* Forget the old value first: if the write fails half-way the register
     * is in an unknown state and must be written again next time. */
    dev->job_shadow_valid &= ~(1u << slot);
    err = wide ? write64(dev, addr, value) : lpaccel_reg_write(dev, addr, (uint32_t)value);
    if (err)
        return err;
    dev->job_shadow[slot] = value;
    dev->job_shadow_valid |= 1u << slot;
    return LPACCEL_OK;
}

static bool tag_busy(const lpaccel_dev *dev, uint16_t tag)
{
    unsigned i;
    for (i = 0; i < dev->out_count; i++)
        if (dev->out[(dev->out_head + i) % LPACCEL_MAX_OUTSTANDING].tag == tag)
            return true;
    return false;
}

/* Pop one completion record into the ring if JOB_STATUS holds one; *got = 1 then. */
static int pop_one(lpaccel_dev *dev, int *got)
{
    uint32_t status;
    unsigned i, slot;
    int err;

    *got = 0;
    if ((err = lpaccel_reg_read(dev, REG(JOB_STATUS), &status)))
        return err;
    if (!GET(status, JOB_STATUS, VALID))
        return LPACCEL_OK;
    if ((err = lpaccel_reg_write(dev, REG(JOB_POP), PUT(1u, JOB_POP, POP))))
        return err;
    /* The record belongs to the oldest job not yet popped. */
    for (i = 0; i < dev->out_count; i++) {
        slot = (dev->out_head + i) % LPACCEL_MAX_OUTSTANDING;
        if (dev->out[slot].popped)
            continue;
        if (dev->out[slot].tag != GET(status, JOB_STATUS, TAG))
            return LPACCEL_ERR_SEQUENCE;
        dev->out[slot].popped = true;
        dev->out[slot].done.tag = (uint16_t)GET(status, JOB_STATUS, TAG);
        dev->out[slot].done.error = (uint8_t)GET(status, JOB_STATUS, ERROR);
        dev->out[slot].done.dma = (uint8_t)GET(status, JOB_STATUS, DMA);
        *got = 1;
        return LPACCEL_OK;
    }
    return LPACCEL_ERR_SEQUENCE;        /* a record for no job of ours */
}

static bool have_unpopped(const lpaccel_dev *dev)
{
    unsigned i;
    for (i = 0; i < dev->out_count; i++)
        if (!dev->out[(dev->out_head + i) % LPACCEL_MAX_OUTSTANDING].popped)
            return true;
    return false;
}

int lpaccel_submit(lpaccel_dev *dev, const lpaccel_job *job, uint16_t *tag,
                   uint32_t timeout_cycles)
{
    uint32_t levels, waited = 0, slot;
    uint16_t t;
    unsigned n;
    int err, got;

    if ((err = lpaccel_check_job(dev, job)))
        return err;
    if (dev->out_count >= LPACCEL_MAX_OUTSTANDING)
        return LPACCEL_ERR_QUEUE_FULL;
    for (;;) {
        if ((err = lpaccel_reg_read(dev, REG(JOB_LEVELS), &levels)))
            return err;
        if (GET(levels, JOB_LEVELS, FREE) > 0u)
            break;
        if (!have_unpopped(dev))
            return LPACCEL_ERR_QUEUE_FULL;
        if ((err = pop_one(dev, &got)))
            return err;
        if (got)
            continue;
        if (timeout_cycles && waited >= timeout_cycles)
            return LPACCEL_ERR_TIMEOUT;
        /* No back-off: the queue must be refilled as soon as a job completes. */
        let_pass(dev, dev->poll_cycles);
        waited += dev->poll_cycles;
    }
    /* A 16-bit tag no outstanding job uses. */
    for (n = 0;; n++) {
        t = dev->next_tag;
        dev->next_tag = (uint16_t)((t + 1u) & MAXV(JOB_TAG, VALUE));
        if (!tag_busy(dev, t))
            break;
        if (n > MAXV(JOB_TAG, VALUE))
            return LPACCEL_ERR_QUEUE_FULL;
    }
    if ((err = write_job_reg(dev, J_WEIGHT, REG(JOB_WEIGHT_ADDR), job->weight_addr, true)) ||
        (err = write_job_reg(dev, J_ACT, REG(JOB_ACT_ADDR), job->act_addr, true)) ||
        (err = write_job_reg(dev, J_RESULT, REG(JOB_RESULT_ADDR), job->result_addr, true)) ||
        (err = write_job_reg(dev, J_ROWS, REG(JOB_ROWS), PUT(job->rows, JOB_ROWS, COUNT),
                             false)) ||
        (err = write_job_reg(dev, J_COLS, REG(JOB_COLS), PUT(job->cols, JOB_COLS, COUNT),
                             false)) ||
        (err = write_job_reg(dev, J_FORMAT, REG(JOB_FORMAT),
                             PUT(job->format, JOB_FORMAT, CODE) |
                             PUT(job->planes, JOB_FORMAT, PLANES) |
                             PUT(job->offset ? 1u : 0u, JOB_FORMAT, OFFSET), false)) ||
        (err = write_job_reg(dev, J_GROUP, REG(JOB_GROUP), PUT(job->group, JOB_GROUP, SIZE),
                             false)) ||
        (err = write_job_reg(dev, J_TAG, REG(JOB_TAG), PUT(t, JOB_TAG, VALUE), false)) ||
        (err = write_job_reg(dev, J_FLAGS, REG(JOB_FLAGS),
                             PUT(job->irq ? 1u : 0u, JOB_FLAGS, IRQ), false)))
        return err;
    if ((err = lpaccel_reg_write(dev, REG(JOB_PUSH), PUT(1u, JOB_PUSH, PUSH))))
        return err;
    slot = (dev->out_head + dev->out_count) % LPACCEL_MAX_OUTSTANDING;
    dev->out[slot].tag = t;
    dev->out[slot].popped = false;
    dev->out_count++;
    if (tag != NULL)
        *tag = t;
    return LPACCEL_OK;
}

unsigned lpaccel_outstanding(const lpaccel_dev *dev)
{
    return dev != NULL ? dev->out_count : 0u;
}

int lpaccel_wait(lpaccel_dev *dev, lpaccel_completion *done, uint32_t timeout_cycles)
{
    uint32_t waited = 0, interval;
    unsigned head;
    int err, got;

    if (dev == NULL)
        return LPACCEL_ERR_ARG;
    if (!dev->open)
        return LPACCEL_ERR_NOT_OPEN;
    if (dev->out_count == 0)
        return LPACCEL_ERR_NO_JOB;
    head = dev->out_head;
    interval = dev->poll_cycles;
    while (!dev->out[head].popped) {
        if ((err = pop_one(dev, &got)))
            return err;
        if (got) {
            interval = dev->poll_cycles;
            continue;
        }
        if (timeout_cycles && waited >= timeout_cycles)
            return LPACCEL_ERR_TIMEOUT;
        let_pass(dev, interval);
        waited += interval;
        interval = interval * 2u < dev->max_poll_cycles ? interval * 2u : dev->max_poll_cycles;
    }
    if (done != NULL)
        *done = dev->out[head].done;
    dev->out_head = (head + 1u) % LPACCEL_MAX_OUTSTANDING;
    dev->out_count--;
    return dev->out[head].done.error ? LPACCEL_ERR_JOB : LPACCEL_OK;
}

int lpaccel_gemv(lpaccel_dev *dev, const lpaccel_job *job, void *results,
                 lpaccel_completion *done, uint32_t timeout_cycles)
{
    lpaccel_completion c;
    int err;
    if ((err = lpaccel_submit(dev, job, NULL, timeout_cycles)))
        return err;
    /* Earlier jobs of ours complete first (push order); this job is the newest. */
    do {
        err = lpaccel_wait(dev, &c, timeout_cycles);
        if (err != LPACCEL_OK && err != LPACCEL_ERR_JOB)
            return err;
    } while (dev->out_count > 0);
    if (done != NULL)
        *done = c;
    if (err)
        return err;
    if (results != NULL)
        return lpaccel_mem_read(dev, job->result_addr, results, lpaccel_result_bytes(job->rows));
    return LPACCEL_OK;
}

/* --- control ---------------------------------------------------------------------------- */

static int wait_not_aborting(lpaccel_dev *dev, uint32_t timeout_cycles)
{
    uint32_t status, waited = 0, interval = dev->poll_cycles;
    int err;
    for (;;) {
        if ((err = lpaccel_reg_read(dev, REG(STATUS), &status)))
            return err;
        if (!GET(status, STATUS, ABORTING))
            return LPACCEL_OK;
        if (timeout_cycles && waited >= timeout_cycles)
            return LPACCEL_ERR_TIMEOUT;
        let_pass(dev, interval);
        waited += interval;
        interval = interval * 2u < dev->max_poll_cycles ? interval * 2u : dev->max_poll_cycles;
    }
}

int lpaccel_abort(lpaccel_dev *dev, uint32_t timeout_cycles)
{
    int err;
    if (dev == NULL)
        return LPACCEL_ERR_ARG;
    if (!dev->open)
        return LPACCEL_ERR_NOT_OPEN;
    /* CONTROL's bits are write-1-to-pulse and read as 0: no read-modify-write. */
    if ((err = lpaccel_reg_write(dev, REG(CONTROL), PUT(1u, CONTROL, ABORT))))
        return err;
    return wait_not_aborting(dev, timeout_cycles);
}

int lpaccel_soft_reset(lpaccel_dev *dev, uint32_t timeout_cycles)
{
    int err;
    if (dev == NULL)
        return LPACCEL_ERR_ARG;
    if (!dev->open)
        return LPACCEL_ERR_NOT_OPEN;
    if ((err = lpaccel_reg_write(dev, REG(CONTROL), PUT(1u, CONTROL, SOFT_RESET))))
        return err;
    err = wait_not_aborting(dev, timeout_cycles);
    dev->out_count = 0;
    dev->out_head = 0;
    dev->job_shadow_valid = 0;
    return err;
}

int lpaccel_read_counters(lpaccel_dev *dev, lpaccel_counters *c)
{
    int err;
    if (dev == NULL || c == NULL)
        return LPACCEL_ERR_ARG;
    if ((err = read64(dev, REG(PERF_BUSY_CYCLES), &c->busy_cycles)) ||
        (err = read64(dev, REG(PERF_WEIGHT_BYTES), &c->weight_bytes)) ||
        (err = read64(dev, REG(PERF_JOBS_DONE), &c->jobs_done)) ||
        (err = read64(dev, REG(PERF_STALL_MEMORY), &c->stall_memory)) ||
        (err = read64(dev, REG(PERF_STALL_ENGINE), &c->stall_engine)) ||
        (err = read64(dev, REG(PERF_STALL_RESULT), &c->stall_result)) ||
        (err = read64(dev, REG(PERF_STALL_HOST), &c->stall_host)) ||
        (err = read64(dev, REG(PERF_MEM_BYTES), &c->mem_bytes)) ||
        (err = read64(dev, REG(PERF_MEM_IDLE), &c->mem_idle)) ||
        (err = read64(dev, REG(PERF_MEM_GAP), &c->mem_gap)) ||
        (err = read64(dev, REG(PERF_DRAM_REFRESH), &c->dram_refresh)) ||
        (err = read64(dev, REG(PERF_DRAM_ROW_MISS), &c->dram_row_miss)) ||
        (err = read64(dev, REG(PERF_DRAM_TURNAROUND), &c->dram_turnaround)) ||
        (err = read64(dev, REG(PERF_DRAM_OTHER), &c->dram_other)))
        return err;
    return LPACCEL_OK;
}

int lpaccel_clear_counters(lpaccel_dev *dev)
{
    return lpaccel_reg_write(dev, REG(PERF_CONTROL), PUT(1u, PERF_CONTROL, CLEAR));
}

int lpaccel_read_error(lpaccel_dev *dev, uint32_t *error)
{
    return lpaccel_reg_read(dev, REG(ERROR), error);
}

int lpaccel_clear_error(lpaccel_dev *dev)
{
    return lpaccel_reg_write(dev, REG(ERROR),
                             (uint32_t)LPACCEL__ERROR__GEMV_bm | (uint32_t)LPACCEL__ERROR__DMA_bm |
                             (uint32_t)LPACCEL__ERROR__OVERFLOW_bm);
}

int lpaccel_set_watchdog(lpaccel_dev *dev, uint32_t cycles)
{
    return lpaccel_reg_write(dev, REG(WATCHDOG), PUT(cycles, WATCHDOG, CYCLES));
}
