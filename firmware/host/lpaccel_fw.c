/*
 * lpaccel-fw - the C driver library on a host, through the serial link.
 *
 *   lpaccel-fw --port DEV [--baud B] [--timeout-ms T] [--retries R] COMMAND
 *
 *   info                 LINK_INFO and the capability registers
 *   selftest             link, identification, register walk, memory test,
 *                        one GEMV per format against built-in golden vectors
 *   gemv BUNDLE OUT      run the job of a bundle (lpaccel.firmware.bundle),
 *                        write the float32 results to OUT
 *   linktest N           N random register and memory operations, each
 *                        verified (for the link fault tests)
 *
 * One "PASS name: ..." / "FAIL name: ..." line per step; exit code 0 when
 * everything passed, 1 when something failed, 2 on a usage error.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lpaccel.h"
#include "lpaccel_link.h"
#include "lpaccel_regs.h"
#include "lpaccel_vectors.h"
#include "serial.h"

#define REG(name) ((uint32_t)offsetof(lpaccel_t, name))

typedef struct options {
    const char *port;
    unsigned long baud;
    unsigned long timeout_ms;
    unsigned long retries;
    unsigned long mem_bytes;    /* selftest: bytes of memory to test (0: all) */
    unsigned long mem_base;     /* linktest region */
    unsigned long region;       /* linktest region bytes */
    unsigned long seed;
    unsigned long reg;          /* linktest register */
    const char *expect_out;     /* linktest: final register + region image */
    int verbose;
} options;

static lpaccel_serial port;
static lpaccel_link link_;
static lpaccel_hal hal;
static lpaccel_dev dev;
static int failures;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lpaccel-fw --port DEV [--baud B] [--timeout-ms T] [--retries R] COMMAND\n"
            "commands:\n"
            "  info                         LINK_INFO and the capability registers\n"
            "  selftest [--mem-bytes N]     link, identify, registers, memory, GEMV per format\n"
            "  gemv BUNDLE OUT              run a job bundle, write float32 results to OUT\n"
            "  linktest N [--seed S] [--region BYTES] [--mem-base ADDR] [--reg ADDR]\n"
            "             [--expect-out FILE]   N verified random register/memory operations\n");
}

static void pass(const char *step, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(const char *step, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pass(const char *step, const char *fmt, ...)
{
    va_list ap;
    printf("PASS %s: ", step);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void fail(const char *step, const char *fmt, ...)
{
    va_list ap;
    failures++;
    printf("FAIL %s: ", step);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static const char *cmd_name(uint8_t cmd)
{
    switch (cmd) {
    case LPACCEL_LINK_REG_READ: return "REG_READ";
    case LPACCEL_LINK_REG_WRITE: return "REG_WRITE";
    case LPACCEL_LINK_MEM_READ: return "MEM_READ";
    case LPACCEL_LINK_MEM_WRITE: return "MEM_WRITE";
    case LPACCEL_LINK_INFO: return "LINK_INFO";
    default: return "?";
    }
}

/* An error message with the link's last operation and what it saw. */
static const char *describe(int err)
{
    static char text[512];
    const lpaccel_link_stats *s = &link_.stats;
    if (err >= LPACCEL_ERR_BUS && err <= LPACCEL_ERR_IO)
        snprintf(text, sizeof text,
                 "%s (last operation %s at 0x%08lx, SEQ %u; frames sent %lu, retries %lu, "
                 "timeouts %lu, CRC errors %lu, dropped bytes %lu)",
                 lpaccel_strerror(err), cmd_name(link_.last_cmd),
                 (unsigned long)link_.last_addr, (unsigned)link_.seq,
                 (unsigned long)s->frames_sent, (unsigned long)s->retries,
                 (unsigned long)s->timeouts, (unsigned long)s->crc_errors,
                 (unsigned long)s->dropped_bytes);
    else
        snprintf(text, sizeof text, "%s", lpaccel_strerror(err));
    return text;
}

static void print_link_stats(const char *prefix)
{
    const lpaccel_link_stats *s = &link_.stats;
    printf("%s: operations %lu, frames sent %lu, retries %lu, timeouts %lu, CRC errors %lu, "
           "dropped bytes %lu, error responses %lu, failed operations %lu\n", prefix,
           (unsigned long)s->requests, (unsigned long)s->frames_sent,
           (unsigned long)s->retries, (unsigned long)s->timeouts,
           (unsigned long)s->crc_errors, (unsigned long)s->dropped_bytes,
           (unsigned long)s->error_responses, (unsigned long)s->failures);
}

/* xorshift32: the test patterns (reproducible from the seed). */
static uint32_t rng_state = 1;

static uint32_t rnd(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static uint32_t pattern(uint32_t addr, uint32_t pass_no)
{
    /* Address-dependent so that aliasing (two addresses, one cell) shows. */
    uint32_t x = addr * 2654435761u ^ (pass_no + 1u) * 0x9E3779B9u;
    x ^= x >> 15;
    x *= 0x2C1B3C6Du;
    x ^= x >> 12;
    return x;
}

static void put32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* --- steps ---------------------------------------------------------------------------------- */

static int step_link(void)
{
    int err = lpaccel_link_open(&link_);
    if (err) {
        fail("link", "LINK_INFO: %s", describe(err));
        return err;
    }
    pass("link", "LINK_INFO magic 0x%08lx, protocol %lu, max %lu words/frame; device counters: "
         "frames %lu, CRC errors %lu, overruns %lu, resyncs %lu, duplicates %lu, errors %lu",
         (unsigned long)link_.info[0], (unsigned long)(link_.info[1] & 0xFF),
         (unsigned long)(link_.info[1] >> 8 & 0xFFFF), (unsigned long)link_.info[2],
         (unsigned long)link_.info[3], (unsigned long)link_.info[4],
         (unsigned long)link_.info[5], (unsigned long)link_.info[6],
         (unsigned long)link_.info[7]);
    return 0;
}

static int step_identify(void)
{
    char formats[64] = "";
    uint32_t f;
    int err = lpaccel_open(&dev, &hal);
    if (err) {
        if (err == LPACCEL_ERR_VERSION)
            fail("identify", "register map version %lu.%lu, this firmware was built for major "
                 "%lu; rebuild it (make firmware) from the lpaccel release of the bitstream",
                 (unsigned long)dev.info.version_major, (unsigned long)dev.info.version_minor,
                 (unsigned long)LPACCEL__VERSION__MAJOR_reset);
        else
            fail("identify", "%s", describe(err));
        return err;
    }
    for (f = 0; f < LPACCEL_FORMAT_COUNT; f++) {
        if (dev.info.formats >> f & 1u) {
            if (formats[0])
                strcat(formats, ",");
            strcat(formats, lpaccel_format_name(f));
        }
    }
    pass("identify", "lpaccel %lu.%lu build 0x%08lx: %lu lanes, %lu-bit words, formats %s, "
         "max %lu x %lu, memory kind %lu, %llu bytes, job queue %lu",
         (unsigned long)dev.info.version_major, (unsigned long)dev.info.version_minor,
         (unsigned long)dev.info.build_hash, (unsigned long)dev.info.lanes,
         (unsigned long)dev.info.word_bits, formats, (unsigned long)dev.info.max_rows,
         (unsigned long)dev.info.max_cols, (unsigned long)dev.info.memory_kind,
         (unsigned long long)dev.info.memory_size, (unsigned long)dev.info.job_depth);
    return 0;
}

static void step_registers(void)
{
    static const uint32_t fixed[] = {0u, 0xFFFFFFFFu, 0x5A5AA5A5u, 0xA5A55A5Au, 0x01234567u};
    uint32_t values[64 + 5], v, magic, levels;
    unsigned n = 0, i;
    int err;

    for (i = 0; i < 32; i++) {
        values[n++] = 1u << i;
        values[n++] = ~(1u << i);
    }
    for (i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        values[n++] = fixed[i];
    for (i = 0; i < n; i++) {
        if ((err = lpaccel_reg_write(&dev, REG(SCRATCH), values[i])) ||
            (err = lpaccel_reg_read(&dev, REG(SCRATCH), &v))) {
            fail("registers", "SCRATCH access: %s", describe(err));
            return;
        }
        if (v != values[i]) {
            fail("registers", "SCRATCH wrote 0x%08lx, read 0x%08lx", (unsigned long)values[i],
                 (unsigned long)v);
            return;
        }
    }
    /* A read-only register refuses a write with a bus error and keeps its value. */
    err = lpaccel_reg_write(&dev, REG(MAGIC), 0u);
    if (err != LPACCEL_ERR_BUS) {
        fail("registers", "a write to read-only MAGIC answered \"%s\", not a bus error",
             describe(err));
        return;
    }
    if ((err = lpaccel_reg_read(&dev, REG(MAGIC), &magic)) ||
        magic != (uint32_t)LPACCEL__MAGIC__VALUE_reset) {
        fail("registers", "MAGIC after the refused write: %s, 0x%08lx", describe(err),
             (unsigned long)magic);
        return;
    }
    if ((err = lpaccel_reg_read(&dev, REG(JOB_LEVELS), &levels))) {
        fail("registers", "JOB_LEVELS: %s", describe(err));
        return;
    }
    pass("registers", "SCRATCH: %u patterns (walking 1s and 0s) written and read back; MAGIC "
         "refuses a write (bus error) and keeps 0x%08lx; JOB_LEVELS 0x%08lx", n,
         (unsigned long)magic, (unsigned long)levels);
}

static void step_memory(const options *opt)
{
    enum { CHUNK = 4096 };
    static uint8_t buf[CHUNK];
    uint64_t size = opt->mem_bytes ? opt->mem_bytes : dev.info.memory_size;
    uint64_t addr;
    uint32_t p, i, n;
    double t0, t_write = 0, t_read = 0;
    int err;

    if (size > dev.info.memory_size)
        size = dev.info.memory_size;
    size &= ~(uint64_t)3;
    for (p = 0; p < 2; p++) {
        t0 = now_s();
        for (addr = 0; addr < size; addr += n) {
            n = size - addr < CHUNK ? (uint32_t)(size - addr) : CHUNK;
            for (i = 0; i < n; i += 4)
                put32le(buf + i, pattern((uint32_t)(addr + i), p));
            if ((err = lpaccel_mem_write(&dev, addr, buf, n))) {
                fail("memory", "write at 0x%llx: %s", (unsigned long long)addr, describe(err));
                return;
            }
        }
        t_write += now_s() - t0;
        t0 = now_s();
        for (addr = 0; addr < size; addr += n) {
            n = size - addr < CHUNK ? (uint32_t)(size - addr) : CHUNK;
            if ((err = lpaccel_mem_read(&dev, addr, buf, n))) {
                fail("memory", "read at 0x%llx: %s", (unsigned long long)addr, describe(err));
                return;
            }
            for (i = 0; i < n; i += 4) {
                if (get32le(buf + i) != pattern((uint32_t)(addr + i), p)) {
                    fail("memory", "pass %lu: 0x%llx reads 0x%08lx, wrote 0x%08lx",
                         (unsigned long)p, (unsigned long long)(addr + i),
                         (unsigned long)get32le(buf + i),
                         (unsigned long)pattern((uint32_t)(addr + i), p));
                    return;
                }
            }
        }
        t_read += now_s() - t0;
    }
    pass("memory", "%llu bytes x 2 patterns written and read back (write %.1f KB/s, read "
         "%.1f KB/s)", (unsigned long long)size,
         t_write > 0 ? 2.0 * (double)size / t_write / 1e3 : 0.0,
         t_read > 0 ? 2.0 * (double)size / t_read / 1e3 : 0.0);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

/*
 * Place weights and activations, run one job, read the results.
 * Returns 0 or an lpaccel_err; *done gets the completion, *cycles PERF_BUSY_CYCLES.
 */
static int run_job(uint32_t format, uint32_t rows, uint32_t cols, uint32_t group,
                   uint32_t planes, bool offset, const uint8_t *w, uint32_t wbytes, const uint8_t *a, uint32_t abytes,
                   uint8_t *results, lpaccel_completion *done, uint64_t *cycles,
                   const char **where)
{
    uint64_t word = dev.info.word_bits / 8u;
    lpaccel_job job;
    lpaccel_counters c;
    int err;

    job.weight_addr = 0;
    job.act_addr = align_up(wbytes, word);
    job.result_addr = align_up(job.act_addr + abytes, word);
    job.rows = rows;
    job.cols = cols;
    job.format = format;
    job.group = group;
    job.irq = false;
    job.planes = planes;   /* BCQ: 1 to 4; 0 for every other format */
    job.offset = offset;
    done->tag = 0;
    done->error = 0;
    done->dma = 0;
    if (job.result_addr + lpaccel_result_bytes(rows) > dev.info.memory_size) {
        *where = "placement (the job does not fit the device memory)";
        return LPACCEL_ERR_RANGE;
    }
    *where = "check";
    if ((err = lpaccel_check_job(&dev, &job)))
        return err;
    *where = "weights upload";
    if ((err = lpaccel_mem_write(&dev, job.weight_addr, w, wbytes)))
        return err;
    *where = "activations upload";
    if ((err = lpaccel_mem_write(&dev, job.act_addr, a, abytes)))
        return err;
    *where = "counters";
    if ((err = lpaccel_clear_counters(&dev)))
        return err;
    *where = "job";
    if ((err = lpaccel_gemv(&dev, &job, results, done, 0)))
        return err;
    *where = "counters";
    if ((err = lpaccel_read_counters(&dev, &c)))
        return err;
    *cycles = c.busy_cycles;
    return LPACCEL_OK;
}

static void step_gemv_vectors(void)
{
    static uint8_t results[4 * 1024];
    char step[32];
    unsigned v;
    uint32_t r, bad;
    uint64_t cycles = 0;
    lpaccel_completion done;
    const char *where;
    int err;

    for (v = 0; v < LPACCEL_VECTOR_COUNT; v++) {
        const lpaccel_vector *vec = &lpaccel_vectors[v];
        snprintf(step, sizeof step, "gemv %s", lpaccel_format_name(vec->format));
        if (!(dev.info.formats >> vec->format & 1u)) {
            printf("SKIP %s: not built into this device (CAP_FORMATS)\n", step);
            continue;
        }
        if (dev.info.lanes != LPACCEL_VECTORS_LANES ||
            dev.info.word_bits != LPACCEL_VECTORS_WORD_BITS) {
            fail(step, "the built-in vectors are repacked for %u lanes and %u-bit words, the "
                 "device has %lu and %lu; regenerate them for it (firmware/gen_vectors.py) "
                 "or use lpaccel-fw gemv with a bundle made for the device",
                 LPACCEL_VECTORS_LANES, LPACCEL_VECTORS_WORD_BITS,
                 (unsigned long)dev.info.lanes, (unsigned long)dev.info.word_bits);
            continue;
        }
        err = run_job(vec->format, vec->rows, vec->cols, vec->group, 0u, false, vec->weights,
                      vec->weight_bytes, vec->act, vec->act_bytes, results, &done, &cycles,
                      &where);
        if (err == LPACCEL_ERR_JOB) {
            fail(step, "job %u: %s (DMA %s)", (unsigned)done.tag,
                 lpaccel_job_error_text(done.error), lpaccel_dma_error_name(done.dma));
            continue;
        }
        if (err) {
            fail(step, "%s: %s", where, describe(err));
            continue;
        }
        for (r = 0, bad = 0; r < vec->rows; r++)
            bad += get32le(results + 4 * r) != vec->expected[r];
        if (bad) {
            for (r = 0; r < vec->rows && get32le(results + 4 * r) == vec->expected[r]; r++)
                ;
            fail(step, "%lu x %lu: %lu of %lu results differ from the golden model (first: "
                 "row %lu reads 0x%08lx, expected 0x%08lx)", (unsigned long)vec->rows,
                 (unsigned long)vec->cols, (unsigned long)bad, (unsigned long)vec->rows,
                 (unsigned long)r, (unsigned long)get32le(results + 4 * r),
                 (unsigned long)vec->expected[r]);
            continue;
        }
        pass(step, "%lu x %lu group %lu: %lu results bit-exact vs the golden model, %llu busy "
             "cycles", (unsigned long)vec->rows, (unsigned long)vec->cols,
             (unsigned long)vec->group, (unsigned long)vec->rows, (unsigned long long)cycles);
    }
}

/*
 * A chain: each vector's job CHAIN_ROUNDS times in a row (as the Q, K and V
 * projections share an activation vector), all submitted back to back: more
 * jobs than the queue holds, so lpaccel_submit pops records while the queue
 * is full. Then the records are collected in push order and every result
 * checked. Between jobs of one vector only JOB_RESULT_ADDR and JOB_TAG
 * change, and only they are rewritten (the driver's shadow).
 */
#define CHAIN_ROUNDS 4u

static void step_chain(void)
{
    static uint8_t results[4 * 1024];
    uint64_t word = dev.info.word_bits / 8u, addr = 0;
    uint64_t waddr[LPACCEL_VECTOR_COUNT], aaddr[LPACCEL_VECTOR_COUNT];
    uint64_t raddr[LPACCEL_VECTOR_COUNT * CHAIN_ROUNDS];
    unsigned v, k, n = 0, njobs = 0;
    uint32_t r;
    lpaccel_job job;
    lpaccel_completion done;
    uint16_t tag, tags[LPACCEL_VECTOR_COUNT * CHAIN_ROUNDS];
    int err;

    for (v = 0; v < LPACCEL_VECTOR_COUNT; v++) {
        const lpaccel_vector *vec = &lpaccel_vectors[v];
        if (!(dev.info.formats >> vec->format & 1u) || dev.info.lanes != LPACCEL_VECTORS_LANES ||
            dev.info.word_bits != LPACCEL_VECTORS_WORD_BITS) {
            printf("SKIP chain: needs every format and the vectors' engine geometry\n");
            return;
        }
        waddr[v] = addr;
        addr = align_up(addr + vec->weight_bytes, word);
        aaddr[v] = addr;
        addr = align_up(addr + vec->act_bytes, word);
    }
    for (k = 0; k < LPACCEL_VECTOR_COUNT * CHAIN_ROUNDS; k++) {
        raddr[k] = addr;
        addr = align_up(addr + lpaccel_result_bytes(lpaccel_vectors[k / CHAIN_ROUNDS].rows),
                        word);
    }
    if (addr > dev.info.memory_size) {
        printf("SKIP chain: needs %llu bytes of device memory\n", (unsigned long long)addr);
        return;
    }
    for (v = 0; v < LPACCEL_VECTOR_COUNT; v++) {
        const lpaccel_vector *vec = &lpaccel_vectors[v];
        if ((err = lpaccel_mem_write(&dev, waddr[v], vec->weights, vec->weight_bytes)) ||
            (err = lpaccel_mem_write(&dev, aaddr[v], vec->act, vec->act_bytes))) {
            fail("chain", "upload: %s", describe(err));
            return;
        }
    }
    for (k = 0; k < LPACCEL_VECTOR_COUNT * CHAIN_ROUNDS; k++) {
        const lpaccel_vector *vec = &lpaccel_vectors[k / CHAIN_ROUNDS];
        v = k / CHAIN_ROUNDS;
        job.weight_addr = waddr[v];
        job.act_addr = aaddr[v];
        job.result_addr = raddr[k];
        job.rows = vec->rows;
        job.cols = vec->cols;
        job.format = vec->format;
        job.group = vec->group;
        job.irq = false;
        job.planes = 0u;       /* not BCQ */
        job.offset = false;
        if ((err = lpaccel_submit(&dev, &job, &tag, 0))) {
            fail("chain", "submit of job %u: %s", k, describe(err));
            return;
        }
        tags[njobs++] = tag;
    }
    for (k = 0; k < njobs; k++) {
        const lpaccel_vector *vec = &lpaccel_vectors[k / CHAIN_ROUNDS];
        err = lpaccel_wait(&dev, &done, 0);
        if (err == LPACCEL_ERR_JOB) {
            fail("chain", "job %u: %s", k, lpaccel_job_error_text(done.error));
            return;
        }
        if (err) {
            fail("chain", "wait for job %u: %s", k, describe(err));
            return;
        }
        if (done.tag != tags[k]) {
            fail("chain", "record %u has tag %u, job %u was pushed with tag %u", k,
                 (unsigned)done.tag, k, (unsigned)tags[k]);
            return;
        }
        if ((err = lpaccel_mem_read(&dev, raddr[k], results, lpaccel_result_bytes(vec->rows)))) {
            fail("chain", "results of job %u: %s", k, describe(err));
            return;
        }
        for (r = 0; r < vec->rows; r++) {
            if (get32le(results + 4 * r) != vec->expected[r]) {
                fail("chain", "job %u (%s) row %lu reads 0x%08lx, expected 0x%08lx", k,
                     lpaccel_format_name(vec->format), (unsigned long)r,
                     (unsigned long)get32le(results + 4 * r), (unsigned long)vec->expected[r]);
                return;
            }
        }
        n++;
    }
    pass("chain", "%u jobs (every format x %u) queued back to back through a %lu-deep queue, "
         "completed in push order, all bit-exact", n, CHAIN_ROUNDS,
         (unsigned long)dev.info.job_depth);
}

/*
 * Control paths: CONTROL.ABORT with jobs queued (each still gets exactly one
 * record, NONE or ABORTED, in push order), CONTROL.SOFT_RESET with jobs
 * queued (no records, the queue empty), WATCHDOG read back, and a job after
 * all that runs bit-exact with PERF_JOBS_DONE = 1.
 */
static void step_control(void)
{
    static uint8_t results[4 * 1024];
    const lpaccel_vector *vec = &lpaccel_vectors[0];
    uint64_t word = dev.info.word_bits / 8u;
    lpaccel_job job;
    lpaccel_completion done;
    lpaccel_counters c;
    uint32_t levels, wd, wd_old, r, error_before = 0, error_after = 0;
    unsigned k, aborted = 0;
    int err;

    if (!(dev.info.formats >> vec->format & 1u) || dev.info.lanes != LPACCEL_VECTORS_LANES ||
        dev.info.word_bits != LPACCEL_VECTORS_WORD_BITS) {
        printf("SKIP control: needs the vectors' format and engine geometry\n");
        return;
    }
    job.weight_addr = 0;
    job.act_addr = align_up(vec->weight_bytes, word);
    job.result_addr = align_up(job.act_addr + vec->act_bytes, word);
    job.rows = vec->rows;
    job.cols = vec->cols;
    job.format = vec->format;
    job.group = vec->group;
    job.irq = false;
    job.planes = 0u;       /* not BCQ */
    job.offset = false;
    if ((err = lpaccel_mem_write(&dev, job.weight_addr, vec->weights, vec->weight_bytes)) ||
        (err = lpaccel_mem_write(&dev, job.act_addr, vec->act, vec->act_bytes))) {
        fail("control", "upload: %s", describe(err));
        return;
    }
    /* Abort with three jobs queued. */
    for (k = 0; k < 3; k++) {
        if ((err = lpaccel_submit(&dev, &job, NULL, 0))) {
            fail("control", "submit before the abort: %s", describe(err));
            return;
        }
    }
    if ((err = lpaccel_abort(&dev, 1u << 24))) {
        fail("control", "abort: %s", describe(err));
        return;
    }
    for (k = 0; k < 3; k++) {
        err = lpaccel_wait(&dev, &done, 1u << 24);
        if (err == LPACCEL_ERR_JOB && done.error == LPACCEL_GEMV_ERROR_ABORTED)
            aborted++;
        else if (err) {
            fail("control", "record %u after the abort: %s (%s)", k, describe(err),
                 lpaccel_job_error_text(done.error));
            return;
        }
    }
    /* Soft reset with two jobs queued: no records, an empty queue. */
    for (k = 0; k < 2; k++) {
        if ((err = lpaccel_submit(&dev, &job, NULL, 0))) {
            fail("control", "submit before the soft reset: %s", describe(err));
            return;
        }
    }
    if ((err = lpaccel_soft_reset(&dev, 1u << 24)) ||
        (err = lpaccel_reg_read(&dev, REG(JOB_LEVELS), &levels))) {
        fail("control", "soft reset: %s", describe(err));
        return;
    }
    if (lpaccel_outstanding(&dev) != 0 || (levels & ~(uint32_t)LPACCEL__JOB_LEVELS__FREE_bm) ||
        (levels & LPACCEL__JOB_LEVELS__FREE_bm) >> LPACCEL__JOB_LEVELS__FREE_bp !=
            dev.info.job_depth) {
        fail("control", "after the soft reset JOB_LEVELS is 0x%08lx", (unsigned long)levels);
        return;
    }
    /* An aborted job leaves its code in the sticky ERROR register: clear it (W1C). */
    if ((err = lpaccel_read_error(&dev, &error_before)) || (err = lpaccel_clear_error(&dev)) ||
        (err = lpaccel_read_error(&dev, &error_after))) {
        fail("control", "ERROR: %s", describe(err));
        return;
    }
    if (error_after != 0) {
        fail("control", "ERROR reads 0x%08lx after clearing 0x%08lx", (unsigned long)error_after,
             (unsigned long)error_before);
        return;
    }
    /* The watchdog register holds what is written. */
    if ((err = lpaccel_reg_read(&dev, REG(WATCHDOG), &wd_old)) ||
        (err = lpaccel_set_watchdog(&dev, 123457u)) ||
        (err = lpaccel_reg_read(&dev, REG(WATCHDOG), &wd)) ||
        (err = lpaccel_set_watchdog(&dev, wd_old))) {
        fail("control", "WATCHDOG: %s", describe(err));
        return;
    }
    if (wd != 123457u) {
        fail("control", "WATCHDOG reads %lu after writing 123457", (unsigned long)wd);
        return;
    }
    /* And the device works: one job, counted. */
    if ((err = lpaccel_clear_counters(&dev)) ||
        (err = lpaccel_gemv(&dev, &job, results, &done, 1u << 24)) ||
        (err = lpaccel_read_counters(&dev, &c))) {
        fail("control", "job after the soft reset: %s", describe(err));
        return;
    }
    for (r = 0; r < vec->rows; r++) {
        if (get32le(results + 4 * r) != vec->expected[r]) {
            fail("control", "job after the soft reset: row %lu differs from the golden model",
                 (unsigned long)r);
            return;
        }
    }
    if (c.jobs_done != 1u || c.busy_cycles == 0u) {
        fail("control", "PERF_JOBS_DONE %llu, PERF_BUSY_CYCLES %llu after one job",
             (unsigned long long)c.jobs_done, (unsigned long long)c.busy_cycles);
        return;
    }
    pass("control", "abort with 3 jobs queued: 3 records in push order (%u ABORTED); soft "
         "reset with 2 queued: queue empty, no records; ERROR 0x%08lx cleared; WATCHDOG read "
         "back; then a job bit-exact, PERF_JOBS_DONE 1, %llu busy cycles", aborted,
         (unsigned long)error_before, (unsigned long long)c.busy_cycles);
}

static void step_idle(void)
{
    uint32_t levels, error;
    int err;
    if ((err = lpaccel_reg_read(&dev, REG(JOB_LEVELS), &levels)) ||
        (err = lpaccel_read_error(&dev, &error))) {
        fail("idle", "%s", describe(err));
        return;
    }
    if ((levels & ~(uint32_t)LPACCEL__JOB_LEVELS__FREE_bm) != 0 ||
        (levels & LPACCEL__JOB_LEVELS__FREE_bm) >> LPACCEL__JOB_LEVELS__FREE_bp !=
            dev.info.job_depth ||
        error != 0) {
        fail("idle", "after the jobs JOB_LEVELS is 0x%08lx and ERROR 0x%08lx (expected only "
             "FREE = %lu, no error)", (unsigned long)levels, (unsigned long)error,
             (unsigned long)dev.info.job_depth);
        return;
    }
    pass("idle", "job queue empty (FREE %lu), ERROR 0", (unsigned long)dev.info.job_depth);
}

static int cmd_selftest(const options *opt)
{
    if (step_link() == 0 && step_identify() == 0) {
        step_registers();
        step_memory(opt);
        step_gemv_vectors();
        step_chain();
        step_control();
        step_idle();
    }
    print_link_stats("link");
    printf("selftest: %s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}

static int cmd_info(void)
{
    if (step_link() == 0)
        step_identify();
    print_link_stats("link");
    return failures ? 1 : 0;
}

/* --- gemv on a bundle ----------------------------------------------------------------- */

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    long size;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc(size ? (size_t)size : 1u);
        if (data != NULL && fread(data, 1, (size_t)size, f) != (size_t)size) {
            free(data);
            data = NULL;
        }
        *n = (size_t)size;
    }
    fclose(f);
    return data;
}

enum { BUNDLE_HEADER = 48 };
static uint8_t *bundle;         /* the file, checked by load_bundle */
static uint32_t bundle_h[12];   /* magic version format rows cols group lanes word_bits
                                 * weight_bytes act_bytes expected_rows
                                 * bcq (version 2: planes | offset << 8) */

/* Read and check a bundle file: before the port is opened, so a bad file
 * touches no device. */
static int load_bundle(const char *path)
{
    size_t n, i;
    uint32_t *h = bundle_h;
    bundle = read_file(path, &n);
    if (bundle == NULL) {
        fail("bundle", "%s: %s", path, strerror(errno));
        return 1;
    }
    if (n < BUNDLE_HEADER || memcmp(bundle, "LPFB", 4) != 0) {
        fail("bundle", "%s is not an lpaccel job bundle (magic \"LPFB\"); write one with "
             "python -m lpaccel.firmware.bundle", path);
        return 1;
    }
    for (i = 0; i < 12; i++)
        h[i] = get32le(bundle + 4 * i);
    if ((h[1] != 1u && h[1] != 2u) || (h[11] & ~0x1FFu) != 0 || (h[1] == 1u && h[11] != 0) ||
        n != BUNDLE_HEADER + (size_t)h[8] + h[9] + 4u * (size_t)h[10] ||
        (h[10] != 0 && h[10] != h[3]) || h[3] == 0) {
        fail("bundle", "%s: version %lu or sizes do not match the file (%lu bytes); rewrite "
             "it with python -m lpaccel.firmware.bundle", path, (unsigned long)h[1],
             (unsigned long)n);
        return 1;
    }
    return 0;
}

static int cmd_gemv(const char *bundle_path, const char *out_path)
{
    const uint32_t *h = bundle_h;
    uint8_t *data = bundle, *results;
    const uint8_t *w, *a, *expected;
    lpaccel_completion done;
    uint64_t cycles = 0;
    const char *where;
    FILE *out;
    uint32_t bad = 0;
    size_t i;
    int err;

    w = data + BUNDLE_HEADER;
    a = w + h[8];
    expected = h[10] ? a + h[9] : NULL;
    if (step_link() || step_identify()) {
        free(data);
        return 1;
    }
    if (dev.info.lanes != h[6] || dev.info.word_bits != h[7]) {
        fail("gemv", "%s is repacked for %lu lanes and %lu-bit words, the device has %lu and "
             "%lu; rewrite it with --lanes %lu --word-bits %lu", bundle_path,
             (unsigned long)h[6], (unsigned long)h[7], (unsigned long)dev.info.lanes,
             (unsigned long)dev.info.word_bits, (unsigned long)dev.info.lanes,
             (unsigned long)dev.info.word_bits);
        free(data);
        return 1;
    }
    results = malloc(4u * (size_t)h[3] + 4u);
    err = results ? run_job(h[2], h[3], h[4], h[5], h[11] & 0xFFu, ((h[11] >> 8) & 1u) != 0,
                            w, h[8], a, h[9], results, &done, &cycles, &where)
                  : LPACCEL_ERR_ARG;
    if (err == LPACCEL_ERR_JOB)
        fail("gemv", "job %u: %s (DMA %s)", (unsigned)done.tag,
             lpaccel_job_error_text(done.error), lpaccel_dma_error_name(done.dma));
    else if (err)
        fail("gemv", "%s: %s", where, describe(err));
    if (err) {
        free(results);
        free(data);
        return 1;
    }
    out = fopen(out_path, "wb");
    if (out == NULL || fwrite(results, 4, h[3], out) != h[3] || fclose(out) != 0) {
        fail("gemv", "%s: %s", out_path, strerror(errno));
        free(results);
        free(data);
        return 1;
    }
    pass("gemv", "%s %lu x %lu group %lu: %lu float32 results written to %s, %llu busy "
         "cycles", lpaccel_format_name(h[2]), (unsigned long)h[3], (unsigned long)h[4],
         (unsigned long)h[5], (unsigned long)h[3], out_path, (unsigned long long)cycles);
    if (expected != NULL) {
        for (i = 0; i < h[3]; i++)
            bad += memcmp(results + 4 * i, expected + 4 * i, 4) != 0;
        if (bad)
            fail("golden", "%lu of %lu results differ from the bundle's golden results",
                 (unsigned long)bad, (unsigned long)h[3]);
        else
            pass("golden", "%lu results bit-exact vs the bundle's golden results",
                 (unsigned long)h[3]);
    }
    free(results);
    free(data);
    print_link_stats("link");
    return failures ? 1 : 0;
}

/* --- linktest ------------------------------------------------------------------------------- */

/*
 * One register or memory operation, retried as a new operation while the
 * link gives up (each give-up is reported: the operation failed loudly).
 * Writes are idempotent, so the final state is exact whatever happened.
 */
static unsigned long loud_failures;

static int persist(int (*op)(void *), void *arg, const char *what, uint32_t addr)
{
    int tries, err = 0;
    for (tries = 0; tries < 20; tries++) {
        err = op(arg);
        if (err == 0)
            return 0;
        loud_failures++;
        printf("linktest: %s at 0x%08lx failed: %s; repeating it\n", what,
               (unsigned long)addr, describe(err));
    }
    return err;
}

typedef struct mem_op {
    uint32_t addr;
    uint8_t *data;
    size_t n;
} mem_op;

static int op_reg_write(void *p) { mem_op *m = p; return hal.reg_write(hal.ctx, m->addr, get32le(m->data)); }
static int op_reg_read(void *p)
{
    mem_op *m = p;
    uint32_t v;
    int err = hal.reg_read(hal.ctx, m->addr, &v);
    if (!err)
        put32le(m->data, v);
    return err;
}
static int op_mem_write(void *p) { mem_op *m = p; return hal.mem_write(hal.ctx, m->addr, m->data, m->n); }
static int op_mem_read(void *p) { mem_op *m = p; return hal.mem_read(hal.ctx, m->addr, m->data, m->n); }
static int op_open(void *p)
{
    (void)p;
    return lpaccel_link_open(&link_);
}

static int op_info(void *p)
{
    mem_op *m = p;
    uint32_t info[LPACCEL_LINK_INFO_WORDS];
    int err = lpaccel_link_info(&link_, info);
    if (!err)
        put32le(m->data, info[0]);
    return err;
}

static int cmd_linktest(const options *opt, unsigned long nops)
{
    uint32_t region = (uint32_t)(opt->region & ~3ul), base = (uint32_t)opt->mem_base;
    uint8_t *shadow, *buf;
    uint8_t reg_shadow[4], tmp[4];
    unsigned long op, corrupted = 0, counts[5] = {0, 0, 0, 0, 0};
    uint32_t words, off, i;
    mem_op m;
    FILE *f;
    int kind, err;

    if (region < 4 || base % 4u) {
        fprintf(stderr, "lpaccel-fw: linktest needs --region of at least 4 bytes and a "
                "--mem-base that is a multiple of 4\n");
        return 2;
    }
    rng_state = (uint32_t)opt->seed ? (uint32_t)opt->seed : 1u;
    shadow = malloc(region);
    buf = malloc(region);
    if (shadow == NULL || buf == NULL)
        return 2;
    /* Opening the session is an operation like the others: repeated if it fails. */
    if ((err = persist(op_open, NULL, "LINK_INFO", 0)))
        goto gave_up;
    /* Known state first: the register and the whole region. */
    put32le(reg_shadow, rnd());
    m.addr = (uint32_t)opt->reg;
    m.data = reg_shadow;
    m.n = 4;
    if ((err = persist(op_reg_write, &m, "REG_WRITE", m.addr)))
        goto gave_up;
    for (i = 0; i < region; i += 4)
        put32le(shadow + i, rnd());
    for (i = 0; i < region; i += 4u * LPACCEL_LINK_MAX_WORDS) {
        /* One frame per operation, so that a very bad line still gets through. */
        m.addr = base + i;
        m.data = shadow + i;
        m.n = region - i < 4u * LPACCEL_LINK_MAX_WORDS ? region - i : 4u * LPACCEL_LINK_MAX_WORDS;
        if ((err = persist(op_mem_write, &m, "MEM_WRITE", m.addr)))
            goto gave_up;
    }
    for (op = 0; op < nops; op++) {
        kind = (int)(rnd() % 5u);
        counts[kind]++;
        switch (kind) {
        case 0:                                  /* register write */
            put32le(reg_shadow, rnd());
            m.addr = (uint32_t)opt->reg;
            m.data = reg_shadow;
            if ((err = persist(op_reg_write, &m, "REG_WRITE", m.addr)))
                goto gave_up;
            break;
        case 1:                                  /* register read, verified */
            m.addr = (uint32_t)opt->reg;
            m.data = tmp;
            if ((err = persist(op_reg_read, &m, "REG_READ", m.addr)))
                goto gave_up;
            if (memcmp(tmp, reg_shadow, 4) != 0) {
                corrupted++;
                printf("linktest: CORRUPTED READ register 0x%08lx: 0x%08lx, expected "
                       "0x%08lx\n", (unsigned long)m.addr, (unsigned long)get32le(tmp),
                       (unsigned long)get32le(reg_shadow));
            }
            break;
        case 2:                                  /* memory write: 1..300 words */
        case 3:                                  /* memory read, verified */
            words = 1u + rnd() % 300u;
            if (words > region / 4u)
                words = region / 4u;
            off = 4u * (rnd() % (region / 4u - words + 1u));
            m.addr = base + off;
            m.n = 4u * words;
            if (kind == 2) {
                for (i = 0; i < m.n; i += 4)
                    put32le(shadow + off + i, rnd());
                m.data = shadow + off;
                if ((err = persist(op_mem_write, &m, "MEM_WRITE", m.addr)))
                    goto gave_up;
            } else {
                m.data = buf;
                if ((err = persist(op_mem_read, &m, "MEM_READ", m.addr)))
                    goto gave_up;
                for (i = 0; i < m.n; i += 4) {
                    if (memcmp(buf + i, shadow + off + i, 4) != 0) {
                        corrupted++;
                        printf("linktest: CORRUPTED READ memory 0x%08lx: 0x%08lx, expected "
                               "0x%08lx\n", (unsigned long)(m.addr + i),
                               (unsigned long)get32le(buf + i),
                               (unsigned long)get32le(shadow + off + i));
                        break;
                    }
                }
            }
            break;
        default:                                 /* LINK_INFO */
            m.data = tmp;
            if ((err = persist(op_info, &m, "LINK_INFO", 0)))
                goto gave_up;
            if (get32le(tmp) != LPACCEL_LINK_MAGIC) {
                corrupted++;
                printf("linktest: CORRUPTED READ LINK_INFO magic 0x%08lx\n",
                       (unsigned long)get32le(tmp));
            }
            break;
        }
    }
    if (opt->expect_out != NULL) {
        f = fopen(opt->expect_out, "wb");
        if (f == NULL || fwrite(reg_shadow, 1, 4, f) != 4 ||
            fwrite(shadow, 1, region, f) != region || fclose(f) != 0) {
            fprintf(stderr, "lpaccel-fw: %s: %s\n", opt->expect_out, strerror(errno));
            free(shadow);
            free(buf);
            return 1;
        }
    }
    printf("linktest: %lu operations (register writes %lu, register reads %lu, memory writes "
           "%lu, memory reads %lu, LINK_INFO %lu), %lu failed loudly and were repeated, "
           "%lu corrupted reads\n", nops, counts[0], counts[1], counts[2], counts[3],
           counts[4], loud_failures, corrupted);
    print_link_stats("link");
    if (corrupted)
        fail("linktest", "%lu reads returned wrong data", corrupted);
    else
        pass("linktest", "%lu operations verified", nops);
    free(shadow);
    free(buf);
    return failures ? 1 : 0;

gave_up:
    fail("linktest", "an operation failed 20 times in a row: %s", describe(err));
    print_link_stats("link");
    free(shadow);
    free(buf);
    return 1;
}

/* --- main -------------------------------------------------------------------------------- */

static int parse_ulong(const char *name, const char *text, unsigned long *out)
{
    char *end;
    errno = 0;
    *out = strtoul(text, &end, 0);
    if (errno || *end || !*text || text[0] == '-') {
        fprintf(stderr, "lpaccel-fw: %s must be a non-negative integer, not '%s'\n", name,
                text);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    const char *command = NULL, *args[2] = {NULL, NULL};
    lpaccel_link_io io;
    unsigned nargs = 0;
    unsigned long nops = 0;
    int i, rc;

    memset(&opt, 0, sizeof opt);
    opt.baud = 3000000;
    opt.timeout_ms = 50;
    opt.retries = 8;
    opt.region = 8192;
    opt.seed = 1;
    opt.reg = REG(SCRATCH);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        unsigned long *num = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--port") && i + 1 < argc) { opt.port = argv[++i]; continue; }
        if (!strcmp(a, "--expect-out") && i + 1 < argc) { opt.expect_out = argv[++i]; continue; }
        if (!strcmp(a, "--baud")) num = &opt.baud;
        else if (!strcmp(a, "--timeout-ms")) num = &opt.timeout_ms;
        else if (!strcmp(a, "--retries")) num = &opt.retries;
        else if (!strcmp(a, "--mem-bytes")) num = &opt.mem_bytes;
        else if (!strcmp(a, "--mem-base")) num = &opt.mem_base;
        else if (!strcmp(a, "--region")) num = &opt.region;
        else if (!strcmp(a, "--seed")) num = &opt.seed;
        else if (!strcmp(a, "--reg")) num = &opt.reg;
        if (num != NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lpaccel-fw: %s needs a value\n", a);
                return 2;
            }
            if (parse_ulong(a, argv[++i], num))
                return 2;
            continue;
        }
        if (a[0] == '-') {
            fprintf(stderr, "lpaccel-fw: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (command == NULL)
            command = a;
        else if (nargs < 2)
            args[nargs++] = a;
        else {
            fprintf(stderr, "lpaccel-fw: too many arguments\n");
            return 2;
        }
    }
    if (command == NULL || opt.port == NULL) {
        fprintf(stderr, "lpaccel-fw: %s\n", command == NULL ? "no command given"
                                                         : "--port DEV is required");
        usage(stderr);
        return 2;
    }
    if (!strcmp(command, "gemv") && nargs != 2) {
        fprintf(stderr, "lpaccel-fw: gemv needs BUNDLE and OUT\n");
        return 2;
    }
    if (!strcmp(command, "linktest") && (nargs != 1 || parse_ulong("N", args[0], &nops)))
        return 2;
    if (strcmp(command, "gemv") && strcmp(command, "linktest") && nargs) {
        fprintf(stderr, "lpaccel-fw: %s takes no arguments\n", command);
        return 2;
    }
    if (strcmp(command, "selftest") && strcmp(command, "gemv") && strcmp(command, "linktest") &&
        strcmp(command, "info")) {
        fprintf(stderr, "lpaccel-fw: unknown command '%s'\n", command);
        usage(stderr);
        return 2;
    }
    if (opt.timeout_ms == 0 || opt.timeout_ms > 600000ul) {
        fprintf(stderr, "lpaccel-fw: --timeout-ms must be 1..600000\n");
        return 2;
    }
    if (!strcmp(command, "gemv") && load_bundle(args[0]))
        return 1;
    if (lpaccel_serial_open(&port, opt.port, opt.baud)) {
        if (errno == EINVAL)
            fprintf(stderr, "lpaccel-fw: --baud %lu is not a rate this system's termios "
                    "offers (e.g. 115200, 921600, 3000000)\n", opt.baud);
        else
            fprintf(stderr, "lpaccel-fw: cannot open port %s: %s; check the device path "
                    "(lpaccel serve-sim --pty prints it)\n", opt.port, strerror(errno));
        return 1;
    }
    lpaccel_serial_io(&io, &port);
    lpaccel_link_init(&link_, &io, (uint32_t)opt.timeout_ms, (unsigned)opt.retries);
    link_.baud = (uint32_t)opt.baud;
    lpaccel_link_hal(&hal, &link_);

    if (!strcmp(command, "selftest"))
        rc = cmd_selftest(&opt);
    else if (!strcmp(command, "gemv"))
        rc = cmd_gemv(args[0], args[1]);
    else if (!strcmp(command, "linktest"))
        rc = cmd_linktest(&opt, nops);
    else
        rc = cmd_info();
    lpaccel_serial_close(&port);
    return rc;
}
