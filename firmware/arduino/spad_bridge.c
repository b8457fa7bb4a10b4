/*
 * SPAD bridge firmware for an ATmega328P (Arduino Uno class board), written against avr-libc.
 *
 * The FPGA is the SPI master and shifts out frames (0xFFFFFFFF header + 256 uint32 counters,
 * MSB first). This firmware is the SPI slave: an interrupt moves each received byte into a ring
 * buffer, and the main loop forwards the bytes unaltered over the UART (the board's USB bridge).
 *
 * Compared with a one-byte mailbox, the ring buffer absorbs bursts while the UART is busy; when it
 * does fill up the byte is dropped and counted, never silently overwritten in the middle of the
 * buffer. The overrun count is mirrored in GPIOR1 (low byte) and GPIOR2 (high byte), where a
 * debugger or the simulator harness can read it without touching the data stream.
 *
 * After reset the firmware prints "Setup complete\r\n", then waits until the FPGA releases SS
 * (between two frames) before enabling SPI, so forwarding starts at a frame boundary.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <stdint.h>
#include <util/atomic.h>

#ifndef UART_UBRR
#define UART_UBRR 0 /* 16 MHz / (8 * (UART_UBRR + 1)): 0 gives 2 Mbaud, 1 gives 1 Mbaud */
#endif

#define RING_SIZE 1024u /* power of two; 1 KiB of the 2 KiB SRAM */
#define RING_MASK (RING_SIZE - 1u)

static volatile uint8_t ring[RING_SIZE];
static volatile uint16_t head;     /* next slot the SPI interrupt writes */
static volatile uint16_t tail;     /* next slot the main loop sends */
static volatile uint16_t overruns; /* bytes dropped because the ring was full */

ISR(SPI_STC_vect)
{
    uint8_t byte = SPDR; /* read first: the next byte is already shifting in */
    uint16_t next = (head + 1u) & RING_MASK;
    if (next == tail) {
        overruns++;
        GPIOR1 = (uint8_t)overruns;
        GPIOR2 = (uint8_t)(overruns >> 8);
        return;
    }
    ring[head] = byte;
    head = next;
}

static void uart_init(void)
{
    UCSR0A = _BV(U2X0); /* before UBRR0: simavr derives the baud rate when UBRR0L is written */
    UBRR0 = UART_UBRR;
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00); /* 8N1 */
    UCSR0B = _BV(TXEN0);
}

static void uart_put(uint8_t byte)
{
    while (!(UCSR0A & _BV(UDRE0))) {
    }
    UDR0 = byte;
}

static void uart_print(const char *text)
{
    while (*text) {
        uart_put((uint8_t)*text++);
    }
}

static void spi_slave_init(void)
{
    DDRB = _BV(DDB4); /* MISO out; SCK, MOSI and SS in */
    while (!(PINB & _BV(PINB2))) {
        /* SS low: the FPGA is mid-frame; wait for the gap before the next one */
    }
    SPCR = _BV(SPE) | _BV(SPIE);
}

int main(void)
{
    uart_init();
    uart_print("Setup complete\r\n");
    spi_slave_init();
    sei();
    for (;;) {
        uint16_t h;
        ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { h = head; }
        while (tail != h) {
            uart_put(ring[tail]);
            uint16_t t = (tail + 1u) & RING_MASK;
            ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { tail = t; }
        }
    }
}
