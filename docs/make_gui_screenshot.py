"""Screenshot of the GUI's main window during a simulated CW-ODMR scan, for the README.

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


def main() -> int:
    app = QApplication(sys.argv[:1])
    with build_station(None, simulated=True, realtime=True, image_shape=(80, 80)) as station, \
            tempfile.TemporaryDirectory() as tmp:
        station.world.coil_unit_fields_t()
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
        for _ in range(30):
            app.processEvents()
            time.sleep(0.01)
        window.grab().save(str(OUT))
        window.close()
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
