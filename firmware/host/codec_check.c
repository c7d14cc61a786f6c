/*
 * lpaccel-fw-codec - the link codec on stdin/stdout, for tests that compare
 * it with lpaccel/link.py (tests/firmware/test_codec.py). One command per line:
 *
 *   crc HEX                          -> CRC-16 of the bytes, 4 hex digits
 *   enc SEQ CMD ADDR COUNT [WORD...] -> the request frame in hex
 *   xact SEQ CMD ADDR COUNT HEX      -> one lpaccel_link_transact (read, or a
 *                                       write of COUNT zero words) with SEQ,
 *                                       3 retries, the device's bytes HEX
 *                                       then silence: "ok W..." or "err CODE",
 *                                       then the stats
 *
 * Numbers are C literals (0x.. allowed).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lpaccel_link.h"

static uint8_t script[4 * LPACCEL_LINK_MAX_RESPONSE + 4096];
static size_t script_len, script_pos;
static uint32_t clock_ms;

static int fake_send(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    (void)data;
    (void)n;
    return 0;
}

static int fake_recv(void *ctx, uint8_t *data, size_t max, uint32_t timeout_ms, size_t *got)
{
    size_t n = 0;
    (void)ctx;
    /* Deliver the script in small uneven pieces, then time out. */
    while (n < max && n < 7 && script_pos < script_len)
        data[n++] = script[script_pos++];
    if (n == 0)
        clock_ms += timeout_ms;
    *got = n;
    return 0;
}

static uint32_t fake_now(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

static size_t parse_hex(const char *text, uint8_t *out, size_t max)
{
    size_t n = 0;
    unsigned v;
    while (text[0] && text[1] && n < max && sscanf(text, "%2x", &v) == 1) {
        out[n++] = (uint8_t)v;
        text += 2;
    }
    return n;
}

int main(void)
{
    static char line[1 << 16];
    static uint8_t buf[LPACCEL_LINK_MAX_REQUEST];
    static uint32_t words[LPACCEL_LINK_MAX_WORDS];
    static lpaccel_link link;
    lpaccel_link_io io;
    char *tok, *save;
    size_t n, i;

    io.ctx = NULL;
    io.send = fake_send;
    io.recv = fake_recv;
    io.now_ms = fake_now;
    io.wait_us = NULL;
    while (fgets(line, sizeof line, stdin)) {
        tok = strtok_r(line, " \n", &save);
        if (tok == NULL)
            continue;
        if (!strcmp(tok, "crc")) {
            tok = strtok_r(NULL, " \n", &save);
            n = tok ? parse_hex(tok, script, sizeof script) : 0;
            printf("%04x\n", lpaccel_crc16(0xFFFFu, script, n));
        } else if (!strcmp(tok, "enc")) {
            unsigned long seq = strtoul(strtok_r(NULL, " \n", &save), NULL, 0);
            unsigned long cmd = strtoul(strtok_r(NULL, " \n", &save), NULL, 0);
            unsigned long addr = strtoul(strtok_r(NULL, " \n", &save), NULL, 0);
            unsigned long count = strtoul(strtok_r(NULL, " \n", &save), NULL, 0);
            for (i = 0; i < count && i < LPACCEL_LINK_MAX_WORDS &&
                        (tok = strtok_r(NULL, " \n", &save)) != NULL; i++)
                words[i] = (uint32_t)strtoul(tok, NULL, 0);
            n = lpaccel_link_encode(buf, (uint8_t)seq, (uint8_t)cmd, (uint32_t)addr,
                                    (unsigned)count, words);
            for (i = 0; i < n; i++)
                printf("%02x", buf[i]);
            printf("\n");
        } else if (!strcmp(tok, "xact")) {
            unsigned long seq = strtoul(strtok_r(NULL, " \n", &save), NULL, 0);
            unsigned long cmd = strtoul(strtok_r(NULL, " \n", &save), NULL, 0);
            unsigned long addr = strtoul(strtok_r(NULL, " \n", &save), NULL, 0);
            unsigned long count = strtoul(strtok_r(NULL, " \n", &save), NULL, 0);
            int err;
            tok = strtok_r(NULL, " \n", &save);
            script_len = tok ? parse_hex(tok, script, sizeof script) : 0;
            script_pos = 0;
            lpaccel_link_init(&link, &io, 100, 3);
            link.seq = (uint8_t)(seq - 1u);     /* transact uses the next SEQ */
            for (i = 0; i < LPACCEL_LINK_MAX_WORDS; i++)
                words[i] = 0;
            err = lpaccel_link_transact(&link, (uint8_t)cmd, (uint32_t)addr, (unsigned)count,
                                        words, words);
            if (err)
                printf("err %d", err);
            else {
                printf("ok");
                for (i = 0; i < (lpaccel_link_cmd_writes((uint8_t)cmd) ? 0 : count); i++)
                    printf(" %08lx", (unsigned long)words[i]);
            }
            printf(" | crc_errors %lu dropped %lu timeouts %lu\n",
                   (unsigned long)link.stats.crc_errors, (unsigned long)link.stats.dropped_bytes,
                   (unsigned long)link.stats.timeouts);
        } else {
            printf("? %s\n", tok);
        }
        fflush(stdout);
    }
    return 0;
}
