/*
 * QDM-COIL current board firmware (avr-libc, ATmega328P at 16 MHz), protocol 2.0.
 *
 * The line protocol is specified in drivers/coil_board.py; docs/hardware/coil_board.md names the
 * circuit. In short:
 *   - 12 bipolar current channels: three AD5686R quad 16-bit DACs on the SPI bus (SYNC on PB2, PB1,
 *     PB0), each output driving a Howland current pump referenced to mid-scale, so code 32768 is
 *     0 A and one code step is CURRENT_LSB_A.
 *   - read-back: a CD74HC4067 multiplexer (select PD4..PD7) brings channel k's sense-amplifier
 *     output to ADC0 (AREF 2.5 V); 1.25 V is 0 A.
 *   - waveform playback: per-channel rings of (current, frames) segments; every rising edge on
 *     INT0 (PD2, the camera's frame output) applies the next frame's current to every playing
 *     channel, inside the interrupt, so the frame sees a known current.
 *   - ceilings per channel (never above the hardware ceiling), checked on every CUR, WAV and MAX.
 *   - a host watchdog: a host silent for longer than WDT seconds has every channel ramped to zero
 *     and outputs disabled; current commands are then refused until CLR.
 *   - faults (watchdog, table exhausted, clock edge during an update) are latched for ERR? and
 *     counted in STAT?.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/pgmspace.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <util/atomic.h>

#ifndef UART_UBRR
#define UART_UBRR 16 /* 115200 baud with U2X at 16 MHz (-2.1 %, ATmega328P datasheet table 20-6) */
#endif
#ifndef SERIAL_NUMBER
#define SERIAL_NUMBER "AVR0001"
#endif
#define FIRMWARE "2.0"
#define NCH 12
#define DEPTH 16                    /* segments per channel ring (SRAM: 12 x 16 x 4 B) */
#define MID 32768u
#define CURRENT_LSB_A 1.5625e-7     /* 5.12 mA / 32768 */
#define HW_MAX_A 5.0e-3
#define RAMP_CODES_PER_MS 64        /* 10 uA/ms = 10 mA/s: the lab's coil ramp rate */
#define LINE_MAX 96

enum { IDLE, ARMED, PLAYING };
static const char *const STATE_NAMES[] = {"IDLE", "ARMED", "PLAY"};

typedef struct {
    uint16_t code;
    uint16_t frames; /* 0: hold until STOP */
} segment_t;

static segment_t ring[NCH][DEPTH];
static volatile uint8_t ring_head[NCH], ring_count[NCH];
static volatile uint16_t seg_used[NCH];      /* frames already played of the head segment */
static volatile uint16_t dac[NCH];           /* code on each DAC output now */
static uint16_t setpoint[NCH];               /* DC setpoints (codes) */
static uint16_t ceiling[NCH];                /* per-channel ceiling, |code - MID| */
static volatile uint16_t enabled;            /* output enable mask */
static volatile uint16_t playing;            /* channels playing a table */
static volatile uint8_t state = IDLE;
static volatile uint32_t frames_played;
static volatile uint16_t overruns, underruns;
static volatile uint8_t ramping;             /* ramp every channel to zero, 1 ms steps */
static volatile uint8_t wdt_tripped;
static uint16_t wdt_ms = 2000;               /* power-up default: 2 s */
static volatile uint32_t now_ms;
static uint32_t last_rx_ms;
static uint8_t fault_code;                   /* first latched fault, 0: none */
static char fault_text[48];

static volatile uint8_t rx_buf[128];
static volatile uint8_t rx_head, rx_tail;

/* ---- hardware ------------------------------------------------------------------------------ */

static void dac_write(uint8_t ch, uint16_t code)
{
    /* AD5686R: 24-bit word, command 0011 (write to and update DAC n), one-hot address, data MSB first.
       Atomic: the frame interrupt writes DACs too, and must never start a word inside another. */
    uint8_t sync = (uint8_t)(2 - ch / 4); /* chip 0 on PB2, chip 1 on PB1, chip 2 on PB0 */
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        PORTB &= (uint8_t)~(1 << sync);
        SPDR = (uint8_t)(0x30 | (1 << (ch % 4)));
        while (!(SPSR & (1 << SPIF)))
            ;
        SPDR = (uint8_t)(code >> 8);
        while (!(SPSR & (1 << SPIF)))
            ;
        SPDR = (uint8_t)code;
        while (!(SPSR & (1 << SPIF)))
            ;
        PORTB |= (uint8_t)(1 << sync); /* the DAC updates on this rising edge */
        dac[ch] = code;
    }
}

static void output_relay(void)
{
    /* PD3 closes the output relay while any channel is enabled */
    if (enabled)
        PORTD |= (1 << PD3);
    else
        PORTD &= (uint8_t)~(1 << PD3);
}

static uint16_t adc_read(uint8_t ch)
{
    PORTD = (uint8_t)((PORTD & 0x0F) | (uint8_t)(ch << 4));
    uint16_t sum = 0;
    for (uint8_t i = 0; i < 4; i++) {
        ADCSRA |= (1 << ADSC);
        while (ADCSRA & (1 << ADSC))
            ;
        sum += ADC;
    }
    return sum; /* 4 x 10 bit */
}

/* ---- UART ----------------------------------------------------------------------------------- */

ISR(USART_RX_vect)
{
    uint8_t c = UDR0;
    uint8_t next = (uint8_t)((rx_head + 1) % sizeof(rx_buf));
    if (next != rx_tail) {
        rx_buf[rx_head] = c;
        rx_head = next;
    }
}

static void put(const char *s)
{
    while (*s) {
        while (!(UCSR0A & (1 << UDRE0)))
            ;
        UDR0 = (uint8_t)*s++;
    }
}

static void reply(const char *s)
{
    put(s);
    put("\n");
}

static void reply_amps(float a)
{
    char buf[20];
    dtostre(a, buf, 6, 0);
    reply(buf);
}

/* error replies: the texts stay in flash (2 KiB of SRAM hold the tables) */
static void err_P(uint8_t code, PGM_P text)
{
    char buf[72];
    snprintf_P(buf, sizeof(buf), PSTR("ERR %u %S"), code, text);
    reply(buf);
}
#define err(code, text) err_P((code), PSTR(text))

/* ---- faults, timing ------------------------------------------------------------------------- */

static void latch(uint8_t code, const char *text)
{
    if (!fault_code) {
        fault_code = code;
        strncpy(fault_text, text, sizeof(fault_text) - 1);
    }
}

static uint32_t millis(void)
{
    uint32_t t;
    cli();
    t = now_ms;
    sei();
    return t;
}

ISR(TIMER1_COMPA_vect)
{
    now_ms++;
}

static void clear_tables(void)
{
    for (uint8_t ch = 0; ch < NCH; ch++) {
        ring_head[ch] = 0;
        ring_count[ch] = 0;
        seg_used[ch] = 0;
    }
}

static void stop_playback(void)
{
    cli();
    state = IDLE;
    for (uint8_t ch = 0; ch < NCH; ch++)
        if (playing & (1u << ch))
            setpoint[ch] = MID;
    playing = 0;
    clear_tables();
    sei();
}

/* ---- frame clock ---------------------------------------------------------------------------- */

ISR(INT0_vect)
{
    if (state == ARMED)
        state = PLAYING;
    if (state != PLAYING)
        return;
    for (uint8_t ch = 0; ch < NCH; ch++) {
        if (!(playing & (1u << ch)))
            continue;
        if (ring_count[ch] == 0) {
            /* table exhausted: this frame's current is not what the host planned */
            underruns++;
            char text[40];
            snprintf_P(text, sizeof(text), PSTR("table exhausted on channel %u at frame %lu"), ch,
                     (unsigned long)frames_played);
            latch(8, text);
            state = IDLE;
            playing = 0;
            clear_tables();
            ramping = 1; /* every channel that played ramps to zero */
            return;
        }
        segment_t *s = &ring[ch][ring_head[ch]];
        if (dac[ch] != s->code)
            dac_write(ch, s->code);
        if (s->frames && ++seg_used[ch] >= s->frames) {
            seg_used[ch] = 0;
            ring_head[ch] = (uint8_t)((ring_head[ch] + 1) % DEPTH);
            ring_count[ch]--;
        }
    }
    frames_played++;
    if (EIFR & (1 << INTF0)) {
        /* the next edge came while this update ran: that frame starts before its current is set */
        overruns++;
        char text[44];
        snprintf_P(text, sizeof(text), PSTR("clock edge during the update of frame %lu"),
                 (unsigned long)frames_played - 1);
        latch(9, text);
    }
}

/* ---- commands ------------------------------------------------------------------------------- */

static int parse_channel(const char *s, char **end)
{
    long ch = strtol(s, end, 10);
    if (*end == s)
        return -2;
    if (ch < 0 || ch >= NCH)
        return -1;
    return (int)ch;
}

static int parse_amps(const char *s, char **end, float *out)
{
    double a = strtod(s, end);
    if (*end == s || a != a || a > 1.0 || a < -1.0)
        return 0;
    *out = (float)a;
    return 1;
}

static uint16_t amps_to_code(float a)
{
    float c = (float)MID + a / (float)CURRENT_LSB_A;
    if (c < 0)
        c = 0;
    if (c > 65535)
        c = 65535;
    return (uint16_t)(c + 0.5f);
}

static float code_to_amps(uint16_t code)
{
    return (float)((int32_t)code - (int32_t)MID) * (float)CURRENT_LSB_A;
}

static int within_ceiling(uint8_t ch, uint16_t code)
{
    uint16_t d = code > MID ? code - MID : MID - code;
    return d <= ceiling[ch];
}

/* "<ch>" or "<ch>,": returns the channel or replies the error and returns -1 */
static int channel_arg(const char *arg, char **end)
{
    int ch = parse_channel(arg, end);
    if (ch == -2)
        err(2, "expected a channel number");
    else if (ch == -1)
        err(3, "channel out of range 0..11");
    return ch < 0 ? -1 : ch;
}

static void cmd_cur(char *arg)
{
    char *end;
    float a;
    int ch = channel_arg(arg, &end);
    if (ch < 0)
        return;
    if (*end != ',' || !parse_amps(end + 1, &end, &a) || *end) {
        err(2, "expected CUR <channel>,<amps>");
        return;
    }
    uint16_t code = amps_to_code(a);
    if (!within_ceiling((uint8_t)ch, code)) {
        err(4, "current above the channel ceiling");
        return;
    }
    if (wdt_tripped) {
        err(7, "watchdog tripped (host silent); send CLR");
        return;
    }
    if (playing & (1u << ch)) {
        err(6, "channel is playing a table; send STOP");
        return;
    }
    setpoint[ch] = code;
    if (enabled & (1u << ch))
        dac_write((uint8_t)ch, code);
    reply("OK");
}

static void cmd_en(char *arg)
{
    char *end;
    long mask = strtol(arg, &end, 10);
    if (end == arg || *end) {
        err(2, "expected EN <mask>");
        return;
    }
    if (mask < 0 || mask >= (1L << NCH)) {
        err(3, "mask names channels this board does not have");
        return;
    }
    if (state != IDLE) {
        err(6, "playback running; send STOP");
        return;
    }
    if (wdt_tripped && mask) {
        err(7, "watchdog tripped (host silent); send CLR");
        return;
    }
    enabled = (uint16_t)mask;
    for (uint8_t ch = 0; ch < NCH; ch++)
        dac_write(ch, (enabled & (1u << ch)) ? setpoint[ch] : MID);
    output_relay();
    reply("OK");
}

static void cmd_max(char *arg)
{
    char *end;
    float a;
    int ch = channel_arg(arg, &end);
    if (ch < 0)
        return;
    if (*end != ',' || !parse_amps(end + 1, &end, &a) || *end || a < 0) {
        err(2, "expected MAX <channel>,<amps>");
        return;
    }
    if (a > (float)HW_MAX_A) {
        err(4, "ceiling above the hardware ceiling");
        return;
    }
    uint16_t c = (uint16_t)(a / (float)CURRENT_LSB_A + 0.5f);
    uint16_t now = setpoint[ch] > MID ? setpoint[ch] - MID : MID - setpoint[ch];
    if (now > c) {
        err(4, "setpoint above the new ceiling; lower the current first");
        return;
    }
    ceiling[ch] = c;
    reply("OK");
}

/* WAV <ch>,<amps>,<frames>[,<amps>,<frames>...]: appends all segments of the line or none */
static void cmd_wav(char *arg)
{
    char *end;
    int ch = channel_arg(arg, &end);
    if (ch < 0)
        return;
    segment_t got[4];
    uint8_t n = 0;
    while (*end == ',') {
        float a;
        if (n == 4 || !parse_amps(end + 1, &end, &a) || *end != ',') {
            err(2, "expected WAV <channel>,<amps>,<frames> (at most 4 segments a line)");
            return;
        }
        char *f = end + 1;
        long frames = strtol(f, &end, 10);
        if (end == f || frames < 0 || frames > 65535) {
            err(2, "frames must be 0 (hold) .. 65535");
            return;
        }
        got[n].code = amps_to_code(a);
        got[n].frames = (uint16_t)frames;
        if (!within_ceiling((uint8_t)ch, got[n].code)) {
            err(4, "current above the channel ceiling");
            return;
        }
        n++;
    }
    if (*end || n == 0) {
        err(2, "expected WAV <channel>,<amps>,<frames>");
        return;
    }
    if (wdt_tripped) {
        err(7, "watchdog tripped (host silent); send CLR");
        return;
    }
    if (ring_count[ch] + n > DEPTH) {
        err(6, "table full; wait for WAV? to report room");
        return;
    }
    for (uint8_t i = 0; i < n; i++) {
        cli();
        uint8_t at = (uint8_t)((ring_head[ch] + ring_count[ch]) % DEPTH);
        ring[ch][at] = got[i];
        ring_count[ch]++;
        sei();
    }
    reply("OK");
}

static void cmd_play(void)
{
    if (wdt_tripped) {
        err(7, "watchdog tripped (host silent); send CLR");
        return;
    }
    if (state != IDLE) {
        err(6, "playback already running");
        return;
    }
    uint16_t mask = 0;
    for (uint8_t ch = 0; ch < NCH; ch++)
        if (ring_count[ch])
            mask |= (uint16_t)(1u << ch);
    if (!mask) {
        err(6, "no table loaded; send WAV first");
        return;
    }
    cli();
    playing = mask;
    enabled |= mask;
    frames_played = 0;
    EIFR = (1 << INTF0); /* an edge before PLAY does not count */
    state = ARMED;
    sei();
    output_relay();
    reply("OK");
}

static void cmd_zero(void)
{
    stop_playback();
    ramping = 0;
    for (uint8_t ch = 0; ch < NCH; ch++) {
        setpoint[ch] = MID;
        dac_write(ch, MID);
    }
    enabled = 0;
    output_relay();
    reply("OK");
}

static void handle(char *line)
{
    char buf[64];
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = 0;
    else
        arg = line + strlen(line);
    char *end;
    int ch;
    if (!strcmp(line, "*IDN?") && !*arg) {
        reply("QDM-COIL,12," SERIAL_NUMBER "," FIRMWARE);
    } else if (!strcmp(line, "MAX?")) {
        if (!*arg) {
            reply_amps((float)HW_MAX_A);
        } else if ((ch = channel_arg(arg, &end)) >= 0) {
            if (*end)
                err(2, "expected MAX? [<channel>]");
            else
                reply_amps(ceiling[ch] * (float)CURRENT_LSB_A);
        }
    } else if (!strcmp(line, "MAX")) {
        cmd_max(arg);
    } else if (!strcmp(line, "CUR")) {
        cmd_cur(arg);
    } else if (!strcmp(line, "WAV?") && !*arg) {
        /* room left in every channel's ring: one short query per top-up keeps the line for tables */
        char *p = buf;
        for (uint8_t k = 0; k < NCH; k++)
            p += snprintf_P(p, sizeof(buf) - (size_t)(p - buf), k ? PSTR(",%u") : PSTR("%u"),
                            DEPTH - ring_count[k]);
        reply(buf);
    } else if (!strcmp(line, "CUR?") || !strcmp(line, "MEAS?") || !strcmp(line, "WAV?")) {
        if ((ch = channel_arg(arg, &end)) < 0)
            return;
        if (*end) {
            err(2, "expected one channel number");
        } else if (line[0] == 'C') {
            reply_amps(code_to_amps(setpoint[ch]));
        } else if (line[0] == 'M') {
            /* 4 x 10-bit sum: 2048 is 1.25 V = 0 A; 1.25 V full scale is 5.12 mA */
            float counts = (float)adc_read((uint8_t)ch) - 2048.0f;
            reply_amps(counts * (5.12e-3f / 2048.0f));
        } else {
            snprintf_P(buf, sizeof(buf), PSTR("%u,%u"), ring_count[ch], DEPTH - ring_count[ch]);
            reply(buf);
        }
    } else if (!strcmp(line, "EN")) {
        cmd_en(arg);
    } else if (!strcmp(line, "EN?") && !*arg) {
        snprintf_P(buf, sizeof(buf), PSTR("%u"), enabled);
        reply(buf);
    } else if (!strcmp(line, "ZERO") && !*arg) {
        cmd_zero();
    } else if (!strcmp(line, "WDT")) {
        double s = strtod(arg, &end);
        if (end == arg || *end || !(s >= 0.1 && s <= 60.0)) {
            err(2, "watchdog timeout must be 0.1 .. 60 s");
        } else {
            wdt_ms = (uint16_t)(s * 1000.0 + 0.5);
            reply("OK");
        }
    } else if (!strcmp(line, "WDT?") && !*arg) {
        reply_amps(wdt_ms / 1000.0f);
    } else if (!strcmp(line, "WAV")) {
        cmd_wav(arg);
    } else if (!strcmp(line, "WCLR") && !*arg) {
        if (state != IDLE) {
            err(6, "playback running; send STOP");
        } else {
            clear_tables();
            reply("OK");
        }
    } else if (!strcmp(line, "PLAY") && !*arg) {
        cmd_play();
    } else if (!strcmp(line, "STOP") && !*arg) {
        stop_playback();
        ramping = 1; /* ramp what played back to zero */
        reply("OK");
    } else if (!strcmp(line, "STAT?") && !*arg) {
        cli();
        snprintf_P(buf, sizeof(buf), PSTR("%s,%lu,%u,%u,%u"), STATE_NAMES[state], (unsigned long)frames_played,
                 overruns, underruns, wdt_tripped);
        sei();
        reply(buf);
    } else if (!strcmp(line, "ERR?") && !*arg) {
        if (fault_code) {
            snprintf_P(buf, sizeof(buf), PSTR("%u %s"), fault_code, fault_text);
            reply(buf);
        } else {
            reply("0 none");
        }
    } else if (!strcmp(line, "CLR") && !*arg) {
        cli();
        fault_code = 0;
        overruns = underruns = 0;
        wdt_tripped = 0;
        sei();
        reply("OK");
    } else {
        err(1, "unknown command");
    }
}

/* ---- main ----------------------------------------------------------------------------------- */

static void ramp_step(void)
{
    uint8_t moving = 0;
    for (uint8_t ch = 0; ch < NCH; ch++) {
        if (playing & (1u << ch))
            continue; /* a channel still playing is not ramped */
        uint16_t c = dac[ch];
        if (c == MID)
            continue;
        if (c > MID)
            c = (c - MID > RAMP_CODES_PER_MS) ? c - RAMP_CODES_PER_MS : MID;
        else
            c = (MID - c > RAMP_CODES_PER_MS) ? c + RAMP_CODES_PER_MS : MID;
        ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
        {
            if (!(playing & (1u << ch)))
                dac_write(ch, c);
        }
        moving = 1;
    }
    if (!moving) {
        ramping = 0;
        if (wdt_tripped) {
            enabled = 0;
            output_relay();
        }
    }
}

int main(void)
{
    /* SPI master, mode 1 (AD5686R samples on SCLK falling edges), f/2 = 8 MHz */
    DDRB = (1 << PB0) | (1 << PB1) | (1 << PB2) | (1 << PB3) | (1 << PB5);
    PORTB = (1 << PB0) | (1 << PB1) | (1 << PB2);
    SPCR = (1 << SPE) | (1 << MSTR) | (1 << CPHA);
    SPSR = (1 << SPI2X);
    DDRD = (1 << PD3) | 0xF0; /* relay and multiplexer select */
    PORTD = 0;
    ADMUX = 0;                /* ADC0, external AREF (2.5 V from the DAC's VREF pin) */
    ADCSRA = (1 << ADEN) | (1 << ADPS2) | (1 << ADPS1) | (1 << ADPS0);
    UCSR0A = (1 << U2X0);
    UBRR0H = (uint8_t)(UART_UBRR >> 8);
    UBRR0L = (uint8_t)UART_UBRR;
    UCSR0B = (1 << RXEN0) | (1 << TXEN0) | (1 << RXCIE0);
    UCSR0C = (1 << UCSZ01) | (1 << UCSZ00);
    TCCR1A = 0; /* 1 kHz tick: CTC, /64, 250 counts */
    TCCR1B = (1 << WGM12) | (1 << CS11) | (1 << CS10);
    OCR1A = 249;
    TIMSK1 = (1 << OCIE1A);
    EICRA = (1 << ISC01) | (1 << ISC00); /* INT0 on rising edges */
    EIMSK = (1 << INT0);
    for (uint8_t ch = 0; ch < NCH; ch++) {
        setpoint[ch] = MID;
        ceiling[ch] = (uint16_t)(HW_MAX_A / CURRENT_LSB_A);
        dac_write(ch, MID);
    }
    sei();

    char line[LINE_MAX];
    uint8_t len = 0, too_long = 0;
    uint32_t last_ramp = 0;
    for (;;) {
        while (rx_tail != rx_head) {
            char c = (char)rx_buf[rx_tail];
            rx_tail = (uint8_t)((rx_tail + 1) % sizeof(rx_buf));
            if (c == '\r')
                continue;
            if (c != '\n') {
                if (len < LINE_MAX - 1)
                    line[len++] = c;
                else
                    too_long = 1;
                continue;
            }
            line[len] = 0;
            last_rx_ms = millis();
            if (too_long)
                err(2, "line too long");
            else
                handle(line);
            len = 0;
            too_long = 0;
        }
        uint32_t t = millis();
        if (!wdt_tripped && t - last_rx_ms > wdt_ms) {
            wdt_tripped = 1;
            latch(7, "watchdog: host silent, channels ramped to 0");
            stop_playback();
            for (uint8_t ch = 0; ch < NCH; ch++)
                setpoint[ch] = MID;
            ramping = 1;
        }
        if (ramping && t != last_ramp) {
            last_ramp = t;
            ramp_step();
        }
    }
}
