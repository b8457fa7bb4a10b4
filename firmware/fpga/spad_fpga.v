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
// SPI mode 0: SCLK idles low, MOSI changes while SCLK is low, the slave samples on the rising edge;
// SS is low for a whole frame and high for GAP_CLKS clocks between frames.
module spad_fpga #(
    parameter integer CHIP_DIV   = 4,   // clk cycles per chip_clk half period
    parameter integer COUNT_BITS = 8,   // width of the on-chip pixel counters
    parameter integer SPI_DIV    = 2,   // clk cycles per SCLK half period
    parameter integer GAP_CLKS   = 64,  // SS high time between frames
    parameter integer FRAMING_V2 = 0
) (
    input  wire        clk,
    input  wire        rst,
    output reg         chip_clk,
    output reg         chip_trigger,
    input  wire [15:0] row_sdata,
    output reg         spi_sclk,
    output reg         spi_mosi,
    output reg         spi_ss_n,
    output reg  [31:0] frames_sent,
    output reg  [31:0] readouts_done
);
    localparam integer FRAME_BYTES = FRAMING_V2 ? 1040 : 1028;
    localparam integer PAYLOAD_AT = FRAMING_V2 ? 12 : 4;

    reg [31:0] acc [0:255];   // cumulative counters, wrap at 2**32
    reg [31:0] snap [0:255];  // the frame being sent

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
            frames_sent <= 0;
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
                    end else if (rd_state == RD_TRIG) begin
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
                                frames_sent <= frames_sent + 1;
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
endmodule
