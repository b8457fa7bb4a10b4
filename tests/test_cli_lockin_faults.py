"""Lock-in capture: a full disk names the writer's reason; Ctrl-C exits 130 and SIGTERM 143 like every
other command."""

import functools
import os
import signal

import pytest

from instrument.cli import main
from instrument.storage import frame_process
from instrument.storage.runs import load_run

ARGS = ["--sim", "--image-shape", "16x16"]


def lockin(out, seconds="1.2"):
    return main([*ARGS, "--out", str(out), "lockin", "--seconds", seconds])


def test_a_full_disk_during_the_capture_reports_the_writers_reason(tmp_path, monkeypatch, capsys):
    # The writer keeps a reserve free; a reserve larger than any disk makes the disk "nearly full" at once.
    monkeypatch.setattr(frame_process, "ProcessFrameWriter",
                        functools.partial(frame_process.ProcessFrameWriter, min_free_bytes=10**18))
    assert lockin(tmp_path) == 1
    err = capsys.readouterr().err
    assert "disk nearly full" in err and "capture stopped early" in err
    run = load_run(tmp_path, 1)
    assert run.metadata["status"] == "failed" and "disk nearly full" in run.metadata["end_reason"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_exits_130_and_sigterm_143(tmp_path, monkeypatch, capsys, signum, code):
    import sequences.temporal as temporal

    real = temporal.calibrate_slope

    def calibrate(*a, **k):
        os.kill(os.getpid(), signum)  # during the slope calibration, the MW on
        return real(*a, **k)

    monkeypatch.setattr(temporal, "calibrate_slope", calibrate)
    assert lockin(tmp_path) == code
    err = capsys.readouterr().err
    assert "made safe" in err and "Traceback" not in err
    assert load_run(tmp_path, 1).metadata["status"] == "aborted"


def test_ctrl_c_during_the_capture_itself_exits_130(tmp_path, monkeypatch, capsys):
    from sequences import temporal

    real, fired = temporal.SecondTally.wait, []

    def wait(self, *a, **k):  # the run waiting for more frames, once some came: the capture is going
        if not fired and self._counts:
            fired.append(1)
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *a, **k)

    monkeypatch.setattr(temporal.SecondTally, "wait", wait)
    assert lockin(tmp_path, "3") == 130
    run = load_run(tmp_path, 1)
    assert run.metadata["status"] == "aborted" and run.metadata["end_reason"].startswith("interrupted")
    # the capture ended early; the seconds it captured are stored, with their field movie
    assert run.metadata["capture"]["frames_written"] < 3 * 208
    assert run.metadata["field_per_second"]["second"] == run.scalars["second"].tolist()
