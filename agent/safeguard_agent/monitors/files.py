"""Deleted-file logging: watchdog on the user's folders -> `file_deleted` events {path}.

Watched: the probe's `user_folders()` (Documents, Desktop, Downloads, Pictures, Videos, Music), recursively.
A file moved out of them to somewhere unwatched — the Recycle Bin, the desktop Trash — counts as deleted:
that is what "delete" does in Explorer and in Linux file managers (watchdog reports the unmatched move
away as a deletion on Linux; Windows reports a removal).

Bounded, because one `rm -r` or emptied folder can delete thousands of files:
- Deletions are collected for `settle_seconds` (1 s) before being reported; a deleted folder is reported
  once and the files inside it that went with it are not reported one by one.
- At most `max_per_minute` events a minute (300); beyond that they are counted, logged as a number, and
  dropped.
- A file moved from one watched folder to another (Downloads -> Documents) is not a deletion, though each
  folder is its own watch: on Linux a file of the same name moved into a watched folder within the settle
  window cancels it. (On Windows such a move is reported by the OS as a removal plus an addition, which
  looks exactly like deleting one file and saving another: it is logged as a deletion.)
- Temporary files that programs create and delete on their own (Office's "~$x.docx" owner files,
  LibreOffice's ".~lock.x#", editor swap files, partial downloads) are not the user's deletions and are
  ignored.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_TEMP_PREFIXES = ("~$", ".~lock.", ".goutputstream-")
_TEMP_SUFFIXES = (".tmp", ".temp", ".swp", ".swo", ".swx", ".crdownload", ".part", ".partial", ".download", "~")


def is_temporary(path: str) -> bool:
    name = os.path.basename(path).lower()
    return name.startswith(_TEMP_PREFIXES) or name.endswith(_TEMP_SUFFIXES) or name in ("thumbs.db", ".ds_store")


class DeletionCollector:
    """The pure part: collect deletions, fold a folder's contents into the folder, rate-limit. Thread-safe."""

    def __init__(self, *, settle_seconds: float = 1.0, max_per_minute: int = 300) -> None:
        self.settle_seconds = settle_seconds
        self.max_per_minute = max_per_minute
        # path, is folder, when, monotonic, moved out (rather than deleted outright)
        self._items: list[tuple[str, bool, datetime, float, bool]] = []
        self._arrivals: dict[str, float] = {}  # file name -> when a file of that name appeared (monotonic)
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, path: str, *, is_directory: bool, occurred_at: datetime, now: float, moved_out: bool = False) -> None:
        """A deletion; `moved_out` when the file was moved away rather than deleted outright."""
        if not is_directory and is_temporary(path):
            return
        with self._lock:
            self._items.append((path, is_directory, occurred_at, now, moved_out))

    def add_arrival(self, path: str, *, now: float) -> None:
        """A file was moved INTO a watched folder. Each watched folder is its own watch, so a file moved from
        Downloads to Documents can be seen as moved out of one and into the other: the arrival cancels that
        "deletion" (matched by name within the settle window). A file deleted outright is never cancelled."""
        with self._lock:
            self._arrivals[os.path.basename(path.rstrip("/\\"))] = now

    def drain(self, now: float) -> list[tuple[str, datetime]]:
        """The deletions ready to report: those older than settle_seconds, folded and rate-limited."""
        with self._lock:
            if not self._items:
                return []
            # Wait until deleting has been quiet for settle_seconds, so a folder's contents and the folder
            # itself are folded together; but never hold a steady stream back for more than 10 x that.
            quiet = now - self._items[-1][3] >= self.settle_seconds
            overdue = now - self._items[0][3] >= 10 * self.settle_seconds
            if not (quiet or overdue):
                return []
            items, self._items = self._items, []
            arrivals = dict(self._arrivals)
            horizon = now - 20 * self.settle_seconds
            self._arrivals = {name: at for name, at in self._arrivals.items() if at >= horizon}
        folders = [path.rstrip("/\\") + os.sep for path, is_directory, *_ in items if is_directory]
        ready: list[tuple[str, datetime]] = []
        seen: set[str] = set()
        for path, _, occurred_at, deleted_at, moved_out in items:
            if path in seen or any(path.startswith(folder) for folder in folders):
                continue  # reported once, as its folder
            arrived = arrivals.get(os.path.basename(path.rstrip("/\\"))) if moved_out else None
            if arrived is not None and abs(arrived - deleted_at) <= 2 * self.settle_seconds + 1:
                continue  # moved to another watched folder, not deleted
            seen.add(path)
            ready.append((path, occurred_at))
        while self._sent and now - self._sent[0] >= 60:
            self._sent.popleft()
        room = max(0, self.max_per_minute - len(self._sent))
        if len(ready) > room:
            self.dropped += len(ready) - room
            log.warning(
                "deleted files: %d deletions over the limit of %d a minute not reported",
                len(ready) - room,
                self.max_per_minute,
            )
            ready = ready[:room]
        self._sent.extend([now] * len(ready))
        return ready


class FileDeletionMonitor:
    """Watches folders with watchdog and emits `file_deleted` events through `emit_event`."""

    def __init__(
        self,
        folders: list[Path],
        emit_event: Callable[[str, dict, datetime, str], None],
        *,
        user: str | Callable[[], str],
        settle_seconds: float = 1.0,
        max_per_minute: int = 300,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.folders = [Path(folder) for folder in folders]
        self.emit_event = emit_event
        self._user = user
        self._clock = clock
        self.collector = DeletionCollector(settle_seconds=settle_seconds, max_per_minute=max_per_minute)
        self._observer: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.paused = False

    def user(self) -> str:
        return self._user() if callable(self._user) else self._user

    def start(self) -> None:
        from watchdog.events import (
            DirDeletedEvent,
            FileDeletedEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer

        monitor = self

        class Handler(FileSystemEventHandler):
            def on_deleted(self, event: Any) -> None:
                if isinstance(event, FileDeletedEvent | DirDeletedEvent):
                    monitor.collector.add(
                        os.fsdecode(event.src_path),
                        is_directory=event.is_directory,
                        occurred_at=monitor._clock(),
                        now=time.monotonic(),
                    )

            def on_moved(self, event: Any) -> None:
                # Linux (full events) reports a move whose other end is outside this watch with one side
                # empty: ("", into) arrived from elsewhere, (away, "") left for elsewhere.
                source = os.fsdecode(event.src_path or "")
                destination = os.fsdecode(event.dest_path or "")
                now = time.monotonic()
                if destination and any(_inside(destination, folder) for folder in monitor.folders):
                    if not source:
                        monitor.collector.add_arrival(destination, now=now)
                    return  # a rename or a move inside the watched folders
                if source:  # moved to the Trash / Recycle Bin or anywhere else unwatched: gone from here
                    monitor.collector.add(
                        source, is_directory=event.is_directory, occurred_at=monitor._clock(), now=now, moved_out=True
                    )

        try:
            # inotify: report moves in and out of a watch as moves, not as creations and deletions
            self._observer = Observer(generate_full_events=True)
        except TypeError:  # the other platforms' observers have no such option
            self._observer = Observer()
        watched = 0
        for folder in self.folders:
            if folder.is_dir():
                try:
                    self._observer.schedule(Handler(), str(folder), recursive=True)
                    watched += 1
                except OSError as error:  # e.g. the inotify watch limit on a huge tree
                    log.warning("cannot watch %s for deletions: %s", folder, error)
        self._observer.start()
        log.info("watching %d folder(s) for deleted files", watched)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="file-deletions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.report(time.monotonic() + 3600)  # what is still collected goes out before we stop

    def _run(self) -> None:
        while not self._stop.wait(min(0.25, self.collector.settle_seconds / 2)):
            self.report(time.monotonic())

    def report(self, now: float) -> int:
        ready = self.collector.drain(now)
        if self.paused:
            return 0
        for path, occurred_at in ready:
            try:
                self.emit_event("file_deleted", {"path": path[:2048]}, occurred_at, self.user())
            except Exception:
                log.exception("emitting a file_deleted event failed")
        return len(ready)


def _inside(path: str, folder: Path) -> bool:
    try:
        Path(path).relative_to(folder)
        return True
    except ValueError:
        return False
