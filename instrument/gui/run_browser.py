"""Run browser: the runs stored in a folder, their metadata, and open / re-fit / export / reconstruct.

The folder is the GUI's output directory or a coil scan's folder (each scan keeps its runs and its
ledger together); the folder list offers every one this session has used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from instrument.storage.runs import DB_NAME, StorageError, StoredRun, load_run

RUN_DIR = re.compile(r"^run-(\d{4,})$")
COLUMNS = ("run", "measurement", "started", "status", "steps", "simulated")


def stored_run_ids(out_dir: Path) -> list[int]:
    """Run ids that have a run directory and a runs database in ``out_dir``, newest first."""
    out_dir = Path(out_dir)
    if not (out_dir / DB_NAME).exists():
        return []
    ids = [int(m.group(1)) for p in out_dir.iterdir() if p.is_dir() and (m := RUN_DIR.match(p.name))]
    return sorted(ids, reverse=True)


def summary_row(run: StoredRun) -> tuple[str, ...]:
    md = run.metadata
    sequence = md.get("sequence") or {}
    steps = md.get("steps_done", "?")
    return (str(run.run_id), str(sequence.get("name", "?")), str(md.get("started_at", "?")),
            str(md.get("status", "?")), str(steps), "yes" if md.get("simulated") else "no")


def _describe(value: Any) -> str:
    """A metadata value in one line: long arrays as their length and range."""
    if isinstance(value, list) and len(value) > 6:
        arr = np.asarray(value, dtype=object)
        try:
            num = arr.astype(float)
            return f"[{len(value)} values, {np.nanmin(num):.6g} .. {np.nanmax(num):.6g}]"
        except (TypeError, ValueError):
            return f"[{len(value)} values]"
    return str(value)


def add_metadata_items(parent: QTreeWidgetItem | QTreeWidget, data: dict[str, Any], depth: int = 0) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and depth < 4:
            item = QTreeWidgetItem([str(key), ""])
            add_metadata_items(item, value, depth + 1)
        else:
            item = QTreeWidgetItem([str(key), _describe(value)])
        if isinstance(parent, QTreeWidget):
            parent.addTopLevelItem(item)
        else:
            parent.addChild(item)


class RunBrowser(QWidget):
    """Lists stored runs; the main window acts on the signals.

    Signals:
        open_requested(StoredRun), refit_requested(StoredRun), export_requested(StoredRun),
        reconstruct_requested(StoredRun)
    """

    open_requested = pyqtSignal(object)
    refit_requested = pyqtSignal(object)
    export_requested = pyqtSignal(object)
    reconstruct_requested = pyqtSignal(object)

    def __init__(self, out_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.out_dir = Path(out_dir)
        self.runs: dict[int, StoredRun] = {}
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.doubleClicked.connect(lambda _: self._emit(self.open_requested))
        self.metadata = QTreeWidget()
        self.metadata.setHeaderLabels(["metadata", "value"])
        self.metadata.setColumnWidth(0, 220)
        self.message = QLabel(f"runs in {self.out_dir}")
        self.message.setWordWrap(True)
        self.folder = QComboBox()
        self.folder.addItem(str(self.out_dir))
        self.folder.currentTextChanged.connect(self._folder_chosen)
        self.folder_button = QPushButton("Folder...")
        self.folder_button.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(QLabel("folder"))
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.folder_button)

        self.refresh_button = QPushButton("Refresh")
        self.open_button = QPushButton("Open")
        self.refit_button = QPushButton("Re-fit")
        self.export_button = QPushButton("Export figure...")
        self.reconstruct_button = QPushButton("Reconstruct")
        # Fit options of "Re-fit" (the same choices as 'acquire analyse').
        self.model = QComboBox()
        self.model.addItems(["lorentzian", "gaussian"])
        self.hyperfine = QComboBox()
        self.hyperfine.addItems(["15N", "14N", "none"])
        options = QHBoxLayout()
        options.addWidget(QLabel("re-fit line shape"))
        options.addWidget(self.model)
        options.addWidget(QLabel("hyperfine"))
        options.addWidget(self.hyperfine)
        options.addStretch(1)
        buttons = QHBoxLayout()
        for b in (self.refresh_button, self.open_button, self.refit_button, self.export_button,
                  self.reconstruct_button):
            buttons.addWidget(b)
        self.refresh_button.clicked.connect(self.refresh)
        self.open_button.clicked.connect(lambda: self._emit(self.open_requested))
        self.refit_button.clicked.connect(lambda: self._emit(self.refit_requested))
        self.export_button.clicked.connect(lambda: self._emit(self.export_requested))
        self.reconstruct_button.clicked.connect(lambda: self._emit(self.reconstruct_requested))

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.metadata)
        layout = QVBoxLayout(self)
        layout.addLayout(folder_row)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)
        layout.addLayout(options)
        layout.addLayout(buttons)
        self.refresh()

    def fit_options(self) -> dict[str, Any]:
        """Keyword arguments of ``analyse_cw_run`` chosen in the browser."""
        hyperfine = self.hyperfine.currentText()
        return {"model": self.model.currentText(), "isotope": None if hyperfine == "none" else hyperfine}

    def show_folder(self, folder: Path) -> None:
        """List the runs of ``folder`` (added to the folder list); re-reads it if already shown."""
        text = str(Path(folder))
        if self.folder.findText(text) < 0:
            self.folder.addItem(text)
        if self.folder.currentText() == text:
            self.refresh()
        else:
            self.folder.setCurrentText(text)  # refreshes through _folder_chosen

    def _folder_chosen(self, text: str) -> None:
        if text:
            self.out_dir = Path(text)
            self.refresh()

    def _choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Runs folder", str(self.out_dir))
        if chosen:
            self.show_folder(Path(chosen))

    def refresh(self) -> None:
        """Re-read the run list; runs that cannot be read are listed with the reason."""
        self.runs.clear()
        ids = stored_run_ids(self.out_dir)
        self.table.setRowCount(len(ids))
        problems = []
        for row, run_id in enumerate(ids):
            try:
                run = load_run(self.out_dir, run_id)
            except (StorageError, OSError, KeyError) as exc:
                problems.append(f"run {run_id}: {exc}")
                cells: tuple[str, ...] = (str(run_id), "unreadable", "", str(exc), "", "")
            else:
                self.runs[run_id] = run
                cells = summary_row(run)
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        self.message.setText(f"{len(ids)} run(s) in {self.out_dir}" + ("; " + "; ".join(problems)
                                                                        if problems else ""))
        self._selection_changed()

    def select_run(self, run_id: int) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).text() == str(run_id):
                self.table.selectRow(row)
                return

    def selected_run(self) -> StoredRun | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.runs.get(int(self.table.item(rows[0].row(), 0).text()))

    def _selection_changed(self) -> None:
        run = self.selected_run()
        for b in (self.open_button, self.refit_button, self.export_button, self.reconstruct_button):
            b.setEnabled(run is not None)
        self.metadata.clear()
        if run is not None:
            add_metadata_items(self.metadata, run.metadata)

    def _emit(self, signal: Any) -> None:
        run = self.selected_run()
        if run is not None:
            signal.emit(run)
