/* The portable protocol core of the LED-panel firmware (PROTOCOL.md): command handling, the
 * safety rules and the sequence player. Same C source on the MCU and in the host panel simulator;
 * the target's HAL (panel_hal.h) supplies the clock, the PWM outputs and the serial line. */
#ifndef PANEL_H
#define PANEL_H

#include <stdint.h>

#ifndef PANEL_PROTOCOL_VERSION /* overridable only to test a host against another version */
#define PANEL_PROTOCOL_VERSION 1
#endif
#define PANEL_MAX_CHANNELS 4
#define PANEL_MAX_STEPS 12
#define PANEL_MAX_PAYLOAD 160 /* type + seq + body + CRC, before COBS */
#define PANEL_MAX_ENCODED (PANEL_MAX_PAYLOAD + PANEL_MAX_PAYLOAD / 254 + 3)
#define PANEL_EDGE_HISTORY 16

/* Commands (host → panel); a reply carries the command | 0x80, a refusal PANEL_NACK. */
enum {
    PANEL_CMD_HELLO = 0x01,
    PANEL_CMD_TIME = 0x02,
    PANEL_CMD_LOAD = 0x03,
    PANEL_CMD_ARM = 0x04,
    PANEL_CMD_FIRE = 0x05,
    PANEL_CMD_REPORT = 0x06,
    PANEL_CMD_STATUS = 0x07,
    PANEL_CMD_OFF = 0x08,
    PANEL_CMD_CLEAR_FAULT = 0x09,
    PANEL_NACK = 0x7F
};

/* NACK codes (PROTOCOL.md §5). */
enum {
    PANEL_ERR_MALFORMED = 1,
    PANEL_ERR_UNKNOWN_COMMAND = 2,
    PANEL_ERR_LEVEL = 3,       /* a level above the brightness cap */
    PANEL_ERR_STEPS = 4,       /* no step, or more than max_steps */
    PANEL_ERR_DURATION = 5,    /* a step or the sequence outside the duration limits */
    PANEL_ERR_DUTY = 6,        /* mean level above the duty-cycle cap */
    PANEL_ERR_FLASH_RATE = 7,  /* the sequence alone has more flashes than allowed per window */
    PANEL_ERR_RATE_WAIT = 8,   /* firing now would break the flash-rate or cool-down rule */
    PANEL_ERR_STATE = 9,       /* not loaded / not armed / busy playing */
    PANEL_ERR_FAULT = 10,      /* a latched fault: lights are off until CLEAR_FAULT */
    PANEL_ERR_FIRE_TIME = 11   /* fire time in the past or beyond max_fire_lead_us */
};

/* Player states reported by REPORT and STATUS. */
enum {
    PANEL_IDLE = 0,
    PANEL_LOADED = 1,
    PANEL_ARMED = 2,
    PANEL_SCHEDULED = 3,
    PANEL_PLAYING = 4,
    PANEL_DONE = 5,
    PANEL_ABORTED = 6
};

/* Latched faults and abort reasons. */
enum {
    PANEL_FAULT_NONE = 0,
    PANEL_FAULT_OVER_TEMPERATURE = 1,
    PANEL_FAULT_DRIVER = 2,
    PANEL_ABORT_WATCHDOG = 3,
    PANEL_ABORT_HOST_OFF = 4
};

typedef struct panel_limits {
    uint8_t channels;            /* PWM LED channels (3 = R, G, B) */
    uint8_t pwm_bits;            /* PWM resolution */
    uint16_t max_level;          /* brightness cap, in PWM counts (≤ 2^pwm_bits − 1) */
    uint8_t max_steps;           /* longest sequence, in steps (≤ PANEL_MAX_STEPS) */
    uint32_t min_step_us;        /* shortest step */
    uint32_t max_step_us;        /* longest step */
    uint32_t max_sequence_us;    /* longest sequence */
    uint16_t duty_cap_permille;  /* mean of the brightest channel over a sequence, ‰ of max */
    uint8_t max_flash_edges;     /* luminance edges allowed in any flash window (2 per flash) */
    uint32_t flash_window_us;    /* the flash-rate window (1 s: WCAG 2.3.1) */
    uint16_t edge_permille;      /* a luminance change this large (‰ of full) is an edge */
    uint32_t watchdog_us;        /* host silence that turns the lights off */
    uint32_t max_fire_lead_us;   /* how far ahead FIRE may schedule */
    int16_t max_temperature_dc;  /* over this: latched fault, lights off */
    uint32_t clock_hz;           /* the MCU's core clock, for the host's information */
} panel_limits;

typedef struct panel {
    panel_limits limits;
    /* receive */
    uint8_t rx[PANEL_MAX_ENCODED];
    uint16_t rx_length;
    uint8_t rx_overflow;
    /* replies: the last state-changing reply, resent for a retransmitted command */
    uint8_t tx[PANEL_MAX_ENCODED + 2];
    uint16_t tx_length;
    uint8_t cached_valid;
    uint8_t cached_command;
    uint8_t cached_seq;
    uint8_t cached[PANEL_MAX_ENCODED + 2];
    uint16_t cached_length;
    /* the loaded sequence */
    uint8_t steps;
    uint16_t level[PANEL_MAX_STEPS][PANEL_MAX_CHANNELS];
    uint32_t duration_us[PANEL_MAX_STEPS];
    uint16_t luminance[PANEL_MAX_STEPS]; /* ‰ of full */
    uint32_t lit_us;                     /* Σ duration × brightest channel / max_level */
    /* the player */
    uint8_t state;
    uint8_t step;
    uint8_t abort_reason;
    uint64_t fire_at_us;
    uint64_t next_at_us;
    uint64_t onset_us[PANEL_MAX_STEPS];
    uint64_t end_us;
    /* safety */
    uint8_t fault;
    uint8_t lights_on;
    uint16_t output_luminance;
    uint64_t edge_us[PANEL_EDGE_HISTORY]; /* ring of the last luminance edges */
    uint8_t edge_head;
    uint8_t edge_count;
    uint64_t cool_until_us;
    uint64_t last_host_us;
    uint16_t frames_bad;
    uint16_t frames_ok;
} panel;

/* Power-up: lights off, limits checked (returns non-zero for limits the core cannot hold). */
int panel_init(panel *p, const panel_limits *limits, uint64_t now_us);

/* One received byte and when it arrived (the TIME stamp is the delimiter's arrival). */
void panel_rx_byte(panel *p, uint8_t byte, uint64_t now_us);

/* Run the watchdog, the fault checks and the player; returns µs until it needs calling again. */
uint32_t panel_poll(panel *p, uint64_t now_us);

#endif
