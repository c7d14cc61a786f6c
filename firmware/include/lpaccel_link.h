/*
 * lpaccel_link.h - host side of the lpaccel link protocol (docs/link.md), C99,
 * freestanding.
 *
 * Three layers, each usable alone:
 *  - the codec: CRC-16/CCITT-FALSE, request encoding;
 *  - the transaction layer (struct lpaccel_link): sequence numbers, one
 *    request at a time, a response parser that resynchronises byte by byte,
 *    timeout and retry with the same SEQ. Byte I/O and the clock are
 *    callbacks (struct lpaccel_link_io), so it runs over a POSIX serial port
 *    (firmware/host/serial.c), a UART of a soft CPU, or a test harness;
 *  - a HAL (lpaccel_link_hal) that the driver library (lpaccel.h) uses:
 *    registers through REG_READ/REG_WRITE, memory through MEM_READ/MEM_WRITE,
 *    split at MAX_WORDS and at 4 KiB boundaries.
 *
 * Guarantees (docs/link.md, "Reliability rules"): read data reach the caller
 * only from a response with a good CRC, the request's SEQ and CMD, STATUS OK
 * and the right LEN; a failed operation returns an error after `retries`
 * retries and never hands out partial data.
 */
#ifndef LPACCEL_LINK_H
#define LPACCEL_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lpaccel.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LPACCEL_LINK_REQ_SOF 0xA5u
#define LPACCEL_LINK_RSP_SOF 0x5Au
#define LPACCEL_LINK_MAX_WORDS 256u
#define LPACCEL_LINK_MAGIC 0x4B4E4C4Cu     /* "LLNK", LINK_INFO word 0 */
#define LPACCEL_LINK_VERSION 1u
#define LPACCEL_LINK_INFO_WORDS 8u
#define LPACCEL_LINK_PAGE 4096u            /* memory commands may not cross it */
#define LPACCEL_LINK_REQ_HEADER 8u
#define LPACCEL_LINK_RSP_HEADER 6u
#define LPACCEL_LINK_CRC_BYTES 2u
#define LPACCEL_LINK_MAX_REQUEST (LPACCEL_LINK_REQ_HEADER + 4u * LPACCEL_LINK_MAX_WORDS + 2u)
#define LPACCEL_LINK_MAX_RESPONSE (LPACCEL_LINK_RSP_HEADER + 4u * LPACCEL_LINK_MAX_WORDS + 2u)

enum lpaccel_link_cmd {
    LPACCEL_LINK_REG_READ = 1,
    LPACCEL_LINK_REG_WRITE = 2,
    LPACCEL_LINK_MEM_READ = 3,
    LPACCEL_LINK_MEM_WRITE = 4,
    LPACCEL_LINK_INFO = 5
};

enum lpaccel_link_status {
    LPACCEL_LINK_OK = 0,
    LPACCEL_LINK_BUS_ERROR = 1,
    LPACCEL_LINK_BAD_COMMAND = 2,
    LPACCEL_LINK_BAD_ADDRESS = 3
};

/* CRC-16/CCITT-FALSE: continue `crc` (start with 0xFFFF) over n bytes. */
uint16_t lpaccel_crc16(uint16_t crc, const uint8_t *data, size_t n);

/*
 * Encode one request into buf (at least LPACCEL_LINK_MAX_REQUEST bytes):
 * `words` 1..256; `data` the words of a write command (NULL for reads).
 * Returns the frame length, 0 if an argument is out of range.
 */
size_t lpaccel_link_encode(uint8_t *buf, uint8_t seq, uint8_t cmd, uint32_t addr,
                           unsigned words, const uint32_t *data);

/* True for the commands whose request carries data. */
bool lpaccel_link_cmd_writes(uint8_t cmd);

/*
 * Byte I/O and time for the transaction layer.
 * send: write n bytes (all of them), 0 or LPACCEL_ERR_IO.
 * recv: wait at most timeout_ms for at least one byte, read up to max;
 *       *got = 0 on a timeout; 0 or LPACCEL_ERR_IO.
 * now_ms: a millisecond clock (wraps at 2^32).
 * wait_us: optional, sleep about us microseconds (the HAL's polling wait).
 */
typedef struct lpaccel_link_io {
    void *ctx;
    int (*send)(void *ctx, const uint8_t *data, size_t n);
    int (*recv)(void *ctx, uint8_t *data, size_t max, uint32_t timeout_ms, size_t *got);
    uint32_t (*now_ms)(void *ctx);
    void (*wait_us)(void *ctx, uint32_t us);
} lpaccel_link_io;

/* What the link saw (all counts since lpaccel_link_init). */
typedef struct lpaccel_link_stats {
    uint32_t requests;          /* operations started */
    uint32_t frames_sent;       /* request frames sent, retries included */
    uint32_t retries;           /* frames re-sent with the same SEQ */
    uint32_t timeouts;          /* attempts that ended without a valid response */
    uint32_t crc_errors;        /* responses with the expected header and a bad CRC */
    uint32_t dropped_bytes;     /* bytes that did not start an expected response */
    uint32_t error_responses;   /* STATUS != OK */
    uint32_t failures;          /* operations that gave up */
} lpaccel_link_stats;

typedef struct lpaccel_link {
    lpaccel_link_io io;
    uint32_t timeout_ms;        /* first attempt's wait beyond the line time */
    uint32_t baud;              /* line rate for the line time (0: none, e.g. a pty) */
    unsigned retries;           /* re-sends after the first attempt (docs: 8) */
    uint32_t cycles_per_us;     /* HAL wait: device clock in MHz (default 100) */
    uint8_t seq;                /* SEQ of the last operation */
    uint8_t last_cmd;           /* command and address of the last operation */
    uint32_t last_addr;
    lpaccel_link_stats stats;
    /* receive buffer: bytes read from the port and not yet consumed */
    uint8_t rx[256];
    size_t rx_pos, rx_len;
    /* parser buffer: the candidate response being collected */
    uint8_t rsp[LPACCEL_LINK_MAX_RESPONSE];
    size_t rsp_len;
    uint8_t tx[LPACCEL_LINK_MAX_REQUEST];
    uint32_t scratch[LPACCEL_LINK_MAX_WORDS]; /* words of one memory command */
    uint32_t info[LPACCEL_LINK_INFO_WORDS];  /* LINK_INFO of lpaccel_link_open */
} lpaccel_link;

/*
 * Set up a link over io; no I/O. Each attempt waits timeout_ms plus the line
 * time of request and response (10 bits a byte at link->baud, default 0:
 * none); the wait doubles with every retry up to LPACCEL_LINK_BACKOFF times
 * the first (a slow device, such as a simulated board, catches up), as the
 * Python LinkTransport does.
 */
#define LPACCEL_LINK_BACKOFF 8u

void lpaccel_link_init(lpaccel_link *link, const lpaccel_link_io *io, uint32_t timeout_ms,
                       unsigned retries);

/*
 * Start a session: LINK_INFO (checks the magic and the protocol version).
 * Doing a read first also replaces the bridge's replay record, so a write
 * of this session can never be mistaken for a duplicate of the last
 * session's.
 */
int lpaccel_link_open(lpaccel_link *link);

/*
 * One operation: send the request (new SEQ), wait for its response, retry
 * with the same SEQ on a timeout or a bad response. `words` 1..256; for
 * writes `wdata` holds them, for reads `rdata` receives them (only on
 * success). Returns 0, LPACCEL_ERR_BUS / _LINK_BAD_COMMAND /
 * _LINK_BAD_ADDRESS (the bridge's answer), LPACCEL_ERR_LINK_TIMEOUT (gave up)
 * or LPACCEL_ERR_IO.
 */
int lpaccel_link_transact(lpaccel_link *link, uint8_t cmd, uint32_t addr, unsigned words,
                          const uint32_t *wdata, uint32_t *rdata);

/* Read the bridge's LINK_INFO words (8). */
int lpaccel_link_info(lpaccel_link *link, uint32_t info[LPACCEL_LINK_INFO_WORDS]);

/* Fill hal with functions over `link` (hal->ctx = link). */
void lpaccel_link_hal(lpaccel_hal *hal, lpaccel_link *link);

#ifdef __cplusplus
}
#endif

#endif /* LPACCEL_LINK_H */
