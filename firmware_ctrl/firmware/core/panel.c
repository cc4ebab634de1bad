/* The portable protocol core of the LED-panel firmware (PROTOCOL.md). */
#include "panel.h"

#include <string.h>

#include "panel_frame.h"
#include "panel_hal.h"

#define NOT_YET 0xFFFFFFFFu

static void put16(uint8_t *b, uint16_t v) {
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *b, uint32_t v) {
    for (uint8_t i = 0; i < 4; ++i) b[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *b, uint64_t v) {
    for (uint8_t i = 0; i < 8; ++i) b[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] | ((uint16_t)b[1] << 8)); }

static uint32_t get32(const uint8_t *b) {
    uint32_t v = 0;
    for (uint8_t i = 0; i < 4; ++i) v |= (uint32_t)b[i] << (8 * i);
    return v;
}

static uint64_t get64(const uint8_t *b) {
    uint64_t v = 0;
    for (uint8_t i = 0; i < 8; ++i) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static uint32_t clamp32(uint64_t v) { return v > 0xFFFFFFFEu ? 0xFFFFFFFEu : (uint32_t)v; }

/* Relative luminance of a channel setting, ‰ of the panel at full cap (Rec. 709 weights for
 * R, G, B, as WCAG's relative luminance; a fourth channel counts as white). */
static uint16_t luminance_permille(const panel *p, const uint16_t *levels) {
    const panel_limits *l = &p->limits;
    uint32_t lum;
    if (l->channels >= 3) {
        uint32_t weighted = 2126u * levels[0] + 7152u * levels[1] + 722u * levels[2];
        lum = weighted / (10u * l->max_level);
        if (l->channels == 4) lum += (1000u * levels[3]) / l->max_level;
    } else {
        uint16_t top = 0;
        for (uint8_t c = 0; c < l->channels; ++c) top = levels[c] > top ? levels[c] : top;
        lum = (1000u * top) / l->max_level;
    }
    return (uint16_t)(lum > 1000u ? 1000u : lum);
}

static uint16_t brightest(const panel *p, const uint16_t *levels) {
    uint16_t top = 0;
    for (uint8_t c = 0; c < p->limits.channels; ++c) top = levels[c] > top ? levels[c] : top;
    return top;
}

static uint8_t is_edge(const panel *p, uint16_t from, uint16_t to) {
    uint16_t change = from > to ? (uint16_t)(from - to) : (uint16_t)(to - from);
    return change >= p->limits.edge_permille;
}

/* Every change of the outputs goes through here, so every luminance edge is on record. */
static void apply_output(panel *p, const uint16_t *levels, uint64_t now_us) {
    hal_set_levels(levels, p->limits.channels);
    uint16_t lum = luminance_permille(p, levels);
    if (is_edge(p, p->output_luminance, lum)) {
        p->edge_us[p->edge_head] = now_us;
        p->edge_head = (uint8_t)((p->edge_head + 1) % PANEL_EDGE_HISTORY);
        if (p->edge_count < PANEL_EDGE_HISTORY) p->edge_count++;
    }
    p->output_luminance = lum;
    p->lights_on = brightest(p, levels) > 0;
}

static void lights_off(panel *p, uint64_t now_us) {
    static const uint16_t dark[PANEL_MAX_CHANNELS] = {0};
    apply_output(p, dark, now_us);
}

/* Stop whatever plays or waits: lights off, the sequence ends with ``reason``. */
static void abort_sequence(panel *p, uint8_t reason, uint64_t now_us) {
    lights_off(p, now_us);
    if (p->state == PANEL_SCHEDULED || p->state == PANEL_PLAYING) {
        p->state = PANEL_ABORTED;
        p->abort_reason = reason;
        p->end_us = hal_now_us();
        p->cool_until_us = p->end_us + p->lit_us;
    } else if (p->state == PANEL_ARMED) {
        p->state = PANEL_LOADED;
    }
}

static void latch_fault(panel *p, uint8_t fault, uint64_t now_us) {
    if (p->fault == PANEL_FAULT_NONE) p->fault = fault;
    abort_sequence(p, fault, now_us);
}

int panel_init(panel *p, const panel_limits *limits, uint64_t now_us) {
    memset(p, 0, sizeof *p);
    p->limits = *limits;
    /* Lights off at power-up, before anything else. */
    static const uint16_t dark[PANEL_MAX_CHANNELS] = {0};
    hal_set_levels(dark, limits->channels ? limits->channels : 1);
    p->last_host_us = now_us;
    if (limits->channels == 0 || limits->channels > PANEL_MAX_CHANNELS) return 1;
    if (limits->max_steps == 0 || limits->max_steps > PANEL_MAX_STEPS) return 2;
    if (limits->max_level == 0 || limits->pwm_bits > 16 ||
        (uint32_t)limits->max_level > (((uint32_t)1 << limits->pwm_bits) - 1u))
        return 3;
    if (limits->max_flash_edges == 0 || limits->max_flash_edges >= PANEL_EDGE_HISTORY) return 4;
    return 0;
}

/* Edge offsets (µs from the fire time) the loaded sequence will make, from dark back to dark. */
static uint8_t planned_edges(const panel *p, uint32_t *offsets) {
    uint8_t n = 0;
    uint16_t previous = 0;
    uint32_t t = 0;
    for (uint8_t i = 0; i < p->steps; ++i) {
        if (is_edge(p, previous, p->luminance[i])) offsets[n++] = t;
        previous = p->luminance[i];
        t += p->duration_us[i];
    }
    if (is_edge(p, previous, 0)) offsets[n++] = t;
    return n;
}

/* The earliest fire time ≥ at_us at which no window of flash_window_us holds more than
 * max_flash_edges edges, counting the panel's recent edges; and not before the cool-down. */
static uint64_t earliest_fire(const panel *p, uint64_t at_us) {
    uint32_t offsets[PANEL_MAX_STEPS + 1];
    uint8_t n = planned_edges(p, offsets);
    const uint32_t window = p->limits.flash_window_us;
    uint64_t fire = at_us > p->cool_until_us ? at_us : p->cool_until_us;
    for (uint8_t pass = 0; pass < PANEL_EDGE_HISTORY + 2; ++pass) {
        uint8_t moved = 0;
        for (uint8_t k = 0; k < n && !moved; ++k) {
            uint64_t t = fire + offsets[k];
            uint8_t count = 1;
            for (uint8_t j = 0; j < k; ++j) count += offsets[j] + window > offsets[k];
            uint64_t oldest = 0;
            uint8_t found = 0;
            for (uint8_t h = 0; h < p->edge_count; ++h) {
                uint64_t e = p->edge_us[h];
                if (e + window > t && e <= t) {
                    count++;
                    if (!found || e < oldest) oldest = e, found = 1;
                }
            }
            if (count > p->limits.max_flash_edges && found) {
                fire = oldest + window - offsets[k];  /* the oldest edge leaves the window */
                moved = 1;
            }
        }
        if (!moved) return fire;
    }
    return fire;
}

static uint8_t edges_in_window(const panel *p, uint64_t now_us) {
    uint8_t count = 0;
    for (uint8_t h = 0; h < p->edge_count; ++h)
        count += p->edge_us[h] + p->limits.flash_window_us > now_us;
    return count;
}

/* ---- replies ---------------------------------------------------------------------------- */

static void send_payload(panel *p, uint8_t *payload, uint16_t length, uint8_t cache,
                         uint8_t command, uint8_t seq) {
    uint16_t crc = panel_crc16(payload, length);
    put16(payload + length, crc);
    length = (uint16_t)(length + 2);
    p->tx[0] = 0; /* a leading delimiter ends any noise the host may hold */
    uint16_t n = panel_cobs_encode(payload, length, p->tx + 1);
    p->tx[n + 1] = 0;
    p->tx_length = (uint16_t)(n + 2);
    if (cache) {
        memcpy(p->cached, p->tx, p->tx_length);
        p->cached_length = p->tx_length;
        p->cached_command = command;
        p->cached_seq = seq;
        p->cached_valid = 1;
    }
    hal_write(p->tx, p->tx_length);
}

static uint16_t nack(uint8_t *out, uint8_t command, uint8_t code, uint32_t detail) {
    out[0] = PANEL_NACK;
    out[2] = command;
    out[3] = code;
    put32(out + 4, detail);
    return 8;
}

/* ---- commands: each fills out[2..] (out[0] type, out[1] seq are set by the caller) -------- */

static uint16_t cmd_hello(panel *p, uint8_t *out) {
    const panel_limits *l = &p->limits;
    static const char name[] = "flashfas-ledpanel";
    uint8_t *b = out + 2;
    b[0] = PANEL_PROTOCOL_VERSION;
    b[1] = l->channels;
    b[2] = l->pwm_bits;
    put16(b + 3, l->max_level);
    b[5] = l->max_steps;
    put32(b + 6, l->min_step_us);
    put32(b + 10, l->max_step_us);
    put32(b + 14, l->max_sequence_us);
    put16(b + 18, l->duty_cap_permille);
    b[20] = l->max_flash_edges;
    put32(b + 21, l->flash_window_us);
    put16(b + 25, l->edge_permille);
    put32(b + 27, l->watchdog_us);
    put32(b + 31, l->max_fire_lead_us);
    put16(b + 35, (uint16_t)l->max_temperature_dc);
    put32(b + 37, l->clock_hz);
    memcpy(b + 41, name, sizeof name - 1);
    p->cached_valid = 0; /* a new host session: forget the retransmission cache */
    return (uint16_t)(2 + 41 + sizeof name - 1);
}

static uint16_t cmd_load(panel *p, const uint8_t *body, uint16_t length, uint8_t *out) {
    const panel_limits *l = &p->limits;
    if (p->state == PANEL_SCHEDULED || p->state == PANEL_PLAYING)
        return nack(out, PANEL_CMD_LOAD, PANEL_ERR_STATE, p->state);
    if (p->fault) return nack(out, PANEL_CMD_LOAD, PANEL_ERR_FAULT, p->fault);
    if (length < 1) return nack(out, PANEL_CMD_LOAD, PANEL_ERR_MALFORMED, length);
    uint8_t steps = body[0];
    uint16_t step_bytes = (uint16_t)(2u * l->channels + 4u);
    if (steps == 0 || steps > l->max_steps)
        return nack(out, PANEL_CMD_LOAD, PANEL_ERR_STEPS, steps);
    if (length != 1u + steps * step_bytes)
        return nack(out, PANEL_CMD_LOAD, PANEL_ERR_MALFORMED, length);
    uint64_t total_us = 0, lit = 0;
    for (uint8_t i = 0; i < steps; ++i) {
        const uint8_t *s = body + 1 + i * step_bytes;
        for (uint8_t c = 0; c < l->channels; ++c) {
            uint16_t level = get16(s + 2 * c);
            if (level > l->max_level) return nack(out, PANEL_CMD_LOAD, PANEL_ERR_LEVEL, level);
        }
        uint32_t d = get32(s + 2 * l->channels);
        if (d < l->min_step_us || d > l->max_step_us)
            return nack(out, PANEL_CMD_LOAD, PANEL_ERR_DURATION, d);
        total_us += d;
    }
    if (total_us > l->max_sequence_us)
        return nack(out, PANEL_CMD_LOAD, PANEL_ERR_DURATION, clamp32(total_us));
    /* Accepted so far: copy, then check the rules that need the whole sequence. */
    p->steps = 0;
    for (uint8_t i = 0; i < steps; ++i) {
        const uint8_t *s = body + 1 + i * step_bytes;
        for (uint8_t c = 0; c < PANEL_MAX_CHANNELS; ++c)
            p->level[i][c] = c < l->channels ? get16(s + 2 * c) : 0;
        p->duration_us[i] = get32(s + 2 * l->channels);
        p->luminance[i] = luminance_permille(p, p->level[i]);
        lit += (uint64_t)p->duration_us[i] * brightest(p, p->level[i]) / l->max_level;
    }
    p->steps = steps;
    p->state = PANEL_LOADED;
    uint32_t duty = (uint32_t)(lit * 1000u / total_us);
    if (duty > l->duty_cap_permille) {
        p->steps = 0, p->state = PANEL_IDLE;
        return nack(out, PANEL_CMD_LOAD, PANEL_ERR_DUTY, duty);
    }
    uint32_t offsets[PANEL_MAX_STEPS + 1];
    uint8_t n = planned_edges(p, offsets);
    for (uint8_t k = 0; k < n; ++k) {
        uint8_t count = 0;
        for (uint8_t j = 0; j <= k; ++j) count += offsets[j] + l->flash_window_us > offsets[k];
        if (count > l->max_flash_edges) {
            p->steps = 0, p->state = PANEL_IDLE;
            return nack(out, PANEL_CMD_LOAD, PANEL_ERR_FLASH_RATE, count);
        }
    }
    p->lit_us = (uint32_t)lit;
    out[2] = steps;
    put32(out + 3, (uint32_t)total_us);
    return 7;
}

static uint16_t cmd_arm(panel *p, uint8_t *out) {
    if (p->fault) return nack(out, PANEL_CMD_ARM, PANEL_ERR_FAULT, p->fault);
    if (p->steps == 0 || p->state == PANEL_SCHEDULED || p->state == PANEL_PLAYING)
        return nack(out, PANEL_CMD_ARM, PANEL_ERR_STATE, p->state);
    p->state = PANEL_ARMED;
    return 2;
}

static uint16_t cmd_fire(panel *p, const uint8_t *body, uint16_t length, uint8_t *out,
                         uint64_t now_us) {
    if (length != 8) return nack(out, PANEL_CMD_FIRE, PANEL_ERR_MALFORMED, length);
    if (p->fault) return nack(out, PANEL_CMD_FIRE, PANEL_ERR_FAULT, p->fault);
    if (p->state != PANEL_ARMED) return nack(out, PANEL_CMD_FIRE, PANEL_ERR_STATE, p->state);
    uint64_t at = get64(body);
    if (at < now_us) return nack(out, PANEL_CMD_FIRE, PANEL_ERR_FIRE_TIME, clamp32(now_us - at));
    if (at - now_us > p->limits.max_fire_lead_us)
        return nack(out, PANEL_CMD_FIRE, PANEL_ERR_FIRE_TIME, clamp32(at - now_us));
    uint64_t earliest = earliest_fire(p, at);
    if (earliest > at)
        return nack(out, PANEL_CMD_FIRE, PANEL_ERR_RATE_WAIT, clamp32(earliest - at));
    p->fire_at_us = at;
    p->state = PANEL_SCHEDULED;
    p->abort_reason = 0;
    p->end_us = 0;
    for (uint8_t i = 0; i < PANEL_MAX_STEPS; ++i) p->onset_us[i] = 0;
    put64(out + 2, at);
    return 10;
}

static uint16_t cmd_report(const panel *p, uint8_t *out) {
    uint8_t *b = out + 2;
    uint8_t started = p->state == PANEL_PLAYING || p->state == PANEL_DONE ||
                      (p->state == PANEL_ABORTED && p->onset_us[0] != 0);
    uint64_t base = started ? p->onset_us[0] : 0;
    b[0] = p->state;
    b[1] = p->abort_reason;
    b[2] = p->steps;
    put64(b + 3, base);
    uint16_t at = 11;
    for (uint8_t i = 0; i < p->steps; ++i, at = (uint16_t)(at + 4)) {
        uint8_t has = started && p->onset_us[i] != 0;
        put32(b + at, has ? (uint32_t)(p->onset_us[i] - base) : NOT_YET);
    }
    uint8_t ended = started && (p->state == PANEL_DONE || p->state == PANEL_ABORTED);
    put32(b + at, ended ? (uint32_t)(p->end_us - base) : NOT_YET);
    return (uint16_t)(2 + at + 4);
}

static uint16_t cmd_status(const panel *p, uint8_t *out, uint64_t now_us) {
    uint8_t *b = out + 2;
    b[0] = p->state;
    b[1] = p->fault;
    put16(b + 2, (uint16_t)hal_temperature_dc());
    put64(b + 4, now_us);
    put16(b + 12, p->frames_ok);
    put16(b + 14, p->frames_bad);
    b[16] = edges_in_window(p, now_us);
    b[17] = p->lights_on;
    return 2 + 18;
}

static uint16_t cmd_clear_fault(panel *p, uint8_t *out) {
    if (hal_temperature_dc() > p->limits.max_temperature_dc)
        return nack(out, PANEL_CMD_CLEAR_FAULT, PANEL_ERR_FAULT, PANEL_FAULT_OVER_TEMPERATURE);
    if (hal_driver_fault())
        return nack(out, PANEL_CMD_CLEAR_FAULT, PANEL_ERR_FAULT, PANEL_FAULT_DRIVER);
    p->fault = PANEL_FAULT_NONE;
    return 2;
}

static void handle_frame(panel *p, uint8_t *frame, uint16_t length, uint64_t stamp_us) {
    if (length < 4 || panel_crc16(frame, (uint16_t)(length - 2)) != get16(frame + length - 2)) {
        p->frames_bad++;
        return; /* no reply: the host retransmits after its reply timeout */
    }
    p->frames_ok++;
    p->last_host_us = stamp_us;
    uint8_t command = frame[0], seq = frame[1];
    const uint8_t *body = frame + 2;
    uint16_t body_length = (uint16_t)(length - 4);
    uint8_t changes_state = command == PANEL_CMD_LOAD || command == PANEL_CMD_ARM ||
                            command == PANEL_CMD_FIRE || command == PANEL_CMD_OFF ||
                            command == PANEL_CMD_CLEAR_FAULT;
    if (changes_state && p->cached_valid && p->cached_command == command &&
        p->cached_seq == seq) {
        hal_write(p->cached, p->cached_length); /* a retransmission: same answer, no effect */
        return;
    }
    uint8_t out[PANEL_MAX_PAYLOAD];
    uint16_t n;
    out[0] = (uint8_t)(command | 0x80u);
    out[1] = seq;
    switch (command) {
        case PANEL_CMD_HELLO: n = cmd_hello(p, out); break;
        case PANEL_CMD_TIME:
            put64(out + 2, stamp_us); /* when the request's delimiter arrived */
            n = 10;
            break;
        case PANEL_CMD_LOAD: n = cmd_load(p, body, body_length, out); break;
        case PANEL_CMD_ARM: n = cmd_arm(p, out); break;
        case PANEL_CMD_FIRE: n = cmd_fire(p, body, body_length, out, stamp_us); break;
        case PANEL_CMD_REPORT: n = cmd_report(p, out); break;
        case PANEL_CMD_STATUS: n = cmd_status(p, out, stamp_us); break;
        case PANEL_CMD_OFF:
            abort_sequence(p, PANEL_ABORT_HOST_OFF, stamp_us);
            if (p->state == PANEL_ARMED) p->state = PANEL_LOADED;
            n = 2;
            break;
        case PANEL_CMD_CLEAR_FAULT: n = cmd_clear_fault(p, out); break;
        default: n = nack(out, command, PANEL_ERR_UNKNOWN_COMMAND, command); break;
    }
    out[1] = seq;
    send_payload(p, out, n, changes_state, command, seq);
}

void panel_rx_byte(panel *p, uint8_t byte, uint64_t now_us) {
    if (byte != 0) {
        if (p->rx_length < sizeof p->rx) {
            p->rx[p->rx_length++] = byte;
        } else {
            p->rx_overflow = 1;
        }
        return;
    }
    uint16_t length = p->rx_length;
    uint8_t overflow = p->rx_overflow;
    p->rx_length = 0;
    p->rx_overflow = 0;
    if (length == 0) return; /* an empty frame: a resynchronising delimiter */
    if (overflow) {
        p->frames_bad++;
        return;
    }
    int16_t decoded = panel_cobs_decode(p->rx, length);
    if (decoded < 0) {
        p->frames_bad++;
        return;
    }
    handle_frame(p, p->rx, (uint16_t)decoded, now_us);
}

static void start_step(panel *p, uint8_t i, uint64_t now_us) {
    p->step = i;
    apply_output(p, p->level[i], now_us);
    p->onset_us[i] = hal_now_us(); /* when the PWM registers took the new levels */
    p->next_at_us = p->onset_us[i] + p->duration_us[i];
}

uint32_t panel_poll(panel *p, uint64_t now_us) {
    if (hal_temperature_dc() > p->limits.max_temperature_dc)
        latch_fault(p, PANEL_FAULT_OVER_TEMPERATURE, now_us);
    if (hal_driver_fault()) latch_fault(p, PANEL_FAULT_DRIVER, now_us);
    if (now_us > p->last_host_us + p->limits.watchdog_us &&
        (p->lights_on || p->state == PANEL_ARMED || p->state == PANEL_SCHEDULED ||
         p->state == PANEL_PLAYING))
        abort_sequence(p, PANEL_ABORT_WATCHDOG, now_us);
    if (p->state == PANEL_SCHEDULED && now_us >= p->fire_at_us) {
        p->state = PANEL_PLAYING;
        start_step(p, 0, now_us);
    }
    while (p->state == PANEL_PLAYING && now_us >= p->next_at_us) {
        if (p->step + 1 < p->steps) {
            start_step(p, (uint8_t)(p->step + 1), now_us);
            now_us = p->onset_us[p->step];
        } else {
            lights_off(p, now_us);
            p->end_us = hal_now_us();
            p->state = PANEL_DONE;
            p->cool_until_us = p->end_us + p->lit_us;
        }
    }
    if (p->state == PANEL_SCHEDULED) return clamp32(p->fire_at_us - now_us);
    if (p->state == PANEL_PLAYING) return clamp32(p->next_at_us - now_us);
    return 1000;
}
