"""Deleted files in the user's folders become `file_deleted` events: real watchdog on real folders."""

import os
import shutil
import threading
import time
from datetime import UTC, datetime

import pytest

from safeguard_agent.monitors.files import DeletionCollector, FileDeletionMonitor, is_temporary

WAIT = 10.0
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Events:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.users: set[str] = set()
        self._changed = threading.Condition()

    def __call__(self, type_, data, occurred_at, user):
        assert type_ == "file_deleted" and set(data) == {"path"} and occurred_at.tzinfo is not None
        with self._changed:
            self.paths.append(data["path"])
            self.users.add(user)
            self._changed.notify_all()

    def wait_for(self, count: int) -> list[str]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.paths) >= count, timeout=WAIT)
            return list(self.paths)


@pytest.fixture
def folders(tmp_path):
    documents, downloads, outside = tmp_path / "Documents", tmp_path / "Downloads", tmp_path / "Trash"
    for folder in (documents, downloads, outside):
        folder.mkdir()
    return documents, downloads, outside


@pytest.fixture
def watch(folders):
    """Start watching Documents and Downloads; call it once the test's files exist (watchdog adds the watch
    for a new subfolder only after it sees the folder created, so files made at once could be missed)."""
    documents, downloads, _ = folders
    started = []

    def start():
        events = Events()
        monitor = FileDeletionMonitor([documents, downloads], events, user="SCHOOL\\jsmith", settle_seconds=0.2)
        monitor.start()
        started.append(monitor)
        return monitor, events

    yield start
    for monitor in started:
        monitor.stop()


def settle(monitor: FileDeletionMonitor) -> None:
    """Wait until everything watchdog saw has been reported (the collector is empty and quiet)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with monitor.collector._lock:
            empty = not monitor.collector._items
        if empty:
            time.sleep(0.5)  # watchdog delivers asynchronously: give a late event the chance to arrive
            with monitor.collector._lock:
                if not monitor.collector._items:
                    return
        time.sleep(0.05)


def test_a_deleted_document_is_reported_with_its_full_path_and_user(folders, watch):
    documents = folders[0]
    essay = documents / "Essay.docx"
    essay.write_text("draft")
    monitor, events = watch()

    essay.unlink()

    assert events.wait_for(1) == [str(essay)]
    assert events.users == {"SCHOOL\\jsmith"}


def test_deletions_in_subfolders_of_every_watched_folder_are_reported(folders, watch):
    documents, downloads, _ = folders
    (documents / "Year 9" / "Maths").mkdir(parents=True)
    deep = documents / "Year 9" / "Maths" / "worksheet.pdf"
    download = downloads / "game-installer.exe"
    deep.write_text("x")
    download.write_text("x")
    monitor, events = watch()

    deep.unlink()
    download.unlink()

    assert sorted(events.wait_for(2)) == sorted([str(deep), str(download)])


def test_a_deleted_folder_is_one_event_not_one_per_file(folders, watch):
    documents = folders[0]
    project = documents / "Project"
    (project / "images").mkdir(parents=True)
    for index in range(25):
        (project / "images" / f"photo{index}.jpg").write_text("x")
    (project / "notes.txt").write_text("x")
    monitor, events = watch()

    shutil.rmtree(project)
    events.wait_for(1)
    settle(monitor)

    assert events.paths == [str(project)]


def test_a_file_moved_out_to_the_trash_is_deleted(folders, watch):
    documents, _, trash = folders
    diary = documents / "diary.txt"
    diary.write_text("x")
    monitor, events = watch()

    os.rename(diary, trash / "diary.txt")

    assert events.wait_for(1) == [str(diary)]


def test_renaming_or_moving_within_the_watched_folders_is_not_a_deletion(folders, watch):
    documents, downloads, _ = folders
    (documents / "draft.txt").write_text("x")
    (downloads / "report.pdf").write_text("x")
    marker = documents / "marker.txt"
    marker.write_text("x")
    monitor, events = watch()

    os.rename(documents / "draft.txt", documents / "final.txt")
    os.rename(downloads / "report.pdf", documents / "report.pdf")
    marker.unlink()  # a real deletion after them, so the test knows when the renames have been processed
    events.wait_for(1)
    settle(monitor)

    assert events.paths == [str(marker)]


def test_temporary_files_programs_delete_themselves_are_ignored(folders, watch):
    documents = folders[0]
    noise = ["~$Essay.docx", ".~lock.Essay.odt#", "film.mp4.crdownload", "notes.txt.swp", "x.tmp"]
    for name in noise:
        (documents / name).write_text("x")
    real = documents / "Essay.docx"
    real.write_text("x")
    monitor, events = watch()

    for name in noise:
        (documents / name).unlink()
    real.unlink()
    events.wait_for(1)
    settle(monitor)

    assert events.paths == [str(real)]


def test_a_paused_monitor_reports_no_deletions(folders, watch):
    documents = folders[0]
    secret = documents / "secret.txt"
    secret.write_text("x")
    monitor, events = watch()
    monitor.paused = True

    secret.unlink()
    settle(monitor)

    assert events.paths == []


def test_stopping_reports_what_was_still_settling(folders):
    documents = folders[0]
    events = Events()
    monitor = FileDeletionMonitor([documents], events, user="u", settle_seconds=3600)  # never settles alone
    monitor.start()
    doomed = documents / "doomed.txt"
    doomed.write_text("x")
    doomed.unlink()
    deadline = time.monotonic() + WAIT
    while not monitor.collector._items and time.monotonic() < deadline:
        time.sleep(0.02)

    monitor.stop()

    assert events.paths == [str(doomed)]


def test_folders_that_do_not_exist_are_skipped(tmp_path):
    monitor = FileDeletionMonitor([tmp_path / "missing"], Events(), user="u")
    monitor.start()
    monitor.stop()


# --- the collector's rules (pure) ------------------------------------------------------------------------
def test_the_collector_waits_until_deleting_has_been_quiet():
    collector = DeletionCollector(settle_seconds=1.0)
    collector.add("/home/a/Documents/x.txt", is_directory=False, occurred_at=AT, now=10.0)

    assert collector.drain(10.5) == []
    assert collector.drain(11.0) == [("/home/a/Documents/x.txt", AT)]
    assert collector.drain(12.0) == []


def test_the_collector_does_not_hold_a_steady_stream_back_for_ever():
    collector = DeletionCollector(settle_seconds=1.0)
    for step in range(13):
        collector.add(f"/d/{step}.txt", is_directory=False, occurred_at=AT, now=10.0 + step * 0.9)
        if step == 11:
            assert collector.drain(10.0 + step * 0.9) == []  # never quiet, the oldest waited 9.9 s

    assert len(collector.drain(10.0 + 12 * 0.9)) == 13  # the oldest has now waited 10 x settle_seconds


def test_the_collector_caps_events_per_minute_and_counts_the_rest():
    collector = DeletionCollector(settle_seconds=0.0, max_per_minute=5)
    for index in range(8):
        collector.add(f"/d/{index}.txt", is_directory=False, occurred_at=AT, now=0.0)

    first = collector.drain(1.0)
    for index in range(3):
        collector.add(f"/e/{index}.txt", is_directory=False, occurred_at=AT, now=2.0)
    within_the_minute = collector.drain(3.0)
    collector.add("/f/later.txt", is_directory=False, occurred_at=AT, now=61.0)
    next_minute = collector.drain(62.0)

    assert [path for path, _ in first] == [f"/d/{index}.txt" for index in range(5)]
    assert within_the_minute == []
    assert collector.dropped == 6
    assert next_minute == [("/f/later.txt", AT)]


def test_a_file_arriving_in_another_watched_folder_was_moved_not_deleted():
    collector = DeletionCollector(settle_seconds=1.0)
    collector.add("/home/a/Downloads/report.pdf", is_directory=False, occurred_at=AT, now=5.0, moved_out=True)
    collector.add_arrival("/home/a/Documents/report.pdf", now=5.0)
    collector.add("/home/a/Downloads/other.pdf", is_directory=False, occurred_at=AT, now=5.0, moved_out=True)

    assert collector.drain(7.0) == [("/home/a/Downloads/other.pdf", AT)]


def test_a_file_deleted_outright_is_reported_even_if_one_of_that_name_arrives():
    collector = DeletionCollector(settle_seconds=1.0)
    collector.add("/home/a/Downloads/report.pdf", is_directory=False, occurred_at=AT, now=5.0)
    collector.add_arrival("/home/a/Documents/report.pdf", now=5.0)

    assert collector.drain(7.0) == [("/home/a/Downloads/report.pdf", AT)]


def test_the_collector_reports_a_path_deleted_twice_once():
    collector = DeletionCollector(settle_seconds=0.0)
    collector.add("/d/x.txt", is_directory=False, occurred_at=AT, now=0.0)
    collector.add("/d/x.txt", is_directory=False, occurred_at=AT, now=0.0)

    assert collector.drain(1.0) == [("/d/x.txt", AT)]


@pytest.mark.parametrize(
    ("name", "temporary"),
    [
        ("~$Essay.docx", True),
        (".~lock.Essay.odt#", True),
        ("video.mp4.part", True),
        ("Thumbs.db", True),
        ("Essay.docx", False),
        ("my~notes.txt", False),
    ],
)
def test_temporary_file_names(name, temporary):
    assert is_temporary(f"/home/a/Documents/{name}") is temporary
