/* The hardware seam of the LED-panel firmware: what a target provides to the protocol core.
 *
 * A target implements these five functions and calls panel_init / panel_rx_byte / panel_poll
 * (panel.h) from its main loop. Everything about the wire protocol and the safety rules lives in
 * the core, so the AVR image and the host panel simulator run the same decisions. */
#ifndef PANEL_HAL_H
#define PANEL_HAL_H

#include <stdint.h>

/* The MCU's free-running microsecond clock (monotonic, 64-bit so it never wraps in practice). */
uint64_t hal_now_us(void);

/* Set the PWM compare value of each channel (0 = dark, limits.max_level = the brightness cap).
 * Must take effect before it returns: the core timestamps the onset right after this call. */
void hal_set_levels(const uint16_t *levels, uint8_t channels);

/* Queue bytes for the serial line (the host). May block until they are queued. */
void hal_write(const uint8_t *data, uint16_t length);

/* Panel temperature in tenths of a degree Celsius (LED heatsink or the MCU's sensor). */
int16_t hal_temperature_dc(void);

/* Non-zero while the LED driver reports a fault (open/short LED string, over-current). */
uint8_t hal_driver_fault(void);

#endif
