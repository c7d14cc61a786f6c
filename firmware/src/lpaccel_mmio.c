/*
 * lpaccel_mmio.c - memory-mapped HAL (lpaccel_mmio.h). Every access is one
 * aligned 32-bit volatile load or store, as the AXI4-Lite CSR port expects;
 * bus errors are the CPU's to trap.
 */
#include "lpaccel_mmio.h"

static int mmio_reg_read(void *ctx, uint32_t addr, uint32_t *value)
{
    lpaccel_mmio *m = (lpaccel_mmio *)ctx;
    if (addr & 3u)
        return LPACCEL_ERR_ALIGN;
    *value = m->csr[addr / 4u];
    return LPACCEL_OK;
}

static int mmio_reg_write(void *ctx, uint32_t addr, uint32_t value)
{
    lpaccel_mmio *m = (lpaccel_mmio *)ctx;
    if (addr & 3u)
        return LPACCEL_ERR_ALIGN;
    m->csr[addr / 4u] = value;
    return LPACCEL_OK;
}

static int mmio_mem_write(void *ctx, uint32_t addr, const void *data, size_t n)
{
    lpaccel_mmio *m = (lpaccel_mmio *)ctx;
    const uint8_t *p = (const uint8_t *)data;
    size_t i;
    if (addr & 3u || n & 3u)
        return LPACCEL_ERR_ALIGN;
    /* Byte-wise assembly: `data` need not be aligned, the window is little-endian. */
    for (i = 0; i < n; i += 4)
        m->mem[(addr + i) / 4u] = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 |
                                  (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
    return LPACCEL_OK;
}

static int mmio_mem_read(void *ctx, uint32_t addr, void *data, size_t n)
{
    lpaccel_mmio *m = (lpaccel_mmio *)ctx;
    uint8_t *p = (uint8_t *)data;
    uint32_t w;
    size_t i;
    if (addr & 3u || n & 3u)
        return LPACCEL_ERR_ALIGN;
    for (i = 0; i < n; i += 4) {
        w = m->mem[(addr + i) / 4u];
        p[i] = (uint8_t)w;
        p[i + 1] = (uint8_t)(w >> 8);
        p[i + 2] = (uint8_t)(w >> 16);
        p[i + 3] = (uint8_t)(w >> 24);
    }
    return LPACCEL_OK;
}

static void mmio_wait(void *ctx, uint32_t cycles)
{
    lpaccel_mmio *m = (lpaccel_mmio *)ctx;
    volatile uint32_t spin;
    uint32_t i, n = cycles * m->spins_per_cycle;
    for (i = 0; i < n; i++)
        spin = i;
    (void)spin;
}

void lpaccel_mmio_hal(lpaccel_hal *hal, lpaccel_mmio *mmio)
{
    hal->ctx = mmio;
    hal->reg_read = mmio_reg_read;
    hal->reg_write = mmio_reg_write;
    hal->mem_write = mmio_mem_write;
    hal->mem_read = mmio_mem_read;
    hal->wait = mmio_wait;
}
