/*
 * lpaccel_link.c - host side of the link protocol (lpaccel_link.h,
 * docs/link.md). C99, freestanding: no libc call, I/O through callbacks.
 */
#include "lpaccel_link.h"

/* --- codec ---------------------------------------------------------------------------------- */

uint16_t lpaccel_crc16(uint16_t crc, const uint8_t *data, size_t n)
{
    size_t i;
    unsigned bit;
    for (i = 0; i < n; i++) {
        crc ^= (uint16_t)(data[i] << 8);
        for (bit = 0; bit < 8u; bit++)
            crc = (uint16_t)(crc & 0x8000u ? ((unsigned)crc << 1) ^ 0x1021u : (unsigned)crc << 1);
    }
    return crc;
}

bool lpaccel_link_cmd_writes(uint8_t cmd)
{
    return cmd == LPACCEL_LINK_REG_WRITE || cmd == LPACCEL_LINK_MEM_WRITE;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t lpaccel_link_encode(uint8_t *buf, uint8_t seq, uint8_t cmd, uint32_t addr,
                           unsigned words, const uint32_t *data)
{
    size_t n = LPACCEL_LINK_REQ_HEADER, i;
    uint16_t crc;
    if (buf == NULL || words < 1u || words > LPACCEL_LINK_MAX_WORDS)
        return 0;
    if (lpaccel_link_cmd_writes(cmd) && data == NULL)
        return 0;
    buf[0] = LPACCEL_LINK_REQ_SOF;
    buf[1] = seq;
    buf[2] = cmd;
    buf[3] = (uint8_t)(words - 1u);
    put32(buf + 4, addr);
    if (lpaccel_link_cmd_writes(cmd)) {
        for (i = 0; i < words; i++)
            put32(buf + n + 4u * i, data[i]);
        n += 4u * words;
    }
    crc = lpaccel_crc16(0xFFFFu, buf, n);
    buf[n] = (uint8_t)crc;
    buf[n + 1] = (uint8_t)(crc >> 8);
    return n + 2u;
}

/* --- response parser --------------------------------------------------------------------- */

/* What the current request expects back. */
typedef struct expect {
    uint8_t seq, cmd;
    unsigned words;             /* LEN of an OK response */
} expect;

enum { PREFIX_BAD = -1, PREFIX_PARTIAL = 0, PREFIX_GOOD = 1, PREFIX_BAD_CRC = 2 };

static size_t frame_len(const uint8_t *rsp, const expect *e)
{
    unsigned len = e->words;
    if (rsp[3] != LPACCEL_LINK_OK)
        len = 0;
    return LPACCEL_LINK_RSP_HEADER + 4u * len + LPACCEL_LINK_CRC_BYTES;
}

/* Bytes of an OK response carrying `words` words. */
static size_t frame_len_ok(unsigned words)
{
    return LPACCEL_LINK_RSP_HEADER + 4u * words + LPACCEL_LINK_CRC_BYTES;
}

/* Is rsp[0..n) the start of the expected response? */
static int check_prefix(const uint8_t *rsp, size_t n, const expect *e)
{
    size_t want;
    unsigned len;
    uint16_t crc;
    if (n == 0)
        return PREFIX_PARTIAL;
    if (rsp[0] != LPACCEL_LINK_RSP_SOF)
        return PREFIX_BAD;
    if (n > 1 && rsp[1] != e->seq)
        return PREFIX_BAD;
    if (n > 2 && rsp[2] != e->cmd)
        return PREFIX_BAD;
    if (n > 3 && rsp[3] > LPACCEL_LINK_BAD_ADDRESS)
        return PREFIX_BAD;
    if (n < LPACCEL_LINK_RSP_HEADER)
        return PREFIX_PARTIAL;
    len = (unsigned)rsp[4] | (unsigned)rsp[5] << 8;
    if (len != (rsp[3] == LPACCEL_LINK_OK ? e->words : 0u))
        return PREFIX_BAD;
    want = frame_len(rsp, e);
    if (n < want)
        return PREFIX_PARTIAL;
    crc = lpaccel_crc16(0xFFFFu, rsp, want - 2u);
    if (rsp[want - 2] != (uint8_t)crc || rsp[want - 1] != (uint8_t)(crc >> 8))
        return PREFIX_BAD_CRC;
    return PREFIX_GOOD;
}

/* Drop the first buffered byte. */
static void drop_first(lpaccel_link *link)
{
    size_t i;
    for (i = 1; i < link->rsp_len; i++)
        link->rsp[i - 1] = link->rsp[i];
    link->rsp_len--;
    link->stats.dropped_bytes++;
}

/*
 * Add one received byte. Returns PREFIX_GOOD when rsp holds the expected
 * response (good CRC), PREFIX_BAD_CRC when a response with the expected
 * header failed its CRC (the caller retries), else PREFIX_PARTIAL. On a
 * mismatch the parser drops one byte and rescans what it holds, so a false
 * start marker never hides a real response behind it.
 */
static int parse_byte(lpaccel_link *link, uint8_t byte, const expect *e)
{
    int r, bad_crc = 0;
    link->rsp[link->rsp_len++] = byte;
    for (;;) {
        r = check_prefix(link->rsp, link->rsp_len, e);
        if (r == PREFIX_GOOD || r == PREFIX_PARTIAL)
            break;
        if (r == PREFIX_BAD_CRC) {
            link->stats.crc_errors++;
            bad_crc = 1;
        }
        drop_first(link);
    }
    if (r == PREFIX_GOOD)
        return PREFIX_GOOD;
    return bad_crc ? PREFIX_BAD_CRC : PREFIX_PARTIAL;
}

/* --- transactions ------------------------------------------------------------------------- */

void lpaccel_link_init(lpaccel_link *link, const lpaccel_link_io *io, uint32_t timeout_ms,
                       unsigned retries)
{
    unsigned i;
    link->io = *io;
    link->timeout_ms = timeout_ms;
    link->baud = 0;
    link->retries = retries;
    link->cycles_per_us = 100u;
    link->seq = 0;
    link->stats.requests = 0;
    link->stats.frames_sent = 0;
    link->stats.retries = 0;
    link->stats.timeouts = 0;
    link->stats.crc_errors = 0;
    link->stats.dropped_bytes = 0;
    link->stats.error_responses = 0;
    link->stats.failures = 0;
    link->rx_pos = link->rx_len = 0;
    link->rsp_len = 0;
    link->last_cmd = 0;
    link->last_addr = 0;
    for (i = 0; i < LPACCEL_LINK_INFO_WORDS; i++)
        link->info[i] = 0;
}

static int status_error(uint8_t status)
{
    switch (status) {
    case LPACCEL_LINK_BUS_ERROR:
        return LPACCEL_ERR_BUS;
    case LPACCEL_LINK_BAD_COMMAND:
        return LPACCEL_ERR_LINK_BAD_COMMAND;
    default:
        return LPACCEL_ERR_LINK_BAD_ADDRESS;
    }
}

/*
 * One attempt: wait until the deadline for the expected response.
 * PREFIX_GOOD: rsp holds it; PREFIX_BAD_CRC: a corrupted one arrived;
 * PREFIX_PARTIAL: timeout; <0: -(I/O error).
 */
static int await_response(lpaccel_link *link, const expect *e, uint32_t start, uint32_t limit)
{
    uint32_t elapsed;
    size_t got;
    int r, err;
    for (;;) {
        while (link->rx_pos < link->rx_len) {
            r = parse_byte(link, link->rx[link->rx_pos++], e);
            if (r != PREFIX_PARTIAL)
                return r;
        }
        elapsed = link->io.now_ms(link->io.ctx) - start;
        if (elapsed >= limit)
            return PREFIX_PARTIAL;
        link->rx_pos = link->rx_len = 0;
        err = link->io.recv(link->io.ctx, link->rx, sizeof link->rx, limit - elapsed, &got);
        if (err)
            return -err;
        link->rx_len = got;
    }
}

int lpaccel_link_transact(lpaccel_link *link, uint8_t cmd, uint32_t addr, unsigned words,
                          const uint32_t *wdata, uint32_t *rdata)
{
    expect e;
    size_t n, i;
    unsigned attempt;
    uint32_t limit, first;
    int r, err;

    if (link == NULL || words < 1u || words > LPACCEL_LINK_MAX_WORDS)
        return LPACCEL_ERR_ARG;
    if ((lpaccel_link_cmd_writes(cmd) && wdata == NULL) ||
        (!lpaccel_link_cmd_writes(cmd) && rdata == NULL))
        return LPACCEL_ERR_ARG;
    link->seq = (uint8_t)(link->seq + 1u);
    link->last_cmd = cmd;
    link->last_addr = addr;
    link->stats.requests++;
    n = lpaccel_link_encode(link->tx, link->seq, cmd, addr, words, wdata);
    if (n == 0)
        return LPACCEL_ERR_ARG;
    e.seq = link->seq;
    e.cmd = cmd;
    e.words = lpaccel_link_cmd_writes(cmd) ? 0u : words;
    /* The first wait: timeout plus the line time of request and response. */
    limit = link->timeout_ms;
    if (link->baud)
        /* 32-bit arithmetic (a 32-bit CPU has no 64-bit division without a
         * runtime helper): 10000 x 2080 bytes at most, plus the baud, fits. */
        limit += (10000u * (uint32_t)(n + frame_len_ok(e.words)) + link->baud - 1u) / link->baud;
    first = limit;
    /* Bytes left from an earlier operation cannot answer this SEQ. */
    link->rsp_len = 0;
    link->rx_pos = link->rx_len = 0;
    for (attempt = 0; attempt <= link->retries; attempt++) {
        if (attempt > 0) {
            link->stats.retries++;
            limit = limit * 2u < first * LPACCEL_LINK_BACKOFF ? limit * 2u
                                                               : first * LPACCEL_LINK_BACKOFF;
        }
        link->stats.frames_sent++;
        if ((err = link->io.send(link->io.ctx, link->tx, n)))
            return err;
        r = await_response(link, &e, link->io.now_ms(link->io.ctx), limit);
        if (r < 0)
            return -r;
        if (r == PREFIX_GOOD) {
            link->rsp_len = 0;
            if (link->rsp[3] != LPACCEL_LINK_OK) {
                link->stats.error_responses++;
                return status_error(link->rsp[3]);
            }
            for (i = 0; i < e.words; i++)
                rdata[i] = get32(link->rsp + LPACCEL_LINK_RSP_HEADER + 4u * i);
            return LPACCEL_OK;
        }
        if (r == PREFIX_PARTIAL)
            link->stats.timeouts++;
        /* A partial candidate of this attempt may be the start of a response
         * that was cut; the retry's response follows it, so keep scanning
         * (the parser rescans) rather than discarding. */
    }
    link->stats.failures++;
    return LPACCEL_ERR_LINK_TIMEOUT;
}

int lpaccel_link_info(lpaccel_link *link, uint32_t info[LPACCEL_LINK_INFO_WORDS])
{
    return lpaccel_link_transact(link, LPACCEL_LINK_INFO, 0, LPACCEL_LINK_INFO_WORDS, NULL,
                                 info);
}

int lpaccel_link_open(lpaccel_link *link)
{
    int err = lpaccel_link_info(link, link->info);
    if (err)
        return err;
    if (link->info[0] != LPACCEL_LINK_MAGIC || (link->info[1] & 0xFFu) != LPACCEL_LINK_VERSION)
        return LPACCEL_ERR_LINK_PROTOCOL;
    return LPACCEL_OK;
}

/* --- HAL over the link ------------------------------------------------------------------- */

static int hal_reg_read(void *ctx, uint32_t addr, uint32_t *value)
{
    return lpaccel_link_transact((lpaccel_link *)ctx, LPACCEL_LINK_REG_READ, addr, 1, NULL,
                                 value);
}

static int hal_reg_write(void *ctx, uint32_t addr, uint32_t value)
{
    return lpaccel_link_transact((lpaccel_link *)ctx, LPACCEL_LINK_REG_WRITE, addr, 1, &value,
                                 NULL);
}

/* Words of the next memory command at addr: at most MAX_WORDS, not past 4 KiB. */
static unsigned chunk_words(uint32_t addr, size_t left_bytes)
{
    size_t words = (LPACCEL_LINK_PAGE - addr % LPACCEL_LINK_PAGE) / 4u;
    if (words > LPACCEL_LINK_MAX_WORDS)
        words = LPACCEL_LINK_MAX_WORDS;
    if (words > left_bytes / 4u)
        words = left_bytes / 4u;
    return (unsigned)words;
}

static int hal_mem_write(void *ctx, uint32_t addr, const void *data, size_t n)
{
    lpaccel_link *link = (lpaccel_link *)ctx;
    const uint8_t *p = (const uint8_t *)data;
    unsigned words, i;
    int err;
    if (addr % 4u || n % 4u)
        return LPACCEL_ERR_ALIGN;
    while (n) {
        words = chunk_words(addr, n);
        for (i = 0; i < words; i++)
            link->scratch[i] = get32(p + 4u * i);
        err = lpaccel_link_transact(link, LPACCEL_LINK_MEM_WRITE, addr, words, link->scratch,
                                    NULL);
        if (err)
            return err;
        addr += 4u * words;
        p += 4u * words;
        n -= 4u * words;
    }
    return LPACCEL_OK;
}

static int hal_mem_read(void *ctx, uint32_t addr, void *data, size_t n)
{
    lpaccel_link *link = (lpaccel_link *)ctx;
    uint8_t *p = (uint8_t *)data;
    unsigned words, i;
    int err;
    if (addr % 4u || n % 4u)
        return LPACCEL_ERR_ALIGN;
    while (n) {
        words = chunk_words(addr, n);
        err = lpaccel_link_transact(link, LPACCEL_LINK_MEM_READ, addr, words, NULL,
                                    link->scratch);
        if (err)
            return err;
        for (i = 0; i < words; i++)
            put32(p + 4u * i, link->scratch[i]);
        addr += 4u * words;
        p += 4u * words;
        n -= 4u * words;
    }
    return LPACCEL_OK;
}

static void hal_wait(void *ctx, uint32_t cycles)
{
    lpaccel_link *link = (lpaccel_link *)ctx;
    /* Every poll over the link already takes far longer than a few cycles;
     * the wait only keeps long jobs from flooding the line. */
    if (link->io.wait_us != NULL && link->cycles_per_us)
        link->io.wait_us(link->io.ctx, cycles / link->cycles_per_us);
}

void lpaccel_link_hal(lpaccel_hal *hal, lpaccel_link *link)
{
    hal->ctx = link;
    hal->reg_read = hal_reg_read;
    hal->reg_write = hal_reg_write;
    hal->mem_write = hal_mem_write;
    hal->mem_read = hal_mem_read;
    hal->wait = hal_wait;
}
