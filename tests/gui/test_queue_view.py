"""The queue view lists scheduled scans in order with the morning log, and removes entries."""

from instrument.gui.queue_view import QueueView
from instrument.scheduler import ScanQueue, Window, acquire_command


def test_queued_scans_and_the_log_are_shown_in_order(qtbot, tmp_path):
    queue = ScanQueue(tmp_path / "q")
    queue.add(acquire_command(["--sim", "odmr", "--points", "11"]), name="first")
    queue.add(acquire_command(["--sim", "coil-scan"]), name="night", window=Window.parse("22:00-08:00"))
    view = QueueView(tmp_path / "q")
    qtbot.addWidget(view)
    assert view.table.rowCount() == 2
    assert [view.table.item(r, 1).text() for r in range(2)] == ["first", "night"]
    assert view.table.item(0, 4).text() == "acquire --sim odmr --points 11"
    assert view.table.item(1, 2).text() == "window 22:00-08:00"
    assert "QUEUED   scan-0001 'first'" in view.log.toPlainText()
    assert "2 scan(s) queued" in view.message.text()


def test_removing_an_entry_takes_it_out_and_logs_why(qtbot, tmp_path):
    queue = ScanQueue(tmp_path / "q")
    queue.add(acquire_command(["--sim", "odmr"]), name="only")
    view = QueueView(tmp_path / "q")
    qtbot.addWidget(view)
    view.table.selectRow(0)
    view.remove_button.click()
    assert view.table.rowCount() == 0
    assert queue.entries() == []
    assert "REMOVED  scan-0001: removed from the GUI" in view.log.toPlainText()
    assert not view.remove_button.isEnabled()


def test_an_unusable_queue_directory_is_reported_not_raised(qtbot, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    view = QueueView(blocker)
    qtbot.addWidget(view)
    assert view.table.rowCount() == 0
    assert "cannot use queue directory" in view.message.text()
