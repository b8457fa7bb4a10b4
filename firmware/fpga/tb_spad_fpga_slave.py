"""cocotb testbench for spad_fpga.v in SPI slave mode, read as a Linux host reads over spidev.

The host side follows spidev's defaults: SPI_MODE_0 (CPOL 0, CPHA 0: SCLK idles low, the master
samples MISO on the rising edge, the slave changes it after the falling edge), MSB first (no
SPI_LSB_FIRST), chip select active low for the whole transfer, one frame per transfer. The bytes go
through the driver's SpadFrameParser, as SpidevTransport hands them over.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly
from tb_spad_fpga import ChipModel, check_frames

from drivers.spad_frames import SpadFrameParser

HALF_PERIOD_CLKS = 4
"""SCLK half period in FPGA clocks (SCLK = clk / 8, the slowest ratio the design asks for)."""


class SpidevHost:
    """The Linux host as an SPI master: spidev SPI_MODE_0, MSB first, CS active low per transfer."""

    def __init__(self, dut) -> None:
        self.dut = dut

    async def transfer(self, n_bytes: int) -> bytes:
        dut = self.dut
        dut.cs_n.value = 0
        await ClockCycles(dut.clk, HALF_PERIOD_CLKS)  # CS setup before the first SCLK edge
        out = bytearray()
        for _ in range(n_bytes):
            byte = 0
            for _ in range(8):
                await ClockCycles(dut.clk, HALF_PERIOD_CLKS)
                await ReadOnly()
                byte = (byte << 1) | int(dut.miso.value)  # sampled at the rising edge, MSB first
                await ClockCycles(dut.clk, 1)
                dut.sclk.value = 1
                await ClockCycles(dut.clk, HALF_PERIOD_CLKS)
                dut.sclk.value = 0
            out.append(byte)
        await ClockCycles(dut.clk, HALF_PERIOD_CLKS)
        dut.cs_n.value = 1
        await ClockCycles(dut.clk, 4 * HALF_PERIOD_CLKS)
        return bytes(out)


@cocotb.test()
async def spidev_host_reads_frames_on_demand(dut):
    """Frames clocked out by the host parse into accumulated counts; MISO floats while CS is high."""
    v2 = int(os.environ.get("SPAD_FRAMING_V2", "0"))
    n_frames = int(os.environ.get("SPAD_FRAMES", "3"))
    frame_bytes = 1040 if v2 else 1028
    dut.rst.value = 1
    dut.row_sdata.value = 0
    dut.cs_n.value = 1
    dut.sclk.value = 0
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    chip = ChipModel(dut)
    cocotb.start_soon(chip.run())
    await ClockCycles(dut.clk, 3000)  # a readout or so before the first frame
    await ReadOnly()
    assert str(dut.miso.value).lower() == "z", "MISO must float while CS is high (shared bus)"
    assert int(dut.master_ss_n.value) == 1, "the master-mode SPI port must stay idle in slave mode"
    await ClockCycles(dut.clk, 1)
    host = SpidevHost(dut)
    raw = b""
    for k in range(n_frames):
        last = k == n_frames - 1
        frame = await host.transfer(frame_bytes + (4 if last else 0))
        if last:  # bytes clocked past a frame's end read 0x00
            assert frame[frame_bytes:] == b"\x00\x00\x00\x00"
            frame = frame[:frame_bytes]
        assert frame[:4] == b"\xff\xff\xff\xff"
        assert (frame[4:8] == b"SPD2") == bool(v2), f"frame {k}: header {frame[4:8]!r} (bit order?)"
        if v2:
            assert int.from_bytes(frame[8:12], "big") == k, "sequence number"
        raw += frame
    assert int(dut.frames_sent.value) == n_frames
    short = await host.transfer(16)  # a cut-short transfer is not a frame
    assert short[:4] == b"\xff\xff\xff\xff" and int(dut.frames_sent.value) == n_frames
    parser = SpadFrameParser()
    frames = np.concatenate([parser.feed(raw), parser.flush()])
    check_frames(frames, chip.readouts, n_frames)
