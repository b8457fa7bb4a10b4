"""Start the operator application on a built station."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def launch(station: Any, out_dir: Path, queue_dir: Path | None = None, argv: list[str] | None = None) -> int:
    """Open the main window on ``station`` and run the Qt event loop; returns the exit status."""
    from PyQt6.QtWidgets import QApplication

    from instrument.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("QDM acquire")
    window = MainWindow(station, out_dir, queue_dir)
    window.show()
    return int(app.exec())
