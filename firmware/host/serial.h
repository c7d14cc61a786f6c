/*
 * serial.h - POSIX byte port for the lpaccel link: a serial device (or a
 * pseudo-terminal) in raw mode, with the I/O callbacks of lpaccel_link_io.
 */
#ifndef LPACCEL_SERIAL_H
#define LPACCEL_SERIAL_H

#include <stdint.h>

#include "lpaccel_link.h"

typedef struct lpaccel_serial {
    int fd;
    uint64_t bytes_out, bytes_in;
} lpaccel_serial;

/*
 * Open `path` raw (8N1, no flow control, no echo) at `baud`. Returns 0, or
 * -1 with errno set (an unsupported baud is EINVAL).
 */
int lpaccel_serial_open(lpaccel_serial *port, const char *path, unsigned long baud);

void lpaccel_serial_close(lpaccel_serial *port);

/* The link callbacks over `port` (io->ctx = port). */
void lpaccel_serial_io(lpaccel_link_io *io, lpaccel_serial *port);

#endif
