/* The LED-panel firmware on an ATmega328P at 16 MHz (Arduino Uno / Nano class): the HAL for the
 * portable protocol core (docs/LED_PANEL.md has the wiring).
 *
 *   R  OC0A  PD6 (D6)    Timer0 fast PWM, 8 bit, 7.8 kHz (prescaler 8)
 *   G  OC0B  PD5 (D5)    Timer0
 *   B  OC2A  PB3 (D11)   Timer2 fast PWM, 8 bit, 7.8 kHz
 *   FAULT    PD2 (D2)    LED driver fault output, active low (internal pull-up)
 *   UART0    PD0/PD1     115200 baud 8N1 (U2X) to the host, through the board's USB bridge
 *   clock    Timer1      free-running at 2 MHz, overflow interrupt extends it to 64 bit
 *   temperature          the on-chip sensor (ADC8, 1.1 V reference), sampled every ~100 ms
 *   watchdog             hardware WDT, 250 ms: a hung firmware resets, and resets start dark
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>
#include <util/atomic.h>

#include "../../core/panel.h"
#include "../../core/panel_hal.h"
#include "../../core/panel_reference.h"

#define RX_SLOTS 32 /* power of two */
#define TX_SLOTS 128

static volatile uint32_t clock_high; /* Timer1 overflows */
static volatile uint8_t rx_byte[RX_SLOTS];
static volatile uint32_t rx_stamp_low[RX_SLOTS];
static volatile uint8_t rx_head, rx_tail;
static volatile uint8_t tx_ring[TX_SLOTS];
static volatile uint8_t tx_head, tx_tail;
static int16_t temperature_dc = 250;

ISR(TIMER1_OVF_vect) { clock_high++; }

static uint64_t ticks(void) {
    uint32_t high;
    uint16_t low;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
        high = clock_high;
        low = TCNT1;
        if ((TIFR1 & _BV(TOV1)) && low < 0x8000u) high++; /* overflow not yet serviced */
    }
    return ((uint64_t)high << 16) | low;
}

uint64_t hal_now_us(void) { return ticks() >> 1; }

ISR(USART_RX_vect) {
    uint8_t byte = UDR0;
    uint8_t next = (uint8_t)((rx_head + 1) & (RX_SLOTS - 1));
    if (next != rx_tail) {
        rx_byte[rx_head] = byte;
        rx_stamp_low[rx_head] = (uint32_t)hal_now_us();
        rx_head = next;
    }
}

ISR(USART_UDRE_vect) {
    if (tx_tail == tx_head) {
        UCSR0B &= (uint8_t)~_BV(UDRIE0);
        return;
    }
    UDR0 = tx_ring[tx_tail];
    tx_tail = (uint8_t)((tx_tail + 1) % TX_SLOTS);
}

void hal_write(const uint8_t *data, uint16_t length) {
    for (uint16_t i = 0; i < length; ++i) {
        uint8_t next = (uint8_t)((tx_head + 1) % TX_SLOTS);
        while (next == tx_tail) wdt_reset(); /* ring full: wait for the UART */
        tx_ring[tx_head] = data[i];
        tx_head = next;
        UCSR0B |= _BV(UDRIE0);
    }
}

static void set_channel(volatile uint8_t *compare, volatile uint8_t *control, uint8_t com_bit,
                        volatile uint8_t *port, uint8_t pin, uint16_t level) {
    if (level == 0) {
        *control &= (uint8_t)~_BV(com_bit); /* disconnect: fast PWM at 0 still pulses 1 tick */
        *port &= (uint8_t)~_BV(pin);
    } else {
        *compare = (uint8_t)level;
        *control |= _BV(com_bit);
    }
}

void hal_set_levels(const uint16_t *levels, uint8_t channels) {
    uint16_t r = channels > 0 ? levels[0] : 0, g = channels > 1 ? levels[1] : 0;
    uint16_t b = channels > 2 ? levels[2] : 0;
    set_channel(&OCR0A, &TCCR0A, COM0A1, &PORTD, PD6, r);
    set_channel(&OCR0B, &TCCR0A, COM0B1, &PORTD, PD5, g);
    set_channel(&OCR2A, &TCCR2A, COM2A1, &PORTB, PB3, b);
}

int16_t hal_temperature_dc(void) { return temperature_dc; }

uint8_t hal_driver_fault(void) { return (PIND & _BV(PD2)) == 0; }

static void sample_temperature(uint64_t now_us) {
    static uint64_t next_us;
    if (ADCSRA & _BV(ADSC)) return; /* conversion running */
    if (next_us != 0) {
        /* datasheet §24.8: about 1 LSB/°C, 314 at 25 °C (typical; ±10 °C uncalibrated) */
        int16_t adc = (int16_t)ADC;
        temperature_dc = (int16_t)((adc - 289) * 10);
    }
    if (now_us < next_us) return;
    next_us = now_us + 100000u;
    ADCSRA |= _BV(ADSC);
}

static void hardware_init(void) {
    /* Outputs low first: the LEDs are dark from the first instruction that touches the pins. */
    PORTD &= (uint8_t)~(_BV(PD5) | _BV(PD6));
    PORTB &= (uint8_t)~_BV(PB3);
    DDRD |= _BV(PD5) | _BV(PD6);
    DDRB |= _BV(PB3);
    DDRD &= (uint8_t)~_BV(PD2);
    PORTD |= _BV(PD2); /* fault input pull-up */
    TCCR0A = _BV(WGM01) | _BV(WGM00); /* fast PWM, outputs disconnected until a level > 0 */
    TCCR0B = _BV(CS01);
    TCCR2A = _BV(WGM21) | _BV(WGM20);
    TCCR2B = _BV(CS21);
    TCCR1A = 0;
    TCCR1B = _BV(CS11); /* 16 MHz / 8 = 2 MHz */
    TIMSK1 = _BV(TOIE1);
    UCSR0A = _BV(U2X0);
    UBRR0 = 16; /* 115200 baud at 16 MHz with U2X (2.1 % error, within the 8N1 budget) */
    UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
    ADMUX = _BV(REFS1) | _BV(REFS0) | _BV(MUX3); /* 1.1 V reference, ADC8 = temperature */
    ADCSRA = _BV(ADEN) | _BV(ADPS2) | _BV(ADPS1) | _BV(ADPS0);
}

int main(void) {
    MCUSR = 0;
    wdt_disable();
    hardware_init();
    static panel core;
    static const panel_limits limits = PANEL_REFERENCE_LIMITS(F_CPU);
    panel_init(&core, &limits, 0);
    wdt_enable(WDTO_250MS);
    sei();
    for (;;) {
        while (rx_tail != rx_head) {
            uint8_t byte = rx_byte[rx_tail];
            uint32_t low = rx_stamp_low[rx_tail];
            rx_tail = (uint8_t)((rx_tail + 1) & (RX_SLOTS - 1));
            uint64_t now = hal_now_us();
            uint64_t stamp = (now & ~(uint64_t)0xFFFFFFFFu) | low;
            if (stamp > now) stamp -= (uint64_t)1 << 32; /* the low word wrapped since */
            panel_rx_byte(&core, byte, stamp);
        }
        uint64_t now = hal_now_us();
        panel_poll(&core, now);
        sample_temperature(now);
        wdt_reset();
    }
}
