/*
 * lpaccel_mmio.h - the HAL for a CPU that sees the SoC's CSR bank and memory
 * window in its address space (a soft CPU next to the accelerator). C99,
 * freestanding.
 */
#ifndef LPACCEL_MMIO_H
#define LPACCEL_MMIO_H

#include <stddef.h>
#include <stdint.h>

#include "lpaccel.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lpaccel_mmio {
    volatile uint32_t *csr;     /* the CSR bank's base (register byte offset / 4 = index) */
    volatile uint32_t *mem;     /* the memory window's base (device address 0) */
    uint32_t spins_per_cycle;   /* wait(): busy-loop iterations per device cycle (0: none) */
} lpaccel_mmio;

/* Fill hal with 32-bit volatile accesses through `mmio` (hal->ctx = mmio). */
void lpaccel_mmio_hal(lpaccel_hal *hal, lpaccel_mmio *mmio);

#ifdef __cplusplus
}
#endif

#endif /* LPACCEL_MMIO_H */
