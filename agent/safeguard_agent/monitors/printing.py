"""Print logging: poll the spooler, report each job once as a `print` event {document, printer, pages}.

A job is reported when the spooler says it is finished (its page count is final then), when it leaves the
queue before we saw it finish, or after `max_wait_seconds` still pending (a printer out of paper must not
hold the record back forever) — whichever comes first, and only once. Jobs already finished when the
monitor starts are history from before this session and are not reported; pending ones are.

Job ids are remembered (bounded) for the life of the process. After an agent restart a job still in the
queue is reported again: a duplicate record is the lesser evil next to a missing one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from safeguard_agent.platform.base import PrintJob

if TYPE_CHECKING:
    from safeguard_agent.platform.base import PlatformProbe

log = logging.getLogger(__name__)

_REMEMBERED = 10_000


class PrintMonitor:
    def __init__(
        self,
        probe: PlatformProbe,
        emit_event: Callable[[str, dict, datetime, str], None],
        *,
        user: str | Callable[[], str] | None = None,
        poll_seconds: float = 2.0,
        max_wait_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.emit_event = emit_event
        self._user = user
        self.poll_seconds = poll_seconds
        self.max_wait_seconds = max_wait_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._reported: OrderedDict[str, None] = OrderedDict()
        self._pending: dict[str, tuple[PrintJob, float, datetime]] = {}  # id -> (latest, first seen, first seen at)
        self._first_poll = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.paused = False

    def user(self) -> str:
        if self._user is None:
            self._user = self.probe.user_name()
        return self._user() if callable(self._user) else self._user

    def start(self) -> None:
        self.poll_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="print-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:
                log.exception("print poll failed")

    def poll_once(self) -> None:
        jobs = self.probe.print_jobs()
        now = self._monotonic()
        first, self._first_poll = self._first_poll, False
        listed = set()
        for job in jobs:
            listed.add(job.id)
            if job.id in self._reported:
                continue
            if first and job.finished:
                self._remember(job.id)  # printed before this session started
                continue
            seen = self._pending.get(job.id)
            first_seen, first_seen_at = (seen[1], seen[2]) if seen else (now, self._clock())
            if job.finished or now - first_seen >= self.max_wait_seconds:
                self._pending.pop(job.id, None)
                self._report(job, first_seen_at)
            else:
                self._pending[job.id] = (job, first_seen, first_seen_at)
        # Jobs that left the queue unfinished in our eyes (Windows drops printed jobs): report what we knew.
        for job_id in [job_id for job_id in self._pending if job_id not in listed]:
            job, _, first_seen_at = self._pending.pop(job_id)
            self._report(job, first_seen_at)

    def _report(self, job: PrintJob, occurred_at: datetime) -> None:
        self._remember(job.id)
        if self.paused:
            return
        data: dict = {"document": job.document[:1024], "printer": (job.printer or "unknown")[:255]}
        if job.pages is not None:
            data["pages"] = min(job.pages, 100_000)
        try:
            self.emit_event("print", data, occurred_at, self.user())
        except Exception:
            log.exception("emitting a print event failed")

    def _remember(self, job_id: str) -> None:
        self._reported[job_id] = None
        while len(self._reported) > _REMEMBERED:
            self._reported.popitem(last=False)
