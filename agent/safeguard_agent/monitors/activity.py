"""Activity logging: foreground windows, websites, applications started/stopped, logon.

One loop polls the probe (the foreground window every `poll_seconds`, about 1 s; the process list every
`process_seconds`, about 5 s) and reports through `emit_event(type, data, occurred_at, user)` with the
server's event shapes:

- **window** {title, application, duration_seconds}: one event per *stretch* — the time one window kept the
  focus with one title — emitted when the stretch ends (focus moves, the title changes, nothing has the
  focus, or the monitor stops), dated at the stretch's start. A new title in the same window (another tab,
  another document) starts a new stretch: the log is about what was on screen.
- **website** {url, title, browser}: when a stretch starts in a known browser (base.BROWSERS) and the probe
  knows the address. Browsers publish page titles, not addresses, so on both adapters an address is known
  only when the title shows one; otherwise the window event (with the page title) is the record.
- **application** {name, path, action}: "started" when a process first owns a visible top-level window,
  "stopped" when that process exits. Processes without a window (services, daemons, helpers, kernel
  threads) are noise for a safeguarding log and are never reported; neither are the applications already
  running when the monitor starts (they are tracked, so their exit is reported) nor the agent itself.
- **logon** {}: once, when the monitor starts (the agent starts with the user's session). No logoff is
  sent on stop: stopping the agent (an update, a restart) is not the user logging off.

Every poll also shows the foreground window to the detector, so titles and addresses are matched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from safeguard_agent.platform.base import ProcessInfo, WindowInfo, browser_name, page_title

if TYPE_CHECKING:
    from safeguard_agent.detection import CaptureDetector
    from safeguard_agent.platform.base import PlatformProbe

log = logging.getLogger(__name__)

EmitEvent = Callable[[str, dict, datetime, str], None]


@dataclass
class _Stretch:
    window_id: int
    title: str
    application: str
    started_at: datetime
    started_monotonic: float


class ActivityMonitor:
    def __init__(
        self,
        probe: PlatformProbe,
        emit_event: EmitEvent,
        *,
        detector: CaptureDetector | None = None,
        user: str | Callable[[], str] | None = None,
        poll_seconds: float = 1.0,
        process_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.probe = probe
        self.emit_event = emit_event
        self.detector = detector
        self._user = user
        self.poll_seconds = poll_seconds
        self.process_seconds = process_seconds
        self._clock = clock
        self._monotonic = monotonic or time.monotonic
        self._stretch: _Stretch | None = None
        self._apps: dict[int, ProcessInfo] = {}  # pids reported (or found at start) as applications
        self._processes_baseline = False
        self._last_process_poll: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.paused = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def user(self) -> str:
        if self._user is None:
            self._user = self.probe.user_name()
        return self._user() if callable(self._user) else self._user

    def start(self) -> None:
        """Emit the logon, take the first readings, and poll in a background thread."""
        self._emit("logon", {}, self._clock())
        self.poll_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="activity-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and emit the window stretch in progress (so no focus time is lost)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            self._end_stretch()

    def _run(self) -> None:
        failing = ""
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
                failing = ""
            except Exception as error:
                # Once per kind of failure, not once a second (a display that went away fails every poll).
                if type(error).__name__ != failing:
                    failing = type(error).__name__
                    log.exception("activity poll failed; will keep trying")

    # -- one poll --------------------------------------------------------------------------------------
    def poll_once(self) -> None:
        with self._lock:
            if self.paused:
                self._end_stretch()
                return
            window = self.probe.foreground_window()
            url = self._poll_window(window)
            now = self._monotonic()
            if self._last_process_poll is None or now - self._last_process_poll >= self.process_seconds:
                self._last_process_poll = now
                self._poll_processes()
        if self.detector is not None and window is not None:
            self.detector.window_seen(window, url)

    def _poll_window(self, window: WindowInfo | None) -> str | None:
        current = self._stretch
        if window is None:
            self._end_stretch()
            return None
        url = self.probe.browser_url(window) if browser_name(window.application) else None
        if (
            current is not None
            and current.window_id == window.window_id
            and current.title == window.title
            and current.application == window.application
        ):
            return url
        self._end_stretch()
        self._stretch = _Stretch(window.window_id, window.title, window.application, self._clock(), self._monotonic())
        browser = browser_name(window.application)
        if browser and url:
            self._emit(
                "website",
                {
                    "url": url[:2048],
                    "title": page_title(window.title, window.application)[:1024],
                    "browser": window.application[:255],
                },
                self._stretch.started_at,
            )
        return url

    def _end_stretch(self) -> None:
        stretch, self._stretch = self._stretch, None
        if stretch is None:
            return
        seconds = max(0, round(self._monotonic() - stretch.started_monotonic))
        self._emit(
            "window",
            {
                "title": stretch.title[:1024],
                "application": (stretch.application or "unknown")[:255],
                "duration_seconds": seconds,
            },
            stretch.started_at,
        )

    def _poll_processes(self) -> None:
        processes = self.probe.running_processes()
        with_windows = self.probe.window_pids()
        now = self._clock()
        own = os.getpid()
        # Exits first: a tracked application whose pid is gone (or reused by another program).
        for pid, info in list(self._apps.items()):
            current = processes.get(pid)
            if current is None or current.name != info.name:
                del self._apps[pid]
                self._emit("application", {"name": info.name[:255], "path": info.path[:1024], "action": "stopped"}, now)
        for pid in with_windows:
            info = processes.get(pid)
            if info is None or pid == own or pid in self._apps:
                continue
            self._apps[pid] = info
            if self._processes_baseline:
                self._emit("application", {"name": info.name[:255], "path": info.path[:1024], "action": "started"}, now)
        self._processes_baseline = True

    def _emit(self, type_: str, data: dict, occurred_at: datetime) -> None:
        try:
            self.emit_event(type_, data, occurred_at, self.user())
        except Exception:
            log.exception("emitting a %s event failed", type_)
