"""``acquire --sim gui`` opens the application; missing display and bad options are clear errors."""

from PyQt6.QtWidgets import QApplication

from instrument.cli import main
from instrument.commands.common import EXIT_USAGE


def test_acquire_sim_gui_opens_the_main_window_and_returns_when_it_closes(qapp, qtbot, tmp_path,
                                                                         monkeypatch):
    def event_loop(app):
        # Stands in for QApplication.exec: a real exec/quit would leave the test's QApplication closing.
        qtbot.wait(100)
        windows = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
        titles.extend(w.windowTitle() for w in windows)
        for w in windows:
            w.close()
        return 0

    titles: list[str] = []
    monkeypatch.setattr(QApplication, "exec", event_loop)
    code = main(["--sim", "--image-shape", "16x16", "--out", str(tmp_path), "gui",
                 "--queue", str(tmp_path / "queue")])
    assert code == 0
    assert (tmp_path / "queue" / "output").is_dir()  # the queue view opened the scheduler's queue
    assert any(t.startswith("QDM acquire: seed-000 lock-in QDM") and "[SIMULATED]" in t for t in titles)


def test_no_display_is_a_usage_error_that_names_the_fix(monkeypatch, tmp_path, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    code = main(["--sim", "--out", str(tmp_path), "gui"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no display to open the GUI on" in err and "xvfb-run" in err


def test_image_shape_without_sim_is_refused_before_any_window(tmp_path, capsys):
    code = main(["--image-shape", "16x16", "--out", str(tmp_path), "gui"])
    assert code == EXIT_USAGE
    assert "--image-shape applies to the simulated camera only" in capsys.readouterr().err


def test_sigterm_closes_the_application_cleanly(tmp_path):
    """A supervisor's SIGTERM closes the window as the operator would (abort, make safe), not a kill."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-m", "instrument.cli", "--sim", "--image-shape", "16x16",
                             "--out", str(tmp_path), "gui", "--queue", str(tmp_path / "queue")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # printed once the window is up and the handlers are in place (EOF if the process died)
        lines = iter(proc.stdout.readline, "")
        assert any("acquire gui: open on station" in line for line in lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.communicate()
