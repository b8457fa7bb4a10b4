`timescale 1ns / 1ps
// Test harness around spad_fpga: a 100 MHz clock generated here (much faster in Icarus than a
// clock driven from Python) and an SPI mode-0 slave that strobes byte_valid for one clk per
// received byte, so the cocotb testbench handles bytes rather than SCLK edges.
module tb_top #(
    parameter integer CHIP_DIV   = 8,
    parameter integer COUNT_BITS = 8,
    parameter integer SPI_DIV    = 1,
    parameter integer GAP_CLKS   = 16,
    parameter integer FRAMING_V2 = 0
) (
    output reg         clk,
    input  wire        rst,
    output wire        chip_clk,
    output wire        chip_trigger,
    input  wire [15:0] row_sdata,
    output wire        spi_ss_n,
    output wire [31:0] frames_sent,
    output reg  [7:0]  rx_byte,
    output reg         byte_valid
);
    initial clk = 0;
    always #5 clk = !clk;

    wire spi_sclk, spi_mosi;
    wire [31:0] readouts_done;

    spad_fpga #(.CHIP_DIV(CHIP_DIV), .COUNT_BITS(COUNT_BITS), .SPI_DIV(SPI_DIV), .GAP_CLKS(GAP_CLKS),
                .FRAMING_V2(FRAMING_V2)) dut (
        .clk(clk), .rst(rst), .chip_clk(chip_clk), .chip_trigger(chip_trigger), .row_sdata(row_sdata),
        .spi_sclk(spi_sclk), .spi_mosi(spi_mosi), .spi_ss_n(spi_ss_n),
        .spi_sclk_in(1'b0), .spi_cs_n_in(1'b1), .spi_miso(),  // slave-mode pins unused in master mode
        .frames_sent(frames_sent),
        .readouts_done(readouts_done));

    reg sclk_d;
    reg [7:0] shreg;
    reg [2:0] nbits;
    always @(posedge clk) begin
        sclk_d <= spi_sclk;
        byte_valid <= 0;
        if (rst || spi_ss_n) begin
            nbits <= 0;
        end else if (spi_sclk && !sclk_d) begin  // rising SCLK: sample MOSI
            shreg <= {shreg[6:0], spi_mosi};
            nbits <= nbits + 1;
            if (nbits == 7) begin
                rx_byte <= {shreg[6:0], spi_mosi};
                byte_valid <= 1;
            end
        end
    end
endmodule
