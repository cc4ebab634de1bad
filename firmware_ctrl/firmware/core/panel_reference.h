/* The limits of the reference panel (docs/LED_PANEL.md): an RGB LED panel on an ATmega328P,
 * 8-bit PWM. The host panel simulator reports the same limits, so the daemon is tested against
 * the rules the real board enforces. Every value is a safety or protocol limit, PROTOCOL.md §6. */
#ifndef PANEL_REFERENCE_H
#define PANEL_REFERENCE_H

#include "panel.h"

#define PANEL_REFERENCE_LIMITS(clock_hz_value)                                                 \
    {                                                                                          \
        .channels = 3, .pwm_bits = 8, .max_level = 255, .max_steps = PANEL_MAX_STEPS,          \
        .min_step_us = 5000, .max_step_us = 250000, .max_sequence_us = 1000000,                \
        .duty_cap_permille = 700, .max_flash_edges = 6, .flash_window_us = 1000000,            \
        .edge_permille = 100, .watchdog_us = 2000000, .max_fire_lead_us = 500000,              \
        .max_temperature_dc = 700, .clock_hz = (clock_hz_value)                                \
    }

#endif
