"""Start the operator application on a built station."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any


def launch(station: Any, out_dir: Path, queue_dir: Path | None = None, argv: list[str] | None = None) -> int:
    """Open the main window on ``station`` and run the Qt event loop; returns the exit status.

    SIGTERM and Ctrl-C close the window the way the operator would: a running measurement is
    aborted and the hardware made safe before the application quits.
    """
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from instrument.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("QDM acquire")
    window = MainWindow(station, out_dir, queue_dir)

    def close_and_quit() -> None:
        window.close()  # aborts the run and waits until the engine has made the hardware safe
        app.quit()

    def close_on_signal(signum: int, frame: Any) -> None:
        # Deferred to the event loop: a signal before app.exec() runs would otherwise quit a loop
        # that has not started, and the application would then run on with its window closed.
        QTimer.singleShot(0, close_and_quit)

    previous = {s: signal.signal(s, close_on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    # Python runs signal handlers only between bytecodes; Qt's event loop is C++, so tick it.
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(200)
    window.show()
    print(f"acquire gui: open on station '{station.name}'; close the window, or press Ctrl-C, to quit",
          flush=True)
    try:
        return int(app.exec())
    finally:
        ticker.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
