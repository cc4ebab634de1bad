/* Framing of the LED-panel wire protocol (PROTOCOL.md §2): COBS, a 0x00 delimiter, CRC-16. */
#ifndef PANEL_FRAME_H
#define PANEL_FRAME_H

#include <stdint.h>

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor). */
uint16_t panel_crc16(const uint8_t *data, uint16_t length);

/* COBS-encode length bytes of src into dst (room for length + length/254 + 1 bytes); returns the
 * encoded length (no delimiter). */
uint16_t panel_cobs_encode(const uint8_t *src, uint16_t length, uint8_t *dst);

/* Decode in place; returns the decoded length, or -1 for a malformed encoding. */
int16_t panel_cobs_decode(uint8_t *buffer, uint16_t length);

#endif
