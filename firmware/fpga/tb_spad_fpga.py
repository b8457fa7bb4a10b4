"""cocotb testbench for spad_fpga.v: a SPAD chip model, an SPI slave, and the driver's parser.

The chip model answers each readout trigger with random per-pixel counts; the SPI slave collects
the bytes the FPGA sends; SpadFrameParser turns them into frames, each of which must equal the sum
of the counts of the readouts completed before it was taken.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from drivers.spad_frames import SpadFrameParser

COUNT_BITS = int(os.environ.get("SPAD_COUNT_BITS", "8"))


class ChipModel:
    """16 rows of 16 pixels whose counters the FPGA reads serially, MSB first."""

    def __init__(self, dut, seed: int = 1) -> None:
        self.dut = dut
        self.rng = np.random.default_rng(seed)
        self.readouts: list[np.ndarray] = []
        self._counts = np.zeros((16, 16), dtype=np.int64)
        self._bit = 16 * COUNT_BITS  # nothing loaded yet

    async def run(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.chip_clk)
            if int(dut.chip_trigger.value):
                # load and clear: counts since the last readout, some pixels at full scale
                counts = self.rng.integers(0, 2**COUNT_BITS, (16, 16))
                counts[0, 0] = 2**COUNT_BITS - 1
                self._counts = counts
                self.readouts.append(counts)
                self._bit = 0
            else:
                self._bit += 1
            dut.row_sdata.value = self._row_bits()

    def _row_bits(self) -> int:
        if self._bit >= 16 * COUNT_BITS:
            return 0
        column, shift = divmod(self._bit, COUNT_BITS)
        bits = (self._counts[:, column] >> (COUNT_BITS - 1 - shift)) & 1
        return int(sum(int(b) << row for row, b in enumerate(bits)))


async def spi_bytes(dut, received: bytearray) -> None:
    """Collect the bytes tb_top's SPI slave deserialises from the FPGA's MOSI."""
    while True:
        await RisingEdge(dut.byte_valid)
        await ReadOnly()  # rx_byte settles in the same time step
        received.append(int(dut.rx_byte.value))


async def run_frames(dut, n_frames: int) -> tuple[np.ndarray, list[np.ndarray], bytes]:
    dut.rst.value = 1
    dut.row_sdata.value = 0
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    chip = ChipModel(dut)
    received = bytearray()
    cocotb.start_soon(chip.run())
    cocotb.start_soon(spi_bytes(dut, received))
    while int(dut.frames_sent.value) < n_frames:
        await RisingEdge(dut.spi_ss_n)  # the end of a frame
    await FallingEdge(dut.clk)
    parser = SpadFrameParser()
    frames = np.concatenate([parser.feed(bytes(received)), parser.flush()])
    return frames, chip.readouts, bytes(received)


def check_frames(frames: np.ndarray, readouts: list[np.ndarray], n_frames: int) -> None:
    assert len(frames) == n_frames, f"parsed {len(frames)} of {n_frames} frames"
    totals = np.cumsum(np.stack(readouts), axis=0) % 2**32  # after 1, 2, ... readouts
    done = -1
    for frame in frames:
        if not frame.any():
            continue  # taken before the first readout completed
        match = [k for k in range(len(totals)) if np.array_equal(totals[k], frame)]
        assert match, (f"a frame is not the sum of any number of readouts: frame[0] = {frame[0, :4]}, "
                   f"sums[0] = {[t[0, :4] for t in totals[:3]]}, first readout row 0 = {readouts[0][0, :4]}")
        assert match[0] >= done, "frames went back in time"
        done = match[0]
    assert done >= 1, "no frame carried accumulated counts"


@cocotb.test()
async def frames_carry_accumulated_counts(dut):
    """Legacy or v2 frames (per the FRAMING_V2 parameter) parse into the accumulated counts."""
    n_frames = int(os.environ.get("SPAD_FRAMES", "3"))
    frames, readouts, raw = await run_frames(dut, n_frames)
    v2 = int(os.environ.get("SPAD_FRAMING_V2", "0"))
    assert raw[:4] == b"\xff\xff\xff\xff"
    assert (raw[4:8] == b"SPD2") == bool(v2)
    assert len(raw) == n_frames * (1040 if v2 else 1028)
    check_frames(frames, readouts, n_frames)
