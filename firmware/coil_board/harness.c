/*
 * simavr harness for the coil board firmware: plays the host (UART), the camera (frame clock on
 * INT0/PD2), the three AD5686R DACs (SPI words captured per SYNC line) and the current sense
 * path (ADC0 gets the sense voltage of the channel the multiplexer on PD4..PD7 selects).
 *
 * usage: harness FIRMWARE.elf < script
 *
 * Script lines (one action each):
 *   S <text>   send <text>\n on the UART, run until the reply line, print "< <reply>"
 *   T <ms>     let <ms> milliseconds of simulated time pass
 *   E          one frame clock pulse (5 us high), then 4 ms for the update
 *   D          two pulses 10 us apart (the second arrives while the first update runs)
 *   Q          print "DAC <code0> ... <code11>" (what the DAC outputs hold now)
 *   O <ch>     channel <ch>'s coil is open: its read-back is 0 A whatever the DAC says
 *   R          print "RELAY <0|1>" (PD3, the output relay)
 * At the end "writes=<n>" (DAC words captured) goes to stdout.
 *
 * simavr 1.6 completes a master SPI byte 100 us after SPDR is written, whatever the clock rate
 * (real hardware at f/2: 1 us), so an update of all 12 channels takes 3.6 ms here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simavr/avr_adc.h>
#include <simavr/avr_ioport.h>
#include <simavr/avr_spi.h>
#include <simavr/avr_uart.h>
#include <simavr/sim_avr.h>
#include <simavr/sim_elf.h>

#define NCH 12
#define MS 16000 /* cycles per millisecond at 16 MHz */
#define PORTD_ADDR 0x2B

static avr_t *avr;
static avr_irq_t *uart_in, *frame_pin, *adc0;
static unsigned dac[NCH];
static int open_coil[NCH];
static unsigned long writes;
static uint8_t word[3];
static int word_len;
static char rx_line[256];
static int rx_len, rx_done;

static void run_for(avr_cycle_count_t cycles)
{
    avr_cycle_count_t end = avr->cycle + cycles;
    while (avr->cycle < end) {
        int state = avr_run(avr);
        if (state == cpu_Done || state == cpu_Crashed) {
            fprintf(stderr, "firmware stopped (state %d)\n", state);
            exit(2);
        }
    }
}

static void uart_out(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    char c = (char)(value & 0xFF);
    if (c == '\n') {
        rx_line[rx_len] = 0;
        rx_done = 1;
    } else if (rx_len < (int)sizeof(rx_line) - 1) {
        rx_line[rx_len++] = c;
    }
}

static void spi_out(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    if (word_len < 3)
        word[word_len] = (uint8_t)value;
    word_len++;
}

/* SYNC rising edge on chip `param`: the 24-bit word updates the addressed DAC outputs */
static void sync_edge(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    int chip = (int)(intptr_t)param;
    if (!value) {
        word_len = 0;
        return;
    }
    if (word_len != 3) {
        if (word_len)
            fprintf(stderr, "chip %d: SYNC rose after %d bytes, not 24 bits\n", chip, word_len);
        word_len = 0;
        return;
    }
    unsigned command = word[0] >> 4, address = word[0] & 0x0F;
    unsigned code = ((unsigned)word[1] << 8) | word[2];
    if (command != 3)
        fprintf(stderr, "chip %d: command %u, expected 3 (write and update)\n", chip, command);
    for (int k = 0; k < 4; k++)
        if (address & (1u << k)) {
            dac[chip * 4 + k] = code;
            writes++;
        }
    word_len = 0;
}

/* an ADC conversion starts: put the selected channel's sense voltage on ADC0 */
static void adc_trigger(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)value;
    (void)param;
    int ch = avr->data[PORTD_ADDR] >> 4;
    double amps = 0;
    if (ch < NCH && !open_coil[ch])
        amps = ((double)dac[ch] - 32768.0) * 1.5625e-7;
    double mv = 1250.0 + amps / 5.12e-3 * 1250.0; /* 1.25 V + 1.25 V per 5.12 mA */
    avr_raise_irq(adc0, (uint32_t)(mv + 0.5));
}

static void send_line(const char *text)
{
    rx_len = 0;
    rx_done = 0;
    size_t n = strlen(text);
    for (size_t i = 0; i <= n; i++) {
        avr_raise_irq(uart_in, i < n ? (uint8_t)text[i] : '\n');
        run_for(1500); /* one byte at 115200 baud is 1389 cycles */
    }
    for (int ms = 0; ms < 200 && !rx_done; ms++)
        run_for(MS / 10);
    if (rx_done)
        printf("< %s\n", rx_line);
    else
        printf("< (no reply)\n");

}

static void pulse(void)
{
    avr_raise_irq(frame_pin, 1);
    run_for(80);
    avr_raise_irq(frame_pin, 0);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIRMWARE.elf < script\n", argv[0]);
        return 1;
    }
    elf_firmware_t fw;
    memset(&fw, 0, sizeof(fw));
    if (elf_read_firmware(argv[1], &fw) != 0) {
        fprintf(stderr, "cannot read firmware %s\n", argv[1]);
        return 1;
    }
    avr = avr_make_mcu_by_name("atmega328p");
    if (!avr) {
        fprintf(stderr, "simavr has no atmega328p core\n");
        return 1;
    }
    avr_init(avr);
    avr_load_firmware(avr, &fw);
    avr->frequency = 16000000;
    avr->vcc = avr->avcc = 5000;
    avr->aref = 2500;
    avr->log = 0;

    uint32_t flags = 0;
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), uart_out, NULL);
    uart_in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_SPI_GETIRQ(0), SPI_IRQ_OUTPUT), spi_out, NULL);
    for (int chip = 0; chip < 3; chip++)
        avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('B'), 2 - chip), sync_edge,
                                (void *)(intptr_t)chip);
    frame_pin = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('D'), 2);
    adc0 = avr_io_getirq(avr, AVR_IOCTL_ADC_GETIRQ, ADC_IRQ_ADC0);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_ADC_GETIRQ, ADC_IRQ_OUT_TRIGGER), adc_trigger, NULL);
    /* no level on PD2 before the firmware sets INT0 to rising edges: simavr 1.6 would keep firing
       the low-level interrupt it saw at reset */
    run_for(5 * MS); /* reset: every DAC to mid-scale */
    char line[512];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == 'S' && line[1] == ' ') {
            send_line(line + 2);
        } else if (line[0] == 'T') {
            run_for((avr_cycle_count_t)(atof(line + 1) * MS));
        } else if (line[0] == 'E') {
            pulse();
            run_for(4 * MS);
        } else if (line[0] == 'D') {
            pulse();
            run_for(160 - 80);
            pulse();
            run_for(MS);
        } else if (line[0] == 'Q') {
            printf("DAC");
            for (int k = 0; k < NCH; k++)
                printf(" %u", dac[k]);
            printf("\n");
        } else if (line[0] == 'O') {
            int ch = atoi(line + 1);
            if (ch >= 0 && ch < NCH)
                open_coil[ch] = 1;
        } else if (line[0] == 'R') {
            printf("RELAY %d\n", (avr->data[PORTD_ADDR] >> 3) & 1);
        } else if (line[0]) {
            fprintf(stderr, "unknown script line: %s\n", line);
            return 1;
        }
    }
    printf("writes=%lu\n", writes);
    return 0;
}
