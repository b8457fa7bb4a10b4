`timescale 1ns / 1ps
// SPAD array readout FPGA (seed 003, section IV): polls the 16x16 SPAD chip, accumulates the
// per-readout pixel counts into 32-bit counters, and sends frames to the Arduino bridge as an SPI
// master while the next counts keep accumulating.
//
// Chip interface: the FPGA drives chip_clk and raises chip_trigger for one chip clock; at that
// rising edge the chip loads and clears its pixel counters and puts the MSB of column 0 of every
// row on row_sdata[row]. It shifts on each later rising edge (COUNT_BITS bits per pixel, columns
// 0..15 in order); the FPGA samples on the falling edges.
//
// Frame (legacy): 0xFF 0xFF 0xFF 0xFF, then 256 uint32 counters, MSB first, row-major.
// Frame (FRAMING_V2 = 1): 0xFFFFFFFF, "SPD2", uint32 sequence number, the 256 counters, and the
// CRC-32 (zlib polynomial, reflected, init and final XOR 0xFFFFFFFF) of everything after the
// header, all MSB first.
//
// SPI_SLAVE = 0 (master, for the Arduino bridge): SPI mode 0, SCLK idles low, MOSI changes while
// SCLK is low, the slave samples on the rising edge; SS is low for a whole frame and high for
// GAP_CLKS clocks between frames.
//
// SPI_SLAVE = 1 (slave, for a Linux host reading over spidev): the host is the master and clocks
// frames out on demand. SPI mode 0 (spidev SPI_MODE_0), MSB first (spidev's default; SPI_LSB_FIRST
// not set). Each assertion of spi_cs_n_in (low) is one frame: at the falling edge of CS the FPGA
// takes the counters of the last completed chip readout and puts the frame's first bit on MISO;
// MISO changes after each falling SCLK edge, the host samples on the rising edge. Bytes clocked
// past the frame's end read 0x00; MISO is high-Z while CS is high. SCLK and CS are synchronised to
// clk, so SCLK must stay below clk / 8 and the host must leave 4 clk periods between CS falling
// and the first SCLK edge (spidev's cs setup delay, or a slow enough SCLK). frames_sent counts
// frames clocked out completely.
module spad_fpga #(
    parameter integer CHIP_DIV   = 4,   // clk cycles per chip_clk half period
    parameter integer COUNT_BITS = 8,   // width of the on-chip pixel counters
    parameter integer SPI_DIV    = 2,   // clk cycles per SCLK half period (master mode)
    parameter integer GAP_CLKS   = 64,  // SS high time between frames (master mode)
    parameter integer FRAMING_V2 = 0,
    parameter integer SPI_SLAVE  = 0    // 1: SPI slave for a spidev host, 0: master for the bridge
) (
    input  wire        clk,
    input  wire        rst,
    output reg         chip_clk,
    output reg         chip_trigger,
    input  wire [15:0] row_sdata,
    output reg         spi_sclk,
    output reg         spi_mosi,
    output reg         spi_ss_n,
    input  wire        spi_sclk_in,    // slave mode: the host's SCLK
    input  wire        spi_cs_n_in,    // slave mode: the host's chip select, active low
    output wire        spi_miso,       // slave mode: data to the host (high-Z while CS is high)
    output wire [31:0] frames_sent,
    output reg  [31:0] readouts_done
);
    localparam integer FRAME_BYTES = FRAMING_V2 ? 1040 : 1028;
    localparam integer PAYLOAD_AT = FRAMING_V2 ? 12 : 4;

    reg [31:0] acc [0:255];   // cumulative counters, wrap at 2**32
    reg [31:0] snap [0:255];  // the frame being sent (master mode)
    reg [31:0] m_frames;      // frames sent in master mode
    reg [31:0] s_frames;      // frames clocked out by the host in slave mode
    assign frames_sent = SPI_SLAVE ? s_frames : m_frames;

    // ---------------------------------------------------------------- chip readout
    reg [15:0] div_cnt;
    reg [1:0]  rd_state;
    reg [15:0] bit_cnt;
    reg [COUNT_BITS-1:0] rowsh [0:15];
    localparam RD_TRIG = 2'd0, RD_WAIT = 2'd1, RD_SHIFT = 2'd2;
    integer r;

    wire chip_edge = (div_cnt == CHIP_DIV - 1);
    wire chip_fall = chip_edge && chip_clk;   // chip_clk goes 1 -> 0 this cycle
    wire chip_rise = chip_edge && !chip_clk;  // chip_clk goes 0 -> 1 this cycle
    wire [3:0] column = bit_cnt / COUNT_BITS;

    always @(posedge clk) begin
        if (rst) begin
            div_cnt <= 0;
            chip_clk <= 0;
            chip_trigger <= 0;
            rd_state <= RD_TRIG;
            bit_cnt <= 0;
            readouts_done <= 0;
            for (r = 0; r < 256; r = r + 1) acc[r] <= 32'd0;
            for (r = 0; r < 16; r = r + 1) rowsh[r] <= 0;
        end else begin
            div_cnt <= chip_edge ? 16'd0 : div_cnt + 16'd1;
            if (chip_edge) chip_clk <= !chip_clk;
            case (rd_state)
                RD_TRIG: if (chip_fall) begin
                    chip_trigger <= 1;  // seen by the chip at the next rising edge
                    rd_state <= RD_WAIT;
                end
                RD_WAIT: if (chip_rise) begin
                    rd_state <= RD_SHIFT;
                    bit_cnt <= 0;
                end
                RD_SHIFT: if (chip_fall) begin
                    chip_trigger <= 0;
                    for (r = 0; r < 16; r = r + 1)
                        rowsh[r] <= {rowsh[r][COUNT_BITS-2:0], row_sdata[r]};
                    if (bit_cnt % COUNT_BITS == COUNT_BITS - 1) begin
                        for (r = 0; r < 16; r = r + 1)
                            acc[r * 16 + column] <= acc[r * 16 + column]
                                + {{(32-COUNT_BITS){1'b0}}, rowsh[r][COUNT_BITS-2:0], row_sdata[r]};
                    end
                    if (bit_cnt == 16 * COUNT_BITS - 1) begin
                        rd_state <= RD_TRIG;
                        readouts_done <= readouts_done + 1;
                    end
                    bit_cnt <= bit_cnt + 1;
                end
                default: rd_state <= RD_TRIG;
            endcase
        end
    end

    // ---------------------------------------------------------------- framing and SPI master
    function [31:0] crc32_byte(input [31:0] crc, input [7:0] data);
        integer k;
        reg [31:0] c;
        begin
            c = crc ^ {24'd0, data};
            for (k = 0; k < 8; k = k + 1)
                c = c[0] ? (c >> 1) ^ 32'hEDB88320 : (c >> 1);
            crc32_byte = c;
        end
    endfunction

    reg [1:0]  tx_state;
    reg [15:0] tx_cnt;      // clocks in the gap / in the present SCLK half period
    reg [10:0] byte_idx;
    reg [2:0]  bit_idx;
    reg [7:0]  tx_byte;
    reg [31:0] crc;
    localparam TX_GAP = 2'd0, TX_LOAD = 2'd1, TX_LOW = 2'd2, TX_HIGH = 2'd3;

    // Byte byte_idx of the frame being sent.
    function [7:0] frame_byte(input [10:0] idx);
        reg [31:0] word;
        reg [10:0] p;
        reg [31:0] final_crc;
        begin
            if (idx < 4) begin
                frame_byte = 8'hFF;
            end else if (FRAMING_V2 && idx < 8) begin
                case (idx)
                    4: frame_byte = "S";
                    5: frame_byte = "P";
                    6: frame_byte = "D";
                    default: frame_byte = "2";
                endcase
            end else if (FRAMING_V2 && idx < 12) begin
                frame_byte = frames_sent >> (8 * (11 - idx));
            end else if (idx < PAYLOAD_AT + 1024) begin
                p = idx - PAYLOAD_AT;
                word = snap[p >> 2];
                frame_byte = word >> (8 * (3 - p[1:0]));
            end else begin
                final_crc = ~crc;
                frame_byte = final_crc >> (8 * (FRAME_BYTES - 1 - idx));
            end
        end
    endfunction

    always @(posedge clk) begin
        if (rst) begin
            tx_state <= TX_GAP;
            tx_cnt <= 0;
            spi_sclk <= 0;
            spi_mosi <= 0;
            spi_ss_n <= 1;
            m_frames <= 0;
            byte_idx <= 0;
            bit_idx <= 7;
            crc <= 32'hFFFFFFFF;
        end else begin
            case (tx_state)
                TX_GAP: begin
                    spi_ss_n <= 1;
                    spi_sclk <= 0;
                    if (tx_cnt < GAP_CLKS - 1) begin
                        tx_cnt <= tx_cnt + 1;
                    end else if (rd_state == RD_TRIG && !SPI_SLAVE) begin
                        // Snapshot between two readouts, so every counter covers the same
                        // readouts; they go on accumulating while this frame is sent.
                        tx_cnt <= 0;
                        for (r = 0; r < 256; r = r + 1) snap[r] <= acc[r];
                        byte_idx <= 0;
                        crc <= 32'hFFFFFFFF;
                        tx_state <= TX_LOAD;
                    end
                end
                TX_LOAD: begin  // put the next byte in the shift register, first bit on MOSI
                    tx_byte = frame_byte(byte_idx);
                    if (byte_idx >= 4 && byte_idx < FRAME_BYTES - 4 && FRAMING_V2)
                        crc <= crc32_byte(crc, tx_byte);
                    spi_ss_n <= 0;
                    spi_mosi <= tx_byte[7];
                    bit_idx <= 7;
                    tx_cnt <= 0;
                    tx_state <= TX_LOW;
                end
                TX_LOW: begin
                    if (tx_cnt == SPI_DIV - 1) begin
                        spi_sclk <= 1;  // the slave samples MOSI now
                        tx_cnt <= 0;
                        tx_state <= TX_HIGH;
                    end else begin
                        tx_cnt <= tx_cnt + 1;
                    end
                end
                TX_HIGH: begin
                    if (tx_cnt == SPI_DIV - 1) begin
                        spi_sclk <= 0;
                        tx_cnt <= 0;
                        if (bit_idx == 0) begin
                            if (byte_idx == FRAME_BYTES - 1) begin
                                m_frames <= m_frames + 1;
                                tx_state <= TX_GAP;
                            end else begin
                                byte_idx <= byte_idx + 1;
                                tx_state <= TX_LOAD;
                            end
                        end else begin
                            bit_idx <= bit_idx - 1;
                            spi_mosi <= tx_byte[bit_idx - 1];
                            tx_state <= TX_LOW;
                        end
                    end else begin
                        tx_cnt <= tx_cnt + 1;
                    end
                end
            endcase
        end
    end
    // ---------------------------------------------------------------- SPI slave (spidev host)
    reg [31:0] done [0:255];    // the counters as of the last completed readout
    reg [31:0] s_snap [0:255];  // the frame the host is clocking out
    reg [31:0] done_at;       // readouts_done when `done` was taken
    reg [2:0]  sclk_sync, cs_sync;
    reg        miso_r;
    reg [10:0] s_byte_idx;
    reg [2:0]  s_bit_idx;
    reg [7:0]  s_byte;
    reg [31:0] s_crc;
    reg        s_active;
    integer    q;
    wire sclk_fall = sclk_sync[2] && !sclk_sync[1];
    wire cs_fall = cs_sync[2] && !cs_sync[1];
    wire cs_rise = !cs_sync[2] && cs_sync[1];
    assign spi_miso = (SPI_SLAVE && !spi_cs_n_in) ? miso_r : 1'bz;

    // Byte idx of the frame the slave is sending (same layout as frame_byte, its own snapshot and CRC).
    function [7:0] slave_byte(input [10:0] idx);
        reg [31:0] word;
        reg [10:0] p;
        reg [31:0] final_crc;
        begin
            if (idx >= FRAME_BYTES) begin
                slave_byte = 8'h00;
            end else if (idx < 4) begin
                slave_byte = 8'hFF;
            end else if (FRAMING_V2 && idx < 8) begin
                case (idx)
                    4: slave_byte = "S";
                    5: slave_byte = "P";
                    6: slave_byte = "D";
                    default: slave_byte = "2";
                endcase
            end else if (FRAMING_V2 && idx < 12) begin
                slave_byte = frames_sent >> (8 * (11 - idx));
            end else if (idx < PAYLOAD_AT + 1024) begin
                p = idx - PAYLOAD_AT;
                word = s_snap[p >> 2];
                slave_byte = word >> (8 * (3 - p[1:0]));
            end else begin
                final_crc = ~s_crc;
                slave_byte = final_crc >> (8 * (FRAME_BYTES - 1 - idx));
            end
        end
    endfunction

    always @(posedge clk) begin
        if (rst || !SPI_SLAVE) begin
            sclk_sync <= 3'b000;
            cs_sync <= 3'b111;
            miso_r <= 0;
            s_active <= 0;
            s_byte_idx <= 0;
            s_bit_idx <= 7;
            s_crc <= 32'hFFFFFFFF;
            done_at <= 0;
            s_frames <= 0;
            if (rst) for (q = 0; q < 256; q = q + 1) done[q] <= 32'd0;
        end else begin
            sclk_sync <= {sclk_sync[1:0], spi_sclk_in};
            cs_sync <= {cs_sync[1:0], spi_cs_n_in};
            if (readouts_done != done_at && rd_state == RD_TRIG) begin
                // a readout has completed and its last column is in acc: keep a coherent copy
                for (q = 0; q < 256; q = q + 1) done[q] <= acc[q];
                done_at <= readouts_done;
            end
            if (cs_fall) begin
                for (q = 0; q < 256; q = q + 1) s_snap[q] <= done[q];
                s_active <= 1;
                s_byte_idx <= 0;
                s_bit_idx <= 7;
                s_byte <= 8'hFF;  // byte 0 of every frame
                s_crc <= 32'hFFFFFFFF;
                miso_r <= 1'b1;
            end else if (cs_rise) begin
                if (s_active && s_byte_idx >= FRAME_BYTES) s_frames <= s_frames + 1;
                s_active <= 0;
            end else if (s_active && sclk_fall) begin
                if (s_bit_idx == 0) begin
                    // next byte: the CRC covers every byte after the header and before the CRC
                    s_byte = slave_byte(s_byte_idx + 1);
                    if (FRAMING_V2 && s_byte_idx + 1 >= 4 && s_byte_idx + 1 < FRAME_BYTES - 4)
                        s_crc <= crc32_byte(s_crc, s_byte);
                    s_byte_idx <= s_byte_idx + 1;
                    s_bit_idx <= 7;
                    miso_r <= s_byte[7];
                end else begin
                    s_bit_idx <= s_bit_idx - 1;
                    miso_r <= s_byte[s_bit_idx - 1];
                end
            end
        end
    end
endmodule
