/*
 * simavr harness for the SPAD bridge firmware: plays the FPGA (SPI master) and the PC (UART).
 *
 * usage: harness FIRMWARE.elf CYCLES_PER_BYTE SKIP_BYTES UART_OUTPUT < spi_input
 *
 * Bytes from stdin are clocked into the AVR's SPI slave one every CYCLES_PER_BYTE CPU cycles.
 * The first SKIP_BYTES are sent with SS already low at reset (the FPGA mid-frame when the board
 * boots); SS then goes high for a frame gap and low again for the rest. Every byte the AVR sends
 * on its UART is written to UART_OUTPUT (simavr itself chats on stdout); "overruns=N" (read from GPIOR1/GPIOR2) goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simavr/avr_ioport.h>
#include <simavr/avr_spi.h>
#include <simavr/avr_uart.h>
#include <simavr/sim_avr.h>
#include <simavr/sim_elf.h>

#define GPIOR1_ADDR 0x4A
#define GPIOR2_ADDR 0x4B

static unsigned long uart_bytes;
static FILE *uart_file;
static avr_cycle_count_t last_uart_cycle;

static void uart_out(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    last_uart_cycle = ((avr_t *)param)->cycle;
    fputc((int)(value & 0xFF), uart_file);
    uart_bytes++;
}

static void run_until(avr_t *avr, avr_cycle_count_t cycle)
{
    while (avr->cycle < cycle) {
        int state = avr_run(avr);
        if (state == cpu_Done || state == cpu_Crashed) {
            fprintf(stderr, "firmware stopped (state %d)\n", state);
            exit(2);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s FIRMWARE.elf CYCLES_PER_BYTE SKIP_BYTES UART_OUTPUT < in\n", argv[0]);
        return 1;
    }
    long per_byte = strtol(argv[2], NULL, 10);
    long skip = strtol(argv[3], NULL, 10);
    if (per_byte < 16 || skip < 0) {
        fprintf(stderr, "CYCLES_PER_BYTE must be >= 16 (8 SPI clocks at f/2) and SKIP_BYTES >= 0\n");
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *input = malloc(cap);
    int c;
    while ((c = getchar()) != EOF) {
        if (n == cap) {
            cap *= 2;
            input = realloc(input, cap);
        }
        input[n++] = (uint8_t)c;
    }
    uart_file = fopen(argv[4], "wb");
    if (!uart_file) {
        fprintf(stderr, "cannot write %s\n", argv[4]);
        return 1;
    }

    elf_firmware_t fw;
    memset(&fw, 0, sizeof(fw));
    if (elf_read_firmware(argv[1], &fw) != 0) {
        fprintf(stderr, "cannot read firmware %s\n", argv[1]);
        return 1;
    }
    avr_t *avr = avr_make_mcu_by_name("atmega328p");
    if (!avr) {
        fprintf(stderr, "simavr has no atmega328p core\n");
        return 1;
    }
    avr_init(avr);
    avr_load_firmware(avr, &fw);
    avr->frequency = 16000000;
    avr->log = 0;

    uint32_t flags = 0; /* no console echo, no polling sleeps */
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), uart_out, avr);
    avr_irq_t *spi_in = avr_io_getirq(avr, AVR_IOCTL_SPI_GETIRQ(0), SPI_IRQ_INPUT);
    avr_irq_t *ss = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('B'), 2);

    avr_raise_irq(ss, skip > 0 ? 0 : 1);
    avr_cycle_count_t t = 200000; /* boot and banner */
    run_until(avr, t);
    for (size_t i = 0; i < n; i++) {
        if ((long)i == skip) {
            avr_raise_irq(ss, 1); /* frame gap */
            t += 20 * per_byte;
            run_until(avr, t);
            avr_raise_irq(ss, 0);
        }
        t += per_byte;
        run_until(avr, t);
        avr_raise_irq(spi_in, input[i]);
    }
    /* let the ring drain: stop once the UART has been quiet for 20000 cycles */
    do {
        t += 20000;
        run_until(avr, t);
    } while (avr->cycle - last_uart_cycle < 20000);
    fclose(uart_file);
    unsigned overruns = avr->data[GPIOR1_ADDR] | (avr->data[GPIOR2_ADDR] << 8);
    fprintf(stderr, "overruns=%u uart_bytes=%lu\n", overruns, uart_bytes);
    free(input);
    return 0;
}
