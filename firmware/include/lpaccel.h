/*
 * lpaccel.h - C99 driver library for the lpaccel SoC (docs/soc.md).
 *
 * The library mirrors lpaccel/driver.py: identify the device (MAGIC,
 * VERSION, CAP_*), queue GEMV jobs through the JOB_* registers and
 * JOB_PUSH, collect completion records (JOB_STATUS / JOB_POP) in push
 * order, abort, soft reset, counters. It needs nothing but <stdint.h>,
 * <stddef.h> and <stdbool.h>: every access goes through a small HAL
 * (struct lpaccel_hal), so the same code runs on a soft CPU with
 * memory-mapped registers or on a host through the serial bridge
 * (lpaccel_link.h).
 *
 * Register addresses and fields come only from the header generated from
 * the RDL (lpaccel_regs.h, `make firmware`); the codes (formats, job
 * errors) from lpaccel_codes.h, generated from the same source.
 *
 * Every function returns an lpaccel_err: 0 (LPACCEL_OK) or a code that
 * lpaccel_strerror() describes. A HAL failure (a link that gave up) is
 * passed up unchanged.
 */
#ifndef LPACCEL_H
#define LPACCEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lpaccel_codes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Errors of the library and of the HALs (one list, one lpaccel_strerror). */
typedef enum lpaccel_err {
    LPACCEL_OK = 0,
    LPACCEL_ERR_ARG,            /* an argument is out of range (the call did nothing) */
    LPACCEL_ERR_ALIGN,          /* an address or length is not a multiple of 4 */
    LPACCEL_ERR_NOT_LPACCEL,    /* MAGIC is wrong: not an lpaccel, or a broken link */
    LPACCEL_ERR_VERSION,        /* register-map major version differs from the header's */
    LPACCEL_ERR_NOT_OPEN,       /* the device struct was not opened */
    LPACCEL_ERR_FORMAT,         /* the format is not in CAP_FORMATS */
    LPACCEL_ERR_SHAPE,          /* rows/cols/group outside what CAP_* allow */
    LPACCEL_ERR_RANGE,          /* a buffer is not inside the device memory (CAP_MEM_SIZE) */
    LPACCEL_ERR_QUEUE_FULL,     /* no room in the job queue and no job of ours to pop */
    LPACCEL_ERR_NO_JOB,         /* wait with no job outstanding */
    LPACCEL_ERR_TIMEOUT,        /* the device did not finish in the given cycles */
    LPACCEL_ERR_JOB,            /* a job completed with an error code (see the completion) */
    LPACCEL_ERR_SEQUENCE,       /* a completion record out of push order (hardware fault) */
    LPACCEL_ERR_BUS,            /* the bus answered an error (unmapped/read-only register) */
    LPACCEL_ERR_LINK_TIMEOUT,   /* no valid response after every retry */
    LPACCEL_ERR_LINK_BAD_COMMAND, /* the bridge refused the command */
    LPACCEL_ERR_LINK_BAD_ADDRESS, /* the bridge refused the address (alignment, 4 KiB) */
    LPACCEL_ERR_LINK_PROTOCOL,  /* the bridge is not an lpaccel link (LINK_INFO) */
    LPACCEL_ERR_IO,             /* the byte port failed (read/write error, closed) */
    LPACCEL_ERR_COUNT
} lpaccel_err;

/* Text of an lpaccel_err ("unknown error" for other values). */
const char *lpaccel_strerror(int err);

/* Name ("Q4_0", ...) of a format code, or "?". */
const char *lpaccel_format_name(uint32_t format);

/* Description of a job error code (JOB_STATUS.ERROR, gemv_error_e). */
const char *lpaccel_job_error_text(uint32_t code);

/* Name of a DMA code (JOB_STATUS.DMA, dma_error_e). */
const char *lpaccel_dma_error_name(uint32_t code);

/*
 * The hardware abstraction: how the library reaches the SoC.
 *
 * reg_read/reg_write: one 32-bit CSR access at a byte offset into the
 * register bank (the HAL adds its base address). mem_write/mem_read: n
 * bytes at a byte address of the memory window (addresses and lengths are
 * multiples of 4). wait: let about `cycles` device clock cycles pass (the
 * polling interval). The four accesses return 0 or an lpaccel_err.
 */
typedef struct lpaccel_hal {
    void *ctx;
    int (*reg_read)(void *ctx, uint32_t addr, uint32_t *value);
    int (*reg_write)(void *ctx, uint32_t addr, uint32_t value);
    int (*mem_write)(void *ctx, uint32_t addr, const void *data, size_t n);
    int (*mem_read)(void *ctx, uint32_t addr, void *data, size_t n);
    void (*wait)(void *ctx, uint32_t cycles);
} lpaccel_hal;

/* What the capability registers say (lpaccel.driver.DeviceInfo). */
typedef struct lpaccel_info {
    uint32_t version_major, version_minor;
    uint32_t build_hash;
    uint32_t formats;           /* CAP_FORMATS.MASK: bit f set = format code f built in */
    uint32_t lanes;             /* CAP_ENGINE.LANES */
    uint32_t word_bits;         /* CAP_ENGINE.WORD_BITS: the memory word */
    uint32_t max_rows, max_cols;
    uint32_t memory_kind;       /* CAP_MEMORY.KIND (LPACCEL_MEMORY_*) */
    uint64_t memory_size;       /* CAP_MEM_SIZE: bytes behind the memory window */
    uint32_t job_depth;         /* CAP_JOBS.DEPTH */
} lpaccel_info;

/* One GEMV job: the values of the JOB_* registers (docs/soc.md section 3). */
typedef struct lpaccel_job {
    uint64_t weight_addr;       /* repacked weights, a multiple of the memory word */
    uint64_t act_addr;          /* activations (device layout), a multiple of the memory word */
    uint64_t result_addr;       /* rows float32, a multiple of 4 */
    uint32_t rows, cols;
    uint32_t format;            /* LPACCEL_FORMAT_* */
    uint32_t group;             /* 32 for the GGUF formats and F16; 32/64/128 for INT4/INT8/BCQ */
    bool irq;                   /* JOB_FLAGS.IRQ */
    /* Last, so that initializers written before BCQ leave them 0: */
    uint32_t planes;            /* BCQ: binary planes, 1 to 4; 0 for every other format */
    bool offset;                /* BCQ: the groups carry a float16 offset */
} lpaccel_job;

/* A completion record (JOB_STATUS). */
typedef struct lpaccel_completion {
    uint16_t tag;
    uint8_t error;              /* LPACCEL_GEMV_ERROR_* (0: success) */
    uint8_t dma;                /* LPACCEL_DMA_ERROR_* for DMA_READ / DMA_WRITE */
} lpaccel_completion;

/* The PERF_* counters (docs/soc.md section 6). */
typedef struct lpaccel_counters {
    uint64_t busy_cycles, weight_bytes, jobs_done;
    uint64_t stall_memory, stall_engine, stall_result, stall_host;
    uint64_t mem_bytes, mem_idle, mem_gap;
    uint64_t dram_refresh, dram_row_miss, dram_turnaround, dram_other;
} lpaccel_counters;

/* Jobs of this driver pushed and not yet handed out by lpaccel_wait. */
#ifndef LPACCEL_MAX_OUTSTANDING
#define LPACCEL_MAX_OUTSTANDING 32
#endif

/* JOB_* registers the driver shadows (written only when they change). */
#define LPACCEL_JOB_REGS 9

typedef struct lpaccel_dev {
    const lpaccel_hal *hal;
    lpaccel_info info;
    bool open;
    uint32_t poll_cycles;       /* first polling interval (doubles while idle) */
    uint32_t max_poll_cycles;   /* longest polling interval */
    uint16_t next_tag;
    /* ring of outstanding jobs in push order */
    unsigned out_head, out_count;
    struct {
        uint16_t tag;
        bool popped;
        lpaccel_completion done;
    } out[LPACCEL_MAX_OUTSTANDING];
    /* last value written to each JOB_* register (valid bit per register) */
    uint64_t job_shadow[LPACCEL_JOB_REGS];
    uint32_t job_shadow_valid;
} lpaccel_dev;

/* Activation buffer bytes for `cols` (exponent header to 64 bytes, int16 mantissas). */
uint32_t lpaccel_act_bytes(uint32_t cols);

/* Result buffer bytes for `rows` (float32). */
uint32_t lpaccel_result_bytes(uint32_t rows);

/*
 * Identify the device behind `hal`: MAGIC, VERSION (the major must equal
 * the header's), then CAP_*. Fills dev (dev->info); nothing is written to
 * the device. LPACCEL_ERR_NOT_LPACCEL / LPACCEL_ERR_VERSION on a wrong device.
 */
int lpaccel_open(lpaccel_dev *dev, const lpaccel_hal *hal);

/* Register access by byte offset (for tools and tests). */
int lpaccel_reg_read(lpaccel_dev *dev, uint32_t addr, uint32_t *value);
int lpaccel_reg_write(lpaccel_dev *dev, uint32_t addr, uint32_t value);

/* Device memory access, checked against CAP_MEM_SIZE and 4-byte alignment. */
int lpaccel_mem_write(lpaccel_dev *dev, uint64_t addr, const void *data, size_t n);
int lpaccel_mem_read(lpaccel_dev *dev, uint64_t addr, void *data, size_t n);

/* Check a job against the capabilities (no device access). */
int lpaccel_check_job(const lpaccel_dev *dev, const lpaccel_job *job);

/*
 * Queue one job; *tag receives its 16-bit tag. When JOB_LEVELS.FREE is 0
 * and jobs of this driver are outstanding, their records are popped (and
 * kept for lpaccel_wait) until there is room, for at most timeout_cycles
 * (0: forever).
 */
int lpaccel_submit(lpaccel_dev *dev, const lpaccel_job *job, uint16_t *tag,
                   uint32_t timeout_cycles);

/*
 * Wait for the oldest outstanding job's completion record (push order) and
 * hand it out in *done. Returns LPACCEL_ERR_JOB if the job failed (the
 * record is still in *done), LPACCEL_ERR_TIMEOUT after about
 * timeout_cycles of polling (0: forever; the job stays outstanding).
 */
int lpaccel_wait(lpaccel_dev *dev, lpaccel_completion *done, uint32_t timeout_cycles);

/* Jobs pushed by this driver whose record has not been handed out. */
unsigned lpaccel_outstanding(const lpaccel_dev *dev);

/*
 * y = W x on pre-placed buffers: submit, wait, and read `rows` float32
 * results into `results` (raw little-endian bytes, 4 * rows; NULL to skip).
 * Jobs submitted earlier and not yet waited for complete first; their
 * records are dropped (use lpaccel_submit/lpaccel_wait for chains).
 */
int lpaccel_gemv(lpaccel_dev *dev, const lpaccel_job *job, void *results,
                 lpaccel_completion *done, uint32_t timeout_cycles);

/* CONTROL.ABORT, wait for STATUS.ABORTING to fall (records stay queued). */
int lpaccel_abort(lpaccel_dev *dev, uint32_t timeout_cycles);

/* CONTROL.SOFT_RESET: abort, drop every record; the driver forgets its jobs. */
int lpaccel_soft_reset(lpaccel_dev *dev, uint32_t timeout_cycles);

/* Read every PERF_* counter / clear them (PERF_CONTROL.CLEAR). */
int lpaccel_read_counters(lpaccel_dev *dev, lpaccel_counters *c);
int lpaccel_clear_counters(lpaccel_dev *dev);

/* ERROR register (sticky) and its clear (W1C of every field). */
int lpaccel_read_error(lpaccel_dev *dev, uint32_t *error);
int lpaccel_clear_error(lpaccel_dev *dev);

/* WATCHDOG.CYCLES (0: off). */
int lpaccel_set_watchdog(lpaccel_dev *dev, uint32_t cycles);

#ifdef __cplusplus
}
#endif

#endif /* LPACCEL_H */
