"""Screenshots of the GUI's main window for the README: during a simulated CW-ODMR scan (gui.png) and
during a simulated 208 frame/s lock-in capture (gui_lockin.png).

Run under a virtual X server: ``xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_gui_screenshot.py``
(Debian packages: xvfb, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1 for Qt's xcb plugin).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PyQt6.QtWidgets import QApplication  # noqa: E402

from instrument.gui.main_window import MainWindow  # noqa: E402
from instrument.station import build_station  # noqa: E402

OUT = Path(__file__).resolve().parent / "images" / "gui.png"
OUT_LOCKIN = OUT.with_name("gui_lockin.png")


def settle(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def lockin_screenshot(app: QApplication, window: MainWindow) -> None:
    """The lock-in movie (field) mid-capture, while coils fire."""
    controls = window.lockin_panel.parentWidget().parentWidget()
    controls.setCurrentWidget(window.lockin_panel)
    window.lockin_panel.seconds.setValue(6.0)
    window.lockin_panel.start_button.click()
    while window.capture.tap.parts is None or window.capture.tap.parts.capture.frames_acquired < 4 * 208:
        app.processEvents()
        time.sleep(0.01)
    window.movie_view.image_panel.set_pixel(40, 40)
    settle(app, 0.3)
    window.grab().save(str(OUT_LOCKIN))
    while window.capture.last_outcome is None:
        settle(app, 0.05)


def main() -> int:
    app = QApplication(sys.argv[:1])
    with build_station(None, simulated=True, realtime=True, image_shape=(80, 80)) as station, \
            tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(station, Path(tmp))
        window.resize(1400, 820)
        window.show()
        panel = window.cw_panel
        panel.points.setValue(81)
        panel.frames.setValue(8)
        panel.coils.setText("L1C1,L2C2")
        panel.start_button.click()
        # Mid-way through the I-on sweep: both spectra visible, the scan still running.
        while window.live_sink.counter < 81 + 45:
            app.processEvents()
            time.sleep(0.01)
        window.image_panel.set_pixel(40, 40)
        settle(app, 0.3)
        window.grab().save(str(OUT))
        # the CW run has ended, its field map is fitted and shown, and the window takes a new job
        while window.engine_run.last_outcome is None or window.running:
            settle(app, 0.05)
        lockin_screenshot(app, window)
        window.close()
    print(f"wrote {OUT} and {OUT_LOCKIN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
