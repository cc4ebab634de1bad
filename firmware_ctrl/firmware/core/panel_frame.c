/* Framing of the LED-panel wire protocol (PROTOCOL.md §2). */
#include "panel_frame.h"

uint16_t panel_crc16(const uint8_t *data, uint16_t length) {
    uint16_t crc = 0xFFFFu;
    for (uint16_t i = 0; i < length; ++i) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (uint8_t bit = 0; bit < 8; ++bit) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint16_t panel_cobs_encode(const uint8_t *src, uint16_t length, uint8_t *dst) {
    uint16_t code_at = 0, out = 1;
    uint8_t code = 1;
    for (uint16_t i = 0; i < length; ++i) {
        if (src[i] == 0) {
            dst[code_at] = code;
            code_at = out++;
            code = 1;
        } else {
            dst[out++] = src[i];
            if (++code == 0xFF) {
                dst[code_at] = code;
                code_at = out++;
                code = 1;
            }
        }
    }
    dst[code_at] = code;
    return out;
}

int16_t panel_cobs_decode(uint8_t *buffer, uint16_t length) {
    uint16_t in = 0, out = 0;
    while (in < length) {
        uint8_t code = buffer[in++];
        if (code == 0) {
            return -1;
        }
        for (uint8_t k = 1; k < code; ++k) {
            if (in >= length || buffer[in] == 0) {
                return -1;
            }
            buffer[out++] = buffer[in++];
        }
        if (code != 0xFF && in < length) {
            buffer[out++] = 0;
        }
    }
    return (int16_t)out;
}
