/*
 * soft_cpu.c - the driver on a soft CPU, linked freestanding for riscv32 by
 * `make firmware` (build/firmware/riscv32/soft_cpu.elf) to prove that the
 * library, the MMIO HAL and a program need nothing else: no libc, no
 * compiler runtime, no start files.
 *
 * It identifies the accelerator at LPACCEL_CSR_BASE, runs one GEMV whose
 * buffers a loader (or an earlier program) placed in the memory window, and
 * leaves the outcome in `soft_cpu_result` for a debugger or a testbench.
 * The addresses are this example's; a real SoC's linker script says where
 * the bank and the window are.
 */
#include "lpaccel.h"
#include "lpaccel_mmio.h"

#ifndef LPACCEL_CSR_BASE
#define LPACCEL_CSR_BASE 0x40000000u
#endif
#ifndef LPACCEL_MEM_BASE
#define LPACCEL_MEM_BASE 0x80000000u
#endif

/* The job: Q4_0, 64 x 256, weights at 0, activations and results after them. */
#define ROWS 64u
#define COLS 256u
#define WEIGHT_ADDR 0x0000u
#define ACT_ADDR 0x4000u
#define RESULT_ADDR 0x5000u

volatile int soft_cpu_result = -1;
volatile uint32_t soft_cpu_y[ROWS];

static lpaccel_mmio mmio;
static lpaccel_hal hal;
static lpaccel_dev dev;

static int run(void)
{
    lpaccel_job job;
    lpaccel_completion done;
    uint8_t y[4u * ROWS];
    unsigned i;
    int err;

    mmio.csr = (volatile uint32_t *)LPACCEL_CSR_BASE;
    mmio.mem = (volatile uint32_t *)LPACCEL_MEM_BASE;
    mmio.spins_per_cycle = 1;
    lpaccel_mmio_hal(&hal, &mmio);
    if ((err = lpaccel_open(&dev, &hal)))
        return err;
    job.weight_addr = WEIGHT_ADDR;
    job.act_addr = ACT_ADDR;
    job.result_addr = RESULT_ADDR;
    job.rows = ROWS;
    job.cols = COLS;
    job.format = LPACCEL_FORMAT_Q4_0;
    job.group = 32;
    job.irq = false;
    job.planes = 0u;       /* not BCQ */
    job.offset = false;
    if ((err = lpaccel_gemv(&dev, &job, y, &done, 1u << 24)))
        return err;
    for (i = 0; i < ROWS; i++)
        soft_cpu_y[i] = (uint32_t)y[4 * i] | (uint32_t)y[4 * i + 1] << 8 |
                        (uint32_t)y[4 * i + 2] << 16 | (uint32_t)y[4 * i + 3] << 24;
    return LPACCEL_OK;
}

/* The entry point (no C runtime: the reset vector jumps here with a stack set up). */
void _start(void)
{
    soft_cpu_result = run();
    for (;;)
        ;
}
