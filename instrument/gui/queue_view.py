"""Scheduled-scan queue view: the queued ``acquire`` commands in order and the scheduler's morning log.

The queue lives in SQLite beside its log (``instrument.scheduler.ScanQueue``); this view only reads
it (and removes entries on request), so it never talks to an instrument.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from instrument.scheduler import Entry, ScanQueue, ScheduleError

COLUMNS = ("entry", "name", "when", "next wake", "command")
REFRESH_MS = 10_000  # the scheduler polls every minute: a few seconds' staleness is fine


def entry_cells(entry: Entry) -> tuple[str, ...]:
    when = f"window {entry.window}" if entry.window else f"from {entry.start:%Y-%m-%d %H:%M}"
    wake = f"{entry.next_wake:%Y-%m-%d %H:%M}" if entry.next_wake else "--"
    return entry.id, entry.name, when, wake, entry.display


class QueueView(QWidget):
    """Queued scans and the scheduler log of the queue in ``queue_dir``."""

    def __init__(self, queue_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue_dir = Path(queue_dir)
        self.queue: ScanQueue | None = None
        self.entries: list[Entry] = []
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.refresh_button = QPushButton("Refresh")
        self.remove_button = QPushButton("Remove selected")
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(QLabel("scheduler log (newest last)"))
        layout.addWidget(self.log, 1)
        self.refresh_button.clicked.connect(self.refresh)
        self.remove_button.clicked.connect(self.remove_selected)
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.refresh()

    def refresh(self) -> None:
        """Re-read the queue and the log; an unusable queue directory is shown, not raised."""
        try:
            self.queue = self.queue or ScanQueue(self.queue_dir)
            self.entries = self.queue.entries()
            log = self.queue.read_log()
        except (ScheduleError, OSError) as exc:
            self.message.setText(f"queue {self.queue_dir}: {exc}")
            self.entries, log = [], ""
        else:
            self.message.setText(f"{len(self.entries)} scan(s) queued in {self.queue_dir}; add them with "
                                 "'acquire schedule add', run them with 'acquire schedule run'")
        self.table.setRowCount(len(self.entries))
        for row, entry in enumerate(self.entries):
            for col, text in enumerate(entry_cells(entry)):
                self.table.setItem(row, col, QTableWidgetItem(text))
        if log != self.log.toPlainText():
            self.log.setPlainText(log)
            self.log.verticalScrollBar().setValue(self.log.verticalScrollBar().maximum())
        self.remove_button.setEnabled(bool(self.entries))

    def remove_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.queue is None:
            return
        entry = self.entries[rows[0].row()]
        try:
            self.queue.remove(entry.id, "removed from the GUI")
        except ScheduleError as exc:
            self.message.setText(str(exc))
        self.refresh()
