/*
 * serial.c - POSIX serial port for the lpaccel link (termios raw mode,
 * reads with a timeout through poll()).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE         /* the high baud rates (B3000000, ...) of Linux */

#include "serial.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int baud_constant(unsigned long baud, speed_t *speed)
{
    static const struct { unsigned long baud; speed_t speed; } table[] = {
        {9600, B9600}, {19200, B19200}, {38400, B38400}, {57600, B57600},
        {115200, B115200}, {230400, B230400},
#ifdef B460800
        {460800, B460800},
#endif
#ifdef B921600
        {921600, B921600},
#endif
#ifdef B1000000
        {1000000, B1000000},
#endif
#ifdef B2000000
        {2000000, B2000000},
#endif
#ifdef B3000000
        {3000000, B3000000},
#endif
#ifdef B4000000
        {4000000, B4000000},
#endif
    };
    size_t i;
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].baud == baud) {
            *speed = table[i].speed;
            return 0;
        }
    }
    return -1;
}

int lpaccel_serial_open(lpaccel_serial *port, const char *path, unsigned long baud)
{
    struct termios tio;
    speed_t speed;

    port->fd = -1;
    port->bytes_out = port->bytes_in = 0;
    if (baud_constant(baud, &speed)) {
        errno = EINVAL;
        return -1;
    }
    port->fd = open(path, O_RDWR | O_NOCTTY);
    if (port->fd < 0)
        return -1;
    if (tcgetattr(port->fd, &tio)) {
        close(port->fd);
        port->fd = -1;
        return -1;
    }
    /* Raw: no line editing, echo, signals, translation or flow control; 8N1. */
    tio.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL |
                               IXON | IXOFF | IXANY);
    tio.c_oflag &= ~(tcflag_t)OPOST;
    tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    tio.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB);
    tio.c_cflag |= CS8 | CREAD | CLOCAL;
    tio.c_cc[VMIN] = 0;
    tio.c_cc[VTIME] = 0;
    if (cfsetispeed(&tio, speed) || cfsetospeed(&tio, speed) ||
        tcsetattr(port->fd, TCSANOW, &tio)) {
        close(port->fd);
        port->fd = -1;
        return -1;
    }
    tcflush(port->fd, TCIOFLUSH);
    return 0;
}

void lpaccel_serial_close(lpaccel_serial *port)
{
    if (port->fd >= 0)
        close(port->fd);
    port->fd = -1;
}

static int io_send(void *ctx, const uint8_t *data, size_t n)
{
    lpaccel_serial *port = (lpaccel_serial *)ctx;
    struct pollfd pfd;
    ssize_t k;
    while (n) {
        k = write(port->fd, data, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                pfd.fd = port->fd;
                pfd.events = POLLOUT;
                poll(&pfd, 1, 100);
                continue;
            }
            return LPACCEL_ERR_IO;
        }
        data += k;
        n -= (size_t)k;
        port->bytes_out += (uint64_t)k;
    }
    return LPACCEL_OK;
}

static int io_recv(void *ctx, uint8_t *data, size_t max, uint32_t timeout_ms, size_t *got)
{
    lpaccel_serial *port = (lpaccel_serial *)ctx;
    struct pollfd pfd;
    ssize_t k;
    int r;
    *got = 0;
    pfd.fd = port->fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    r = poll(&pfd, 1, timeout_ms > 0x7FFFFFFFu ? 0x7FFFFFFF : (int)timeout_ms);
    if (r < 0)
        return errno == EINTR ? LPACCEL_OK : LPACCEL_ERR_IO;
    if (r == 0)
        return LPACCEL_OK;
    if (!(pfd.revents & POLLIN))
        return LPACCEL_ERR_IO;          /* hang-up or error without data */
    k = read(port->fd, data, max);
    if (k < 0)
        return errno == EINTR || errno == EAGAIN ? LPACCEL_OK : LPACCEL_ERR_IO;
    *got = (size_t)k;
    port->bytes_in += (uint64_t)k;
    return LPACCEL_OK;
}

static uint32_t io_now_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static void io_wait_us(void *ctx, uint32_t us)
{
    struct timespec ts;
    (void)ctx;
    if (us == 0)
        return;
    ts.tv_sec = us / 1000000u;
    ts.tv_nsec = (long)(us % 1000000u) * 1000L;
    nanosleep(&ts, NULL);
}

void lpaccel_serial_io(lpaccel_link_io *io, lpaccel_serial *port)
{
    io->ctx = port;
    io->send = io_send;
    io->recv = io_recv;
    io->now_ms = io_now_ms;
    io->wait_us = io_wait_us;
}
