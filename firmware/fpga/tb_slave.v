`timescale 1ns / 1ps
// Test harness around spad_fpga in SPI slave mode (SPI_SLAVE = 1): a 100 MHz clock generated here;
// the cocotb testbench plays the Linux host, driving SCLK and CS as spidev does in SPI_MODE_0 and
// sampling MISO on the rising SCLK edges.
module tb_slave #(
    parameter integer CHIP_DIV   = 8,
    parameter integer COUNT_BITS = 8,
    parameter integer FRAMING_V2 = 0
) (
    output reg         clk,
    input  wire        rst,
    output wire        chip_clk,
    output wire        chip_trigger,
    input  wire [15:0] row_sdata,
    input  wire        sclk,
    input  wire        cs_n,
    output wire        miso,
    output wire        master_ss_n,
    output wire [31:0] frames_sent
);
    initial clk = 0;
    always #5 clk = !clk;

    wire master_sclk, master_mosi;
    wire [31:0] readouts_done;

    spad_fpga #(.CHIP_DIV(CHIP_DIV), .COUNT_BITS(COUNT_BITS), .FRAMING_V2(FRAMING_V2), .SPI_SLAVE(1)) dut (
        .clk(clk), .rst(rst), .chip_clk(chip_clk), .chip_trigger(chip_trigger), .row_sdata(row_sdata),
        .spi_sclk(master_sclk), .spi_mosi(master_mosi), .spi_ss_n(master_ss_n),
        .spi_sclk_in(sclk), .spi_cs_n_in(cs_n), .spi_miso(miso),
        .frames_sent(frames_sent), .readouts_done(readouts_done));
endmodule
