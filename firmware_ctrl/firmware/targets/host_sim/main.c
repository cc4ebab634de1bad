/* The panel simulator: the firmware's protocol core built for the host, behind a pseudo-terminal.
 *
 * The host side of a pty (its master fd, passed with --fd) is the panel's serial line. The MCU
 * clock is CLOCK_MONOTONIC with an offset and a drift (--offset-us, --drift-ppm), as a real
 * crystal differs from the host's clock. Every PWM change is written to --events-fd as
 * "L <host monotonic µs> <mcu µs> <level>...\n": when the emitters really switched, on the host
 * clock, for the simulated kiosk's camera and for the tests that measure the clock mapping.
 * SIGUSR1 heats the panel past its limit (an over-temperature fault), SIGUSR2 cools it again;
 * SIGTERM ends it (lights off). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "../../core/panel.h"
#include "../../core/panel_hal.h"
#include "../../core/panel_reference.h"

static int serial_fd = -1;
static int events_fd = -1;
static int64_t start_ns;
static int64_t offset_us = 1000000;
static double drift_ppm = 0.0;
static volatile sig_atomic_t hot = 0;
static volatile sig_atomic_t stopping = 0;

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t mcu_from_mono(int64_t ns) {
    double elapsed_us = (double)(ns - start_ns) / 1000.0;
    return (uint64_t)(offset_us + (int64_t)(elapsed_us * (1.0 + drift_ppm * 1e-6)));
}

uint64_t hal_now_us(void) { return mcu_from_mono(mono_ns()); }

void hal_set_levels(const uint16_t *levels, uint8_t channels) {
    int64_t ns = mono_ns();
    if (events_fd < 0) return;
    char line[128];
    int n = snprintf(line, sizeof line, "L %lld %llu", (long long)(ns / 1000),
                     (unsigned long long)mcu_from_mono(ns));
    for (uint8_t c = 0; c < channels && n < (int)sizeof line - 8; ++c)
        n += snprintf(line + n, sizeof line - (size_t)n, " %u", levels[c]);
    line[n++] = '\n';
    if (write(events_fd, line, (size_t)n) < 0) events_fd = -1;
}

void hal_write(const uint8_t *data, uint16_t length) {
    while (length > 0) {
        ssize_t n = write(serial_fd, data, length);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return; /* the host side is gone: the watchdog turns the lights off */
        }
        data += n;
        length = (uint16_t)(length - n);
    }
}

int16_t hal_temperature_dc(void) { return hot ? 950 : 310; }

uint8_t hal_driver_fault(void) { return 0; }

static void on_signal(int sig) {
    if (sig == SIGUSR1) hot = 1;
    if (sig == SIGUSR2) hot = 0;
    if (sig == SIGTERM || sig == SIGINT) stopping = 1;
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--fd")) serial_fd = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--events-fd")) events_fd = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--offset-us")) offset_us = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--drift-ppm")) drift_ppm = atof(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (serial_fd < 0) {
        fprintf(stderr, "usage: panel_sim --fd <pty master fd> [--events-fd N] "
                        "[--offset-us N] [--drift-ppm X]\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* the daemon that started it died: power off */
    start_ns = mono_ns();
    static panel core;
    const panel_limits limits = PANEL_REFERENCE_LIMITS(1000000u);
    if (panel_init(&core, &limits, hal_now_us()) != 0) {
        fprintf(stderr, "panel_sim: invalid limits\n");
        return 3;
    }
    uint8_t buffer[256];
    while (!stopping) {
        uint32_t wait_us = panel_poll(&core, hal_now_us());
        if (wait_us > 1000) wait_us = 1000;
        struct pollfd pfd = {.fd = serial_fd, .events = POLLIN, .revents = 0};
        struct timespec timeout = {.tv_sec = 0, .tv_nsec = (long)wait_us * 1000L};
        int ready = ppoll(&pfd, 1, &timeout, NULL);
        if (ready > 0 && (pfd.revents & POLLIN)) {
            ssize_t n = read(serial_fd, buffer, sizeof buffer);
            uint64_t stamp = hal_now_us();
            for (ssize_t i = 0; i < n; ++i) panel_rx_byte(&core, buffer[i], stamp);
        } else if (ready > 0 && (pfd.revents & (POLLHUP | POLLERR))) {
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000L};
            nanosleep(&pause, NULL); /* no host attached: keep the clock and the watchdog */
        }
    }
    static const uint16_t dark[PANEL_MAX_CHANNELS] = {0};
    hal_set_levels(dark, limits.channels);
    return 0;
}
