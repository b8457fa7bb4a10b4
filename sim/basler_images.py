"""The World's photoluminescence served to Basler's camera emulator through its image-file mode.

pylon's emulator (``PYLON_CAMEMU``) serves, with ``ImageFileMode = On`` and ``ImageFilename`` set
to a folder, the folder's image files in turn, reading each afresh at every frame (one file alone is
read once and cached, so the feed keeps two). ``EmulatorImageFeed`` is called before each trigger:
it renders the PL image the World gives for the present MW state into every file of the folder, so
the physics reaches the driver through Basler's own code (file decoding, pixel-format conversion,
ROI, frame counters), never through ours. Measured on pypylon 26.10 (docs/hardware/basler.md):
a 16-bit PNG reaches Mono16 unchanged and Mono8/10/12 as its top 8/10/12 bits, so a value of
``bit_depth`` bits is written shifted up by ``16 - bit_depth``.

The emulator integrates no light and keeps no timing; the feed stands in: it scales the image with
the exposure and gain, adds shot and read noise, clips at full well, and advances the World's clock
by the exposure.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from sim.world import World

EMULATOR_SERIAL_PREFIX = "0815-"  # the emulator's serials are 0815-0000, 0815-0001, ...
N_FILES = 2


def enable_emulator(n_cameras: int = 1) -> None:
    """Ask pylon for ``n_cameras`` emulated cameras; must run before pylon's TlFactory starts."""
    present = os.environ.get("PYLON_CAMEMU", "")
    have = int(present) if present.isdigit() else 0
    os.environ["PYLON_CAMEMU"] = str(max(have, int(n_cameras)))


def emulator_serial(index: int = 0) -> str:
    return f"{EMULATOR_SERIAL_PREFIX}{index:04d}"


class EmulatorImageFeed:
    """Renders the World's PL into the folder the emulator serves, one image per trigger.

    Args:
        world: the shared physics; images have ``world.shape``.
        collection: fraction of the World's per-pixel photon rate that a camera pixel collects
            (smaller pixels and a neutral-density filter than the lock-in camera's).
        full_well_e: electrons at which a pixel saturates (the top of the pixel format's range at
            0 dB gain).
        read_noise_e: read noise per pixel, electrons rms.
        dark_offset_dn: black level, in the pixel format's units.
        mw_switch: state of the MW switch during the exposure (True: CW, MW reaches the NVs).
        folder: where the files go; ``None`` makes a temporary folder removed by ``close()``.
    """

    def __init__(
        self,
        world: World,
        *,
        collection: float = 1e-3,
        full_well_e: float = 3e4,
        read_noise_e: float = 2.5,
        dark_offset_dn: float = 16.0,
        mw_switch: Callable[[], bool] = lambda: True,
        folder: str | Path | None = None,
    ) -> None:
        self.world = world
        self.collection = collection
        self.full_well_e = full_well_e
        self.read_noise_e = read_noise_e
        self.dark_offset_dn = dark_offset_dn
        self.mw_switch = mw_switch
        self._own = folder is None
        self._root = Path(tempfile.mkdtemp(prefix="basler_emu_")) if folder is None else Path(folder)
        self.folder = self._root / "served"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.frames_rendered = 0
        self._cache_key: tuple | None = None
        self._cache_rate = np.zeros(world.shape)
        self.mw_frequencies_hz: list[float] = []  # the World's MW frequency at each rendered frame
        # Files exist from the start: a frame grabbed before any render fails to load in pylon.
        self.write(np.zeros(world.shape, np.uint16), 16)

    def render(self, exposure_s: float, gain_db: float, bit_depth: int) -> np.ndarray:
        """One frame in the pixel format's units (``bit_depth`` bits), shot and read noise included."""
        with self.world.lock:
            rate = self._pl_rate()
        return self.digitise(rate * self.collection * exposure_s, gain_db, bit_depth)

    def digitise(self, mean_electrons: np.ndarray, gain_db: float, bit_depth: int) -> np.ndarray:
        """A frame from the expected electrons per pixel: shot and read noise, gain, offset, clipping."""
        world = self.world
        with world.lock:
            rng = world.rng
            electrons = rng.poisson(np.clip(mean_electrons, 0, None)).astype(float)
            electrons += rng.normal(0.0, self.read_noise_e, electrons.shape)
        top = 2**bit_depth - 1
        dn = electrons * (top / self.full_well_e) * 10 ** (gain_db / 20) + self.dark_offset_dn
        return np.clip(np.rint(dn), 0, top).astype(np.uint16)

    def _pl_rate(self) -> np.ndarray:
        """The World's PL rate, recomputed only when a state it depends on changed."""
        w = self.world
        key = (
            bool(self.mw_switch()),
            w.mw_output,
            w.mw_frequency_hz,
            w.mw_power_dbm,
            w.laser_on,
            w.coil_currents_a.tobytes(),
        )
        if self._cache_key != key:
            self._cache_key, self._cache_rate = key, w.pl_rate_hz(mw_on=key[0])
        return self._cache_rate

    def __call__(
        self,
        *,
        exposure_s: float,
        gain_db: float,
        shape: tuple[int, int],
        bit_depth: int,
        pixel_format: str = "",
    ) -> None:
        """Called by the driver before each trigger: write the frame the emulator will serve next."""
        self.check_shape(shape)
        frame = self.render(exposure_s, gain_db, bit_depth)
        self.write(frame, bit_depth)
        self.mw_frequencies_hz.append(float(self.world.mw_frequency_hz))
        self.frames_rendered += 1
        self.world.clock.advance(exposure_s)  # the exposure takes time; the emulator keeps none

    def check_shape(self, shape: tuple[int, int]) -> None:
        if tuple(shape) != tuple(self.world.shape):
            raise ValueError(
                f"camera ROI {tuple(shape)} differs from the simulated image {self.world.shape}; "
                "set the camera's shape to the World's (the station does)"
            )

    def write(self, frame: np.ndarray, bit_depth: int) -> None:
        """Write ``frame`` into every served file, each replaced whole (the emulator never sees half)."""
        png = Image.fromarray((frame.astype(np.uint16) << (16 - bit_depth)).astype(np.uint16))
        buffer = io.BytesIO()
        png.save(buffer, format="PNG", compress_level=0)  # zlib on shot noise costs ~0.1 s a frame
        data = buffer.getvalue()
        for k in range(N_FILES):
            tmp = self._root / f".frame_{k}.png"  # outside the served folder
            tmp.write_bytes(data)
            os.replace(tmp, self.folder / f"frame_{k}.png")

    def close(self) -> None:
        if self._own:
            shutil.rmtree(self._root, ignore_errors=True)
