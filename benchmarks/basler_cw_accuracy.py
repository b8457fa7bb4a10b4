"""How well CW ODMR through the simulated Basler path recovers the coils' B_NV map, by frames per point.

The bundled Basler station (emulator, frames from the simulated PulseBlaster's camera line) on the
bundled sample seen through a 150 um field at full coil strength (as the GUI tests see it), one
coil driven. For each number of MW-on/MW-off frame pairs per point: the fitted B_NV map per pixel
and 2x2-binned, scored against the World's true (blurred) B_NV, next to the trivial baseline of a
zero map (the RMSE a map must beat to say anything). Repeated over seeds; printed as median and
spread. The truth is the World's field; the measurement goes through the camera noise model, PNG
files, pylon and the per-pixel fitter, none of which the truth uses.

Run: ``python benchmarks/basler_cw_accuracy.py [--pairs 8,32] [--seeds 4,5] [--shape 16x16]``
(about a minute per 32 pairs at 16x16 on a free core).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PYLON_CAMEMU", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from instrument.analysis.cw_run import analyse_cw_run  # noqa: E402
from instrument.services.cw import CwOdmrRequest, run_cw_odmr  # noqa: E402
from instrument.station import build_station  # noqa: E402
from instrument.storage.runs import load_run  # noqa: E402


def _station_file(folder: Path) -> Path:
    sample = yaml.safe_load(resources.files("sim.samples").joinpath("microcoil_000.yaml").read_text())
    sample["field_of_view"]["width_m"] = 150e-6
    sample["coils"]["field_scale"] = 1.0
    (folder / "sample.yaml").write_text(yaml.safe_dump(sample))
    station = yaml.safe_load(resources.files("instrument.stations").joinpath("basler.yaml").read_text())
    station["sim"]["sample"] = str(folder / "sample.yaml")
    (folder / "station.yaml").write_text(yaml.safe_dump(station, sort_keys=False))
    return folder / "station.yaml"


def _scores(b_nv: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, float]:
    """(fitted fraction, Pearson r, RMSE, zero-map RMSE) over the fitted pixels; fields in uT."""
    ok = np.isfinite(b_nv)
    r = float(np.corrcoef(b_nv[ok], truth[ok])[0, 1]) if ok.sum() > 2 else float("nan")
    rmse = float(np.sqrt(np.mean((b_nv[ok] - truth[ok]) ** 2))) * 1e6
    return float(ok.mean()), r, rmse, float(np.sqrt(np.mean(truth[ok] ** 2))) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="8,32", help="frame pairs per point, comma-separated")
    parser.add_argument("--seeds", default="4,5")
    parser.add_argument("--shape", default="16x16")
    parser.add_argument("--points", type=int, default=15)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="basler_cw_"))
    path = _station_file(folder)
    rows: dict[tuple[int, int], list[tuple[float, float, float, float]]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        with build_station(path, simulated=True, image_shape=shape, seed=seed) as st:
            currents = np.zeros(st["coils"].n_channels)
            currents[0] = st.sample.drive_current_a
            truth = st.world.true_b_nv_t(currents_a=currents)
            binned_truth = truth.reshape(shape[0] // 2, 2, shape[1] // 2, 2).mean(axis=(1, 3))
            freqs = st.world.resonance_estimate_hz() + np.linspace(-7e6, 7e6, args.points)
            for pairs in (int(p) for p in args.pairs.split(",")):
                t0 = time.perf_counter()
                request = CwOdmrRequest(freqs, 5.0, frames_per_point=pairs)
                res = run_cw_odmr(st, request, folder / "runs", "bench")
                binned = analyse_cw_run(load_run(folder / "runs", res.run.run_id), bin_factor=2)
                rows.setdefault((pairs, 1), []).append(_scores(res.field_map.b_nv_t, truth))
                rows.setdefault((pairs, 2), []).append(_scores(binned.b_nv_t, binned_truth))
                print(f"  seed {seed}, {pairs} pairs: {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"B_NV of one coil, {shape[0]}x{shape[1]} px, {args.points} points, 5 dBm; median (spread) over "
          f"{len(args.seeds.split(','))} seeds")
    print("pairs  bin  fitted   Pearson r       RMSE uT        zero-map RMSE uT")
    for (pairs, bin_factor), scores in sorted(rows.items()):
        cols = list(zip(*scores, strict=True))

        def cell(values: tuple[float, ...]) -> str:
            spread = statistics.pstdev(values) if len(values) > 1 else 0.0
            return f"{statistics.median(values):6.2f} ({spread:.2f})"

        print(f"{pairs:5d}  {bin_factor:3d}  {statistics.median(cols[0]):5.2f}  {cell(cols[1])}  "
              f"{cell(cols[2])}  {cell(cols[3])}")


if __name__ == "__main__":
    main()
