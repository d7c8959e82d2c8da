"""Activity logging: window stretches, websites, applications and logon, from probe readings to events.

Most tests drive the monitor's `poll_once` with a scripted probe and clocks; the last ones run it on a real
X display with real xterms."""

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safeguard_agent.detection import CaptureDetector
from safeguard_agent.keywords.engine import KeywordEngine
from safeguard_agent.keywords.types import KeywordSpec
from safeguard_agent.monitors.activity import ActivityMonitor
from safeguard_agent.platform.base import PrintJob, ProcessInfo, WindowInfo, url_from_title
from safeguard_agent.platform.linux_x11 import LinuxX11Probe
from safeguard_agent.testing import XvfbDisplay, focus, open_xterm

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
USER = "SCHOOL\\jsmith"
# The server's event data keys (safeguard/logs/api.py): an agent event with another key is refused.
SERVER_KEYS = {
    "window": {"title", "application", "duration_seconds"},
    "website": {"url", "title", "browser"},
    "application": {"name", "path", "action"},
    "logon": {"session"},
}

WORD = WindowInfo("Essay.docx - Word", "winword.exe", 100, 1)
CHROME = WindowInfo("BBC Bitesize - Google Chrome", "chrome.exe", 200, 2)


class ScriptedProbe:
    """A probe whose readings the test sets."""

    def __init__(self) -> None:
        self.window: WindowInfo | None = None
        self.processes: dict[int, ProcessInfo] = {}
        self.with_windows: set[int] = set()
        self.urls: dict[int, str] = {}

    def foreground_window(self):
        return self.window

    def focused_field_is_password(self):
        return None

    def running_processes(self):
        return dict(self.processes)

    def window_pids(self):
        return set(self.with_windows)

    def print_jobs(self) -> list[PrintJob]:
        return []

    def user_name(self):
        return USER

    def user_folders(self) -> list[Path]:
        return []

    def browser_url(self, window):
        return self.urls.get(window.window_id) or url_from_title(window.title, window.application)

    def close(self):
        pass


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def wall(self) -> datetime:
        return START + timedelta(seconds=self.seconds)

    def monotonic(self) -> float:
        return self.seconds


class Events(list):
    def __call__(self, type_, data, occurred_at, user):
        assert set(data) <= SERVER_KEYS.get(type_, set(data)), f"{type_} data the server would refuse: {data}"
        assert occurred_at.tzinfo is not None
        self.append((type_, data, occurred_at, user))

    def of(self, type_):
        return [(data, occurred_at) for t, data, occurred_at, _ in self if t == type_]


@pytest.fixture
def probe():
    return ScriptedProbe()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def events():
    return Events()


@pytest.fixture
def monitor(probe, clock, events):
    return ActivityMonitor(
        probe, events, poll_seconds=1, process_seconds=5, clock=clock.wall, monotonic=clock.monotonic
    )


def poll_for(monitor, clock, seconds: int) -> None:
    """Poll once a second for `seconds` seconds of the scripted clock."""
    for _ in range(seconds):
        monitor.poll_once()
        clock.seconds += 1


# --- window stretches -------------------------------------------------------------------------------
def test_a_window_that_keeps_the_focus_is_one_event_when_the_focus_leaves(monitor, probe, clock, events):
    probe.window = WORD
    poll_for(monitor, clock, 90)
    assert events.of("window") == []  # still in the stretch

    probe.window = CHROME
    monitor.poll_once()

    assert events.of("window") == [
        ({"title": "Essay.docx - Word", "application": "winword.exe", "duration_seconds": 90}, START)
    ]


def test_each_stretch_is_dated_at_its_start(monitor, probe, clock, events):
    probe.window = WORD
    poll_for(monitor, clock, 10)
    probe.window = CHROME
    poll_for(monitor, clock, 20)
    probe.window = WORD
    poll_for(monitor, clock, 5)
    probe.window = None
    monitor.poll_once()

    assert [(d["application"], d["duration_seconds"], at) for d, at in events.of("window")] == [
        ("winword.exe", 10, START),
        ("chrome.exe", 20, START + timedelta(seconds=10)),
        ("winword.exe", 5, START + timedelta(seconds=30)),
    ]


def test_a_new_title_in_the_same_window_starts_a_new_stretch(monitor, probe, clock, events):
    probe.window = WORD
    poll_for(monitor, clock, 3)
    probe.window = WindowInfo("Essay v2.docx - Word", "winword.exe", 100, 1)
    poll_for(monitor, clock, 3)
    monitor.stop()

    assert [d["title"] for d, _ in events.of("window")] == ["Essay.docx - Word", "Essay v2.docx - Word"]


def test_stopping_emits_the_stretch_in_progress(monitor, probe, clock, events):
    probe.window = WORD
    poll_for(monitor, clock, 42)

    monitor.stop()

    assert events.of("window") == [
        ({"title": "Essay.docx - Word", "application": "winword.exe", "duration_seconds": 42}, START)
    ]


def test_a_window_of_an_unknown_program_is_still_logged(monitor, probe, clock, events):
    probe.window = WindowInfo("Remote window", "", None, 7)
    poll_for(monitor, clock, 2)
    monitor.stop()

    assert events.of("window")[0][0]["application"] == "unknown"


def test_a_paused_monitor_logs_no_windows(monitor, probe, clock, events):
    monitor.paused = True
    probe.window = WORD
    poll_for(monitor, clock, 5)
    monitor.stop()

    assert events.of("window") == []


# --- websites ---------------------------------------------------------------------------------------
def test_a_browser_page_with_a_known_address_is_a_website_event(monitor, probe, clock, events):
    probe.urls[CHROME.window_id] = "https://www.bbc.co.uk/bitesize"
    probe.window = CHROME
    poll_for(monitor, clock, 30)

    assert events.of("website") == [
        ({"url": "https://www.bbc.co.uk/bitesize", "title": "BBC Bitesize", "browser": "chrome.exe"}, START)
    ]


def test_a_browser_title_that_shows_the_address_is_a_website_event(monitor, probe, clock, events):
    probe.window = WindowInfo("example.org/forum - Mozilla Firefox", "firefox", 300, 3)
    monitor.poll_once()

    assert events.of("website") == [
        ({"url": "example.org/forum", "title": "example.org/forum", "browser": "firefox"}, START)
    ]


def test_a_browser_page_without_an_address_is_only_a_window_event(monitor, probe, clock, events):
    probe.window = CHROME  # the title is the page title: no address to report
    poll_for(monitor, clock, 3)
    monitor.stop()

    assert events.of("website") == []
    assert events.of("window")[0][0]["title"] == "BBC Bitesize - Google Chrome"


def test_other_programs_make_no_website_events(monitor, probe, clock, events):
    probe.urls[WORD.window_id] = "https://sharepoint.example/essay.docx"
    probe.window = WORD
    poll_for(monitor, clock, 3)

    assert events.of("website") == []


# --- applications -------------------------------------------------------------------------------------
def test_a_program_that_opens_a_window_is_reported_started_and_stopped(monitor, probe, clock, events):
    probe.processes = {1: ProcessInfo("systemd", "/usr/lib/systemd/systemd")}
    monitor.poll_once()  # the first reading is the baseline
    probe.processes[4242] = ProcessInfo("gimp", "/usr/bin/gimp")
    probe.with_windows = {4242}
    clock.seconds = 5
    monitor.poll_once()
    del probe.processes[4242]
    probe.with_windows = set()
    clock.seconds = 10
    monitor.poll_once()

    assert events.of("application") == [
        ({"name": "gimp", "path": "/usr/bin/gimp", "action": "started"}, START + timedelta(seconds=5)),
        ({"name": "gimp", "path": "/usr/bin/gimp", "action": "stopped"}, START + timedelta(seconds=10)),
    ]


def test_processes_without_a_window_are_not_applications(monitor, probe, clock, events):
    monitor.poll_once()
    probe.processes = {77: ProcessInfo("cron", "/usr/sbin/cron"), 78: ProcessInfo("svchost.exe", "")}
    clock.seconds = 5
    monitor.poll_once()
    probe.processes = {}
    clock.seconds = 10
    monitor.poll_once()

    assert events.of("application") == []


def test_programs_running_at_start_are_not_reported_started_but_their_exit_is(monitor, probe, clock, events):
    probe.processes = {500: ProcessInfo("firefox-esr", "/usr/lib/firefox-esr/firefox-esr")}
    probe.with_windows = {500}
    monitor.poll_once()
    probe.processes, probe.with_windows = {}, set()
    clock.seconds = 5
    monitor.poll_once()

    assert [d["action"] for d, _ in events.of("application")] == ["stopped"]


def test_a_program_is_started_once_however_long_it_runs(monitor, probe, clock, events):
    monitor.poll_once()
    probe.processes = {600: ProcessInfo("notepad.exe", r"C:\Windows\notepad.exe")}
    probe.with_windows = {600}
    poll_for(monitor, clock, 60)

    assert [d["action"] for d, _ in events.of("application")] == ["started"]


def test_a_reused_process_id_is_a_stop_and_a_start(monitor, probe, clock, events):
    monitor.poll_once()
    probe.processes = {700: ProcessInfo("notepad.exe", "")}
    probe.with_windows = {700}
    clock.seconds = 5
    monitor.poll_once()
    probe.processes = {700: ProcessInfo("calc.exe", "")}
    clock.seconds = 10
    monitor.poll_once()

    assert [(d["name"], d["action"]) for d, _ in events.of("application")] == [
        ("notepad.exe", "started"),
        ("notepad.exe", "stopped"),
        ("calc.exe", "started"),
    ]


def test_the_agent_itself_is_not_an_application(monitor, probe, clock, events):
    monitor.poll_once()
    probe.processes = {os.getpid(): ProcessInfo("safeguard-agent", "")}
    probe.with_windows = {os.getpid()}  # its tray icon and dialogs are windows
    clock.seconds = 5
    monitor.poll_once()

    assert events.of("application") == []


def test_the_process_list_is_read_less_often_than_the_window(probe, clock, events):
    reads = []
    probe.running_processes = lambda: reads.append(clock.seconds) or {}
    monitor = ActivityMonitor(probe, events, process_seconds=5, clock=clock.wall, monotonic=clock.monotonic)

    poll_for(monitor, clock, 12)

    assert reads == [0, 5, 10]


# --- logon and detection ------------------------------------------------------------------------------
def test_starting_the_monitor_logs_the_logon_with_the_users_name(probe, events):
    monitor = ActivityMonitor(probe, events, poll_seconds=60)
    monitor.start()
    monitor.stop()

    (logon,) = [event for event in events if event[0] == "logon"]
    assert logon[1] == {} and logon[3] == USER


def test_every_poll_shows_the_window_to_the_detector(probe, clock, events):
    engine = KeywordEngine.build([KeywordSpec(text="bomb", policy="Weapons")])
    matches = []
    detector = CaptureDetector(lambda: engine, matches.append, user=USER)
    monitor = ActivityMonitor(probe, events, detector=detector, clock=clock.wall, monotonic=clock.monotonic)
    probe.window = WindowInfo("how to make a bomb - Google Chrome", "chrome.exe", 1, 9)

    poll_for(monitor, clock, 5)

    assert [(m.keyword, m.source, m.window_title) for m in matches] == [
        ("bomb", "title", "how to make a bomb - Google Chrome")
    ]


def test_a_failing_event_sink_does_not_stop_logging(probe, clock):
    calls = []

    def emit(type_, data, occurred_at, user):
        calls.append(type_)
        raise OSError("disk full")

    monitor = ActivityMonitor(probe, emit, clock=clock.wall, monotonic=clock.monotonic)
    probe.window = WORD
    poll_for(monitor, clock, 2)
    probe.window = CHROME
    poll_for(monitor, clock, 2)
    monitor.stop()

    assert calls == ["window", "window"]


# --- on a real X display --------------------------------------------------------------------------------
@pytest.mark.integration
def test_focus_changes_between_real_windows_become_window_events():
    with XvfbDisplay():
        first, second = open_xterm("Maths worksheet"), open_xterm("Games chat")
        probe = LinuxX11Probe()
        received = Events()
        changed = threading.Event()

        def emit(type_, data, occurred_at, user):
            received(type_, data, occurred_at, user)
            changed.set()

        monitor = ActivityMonitor(probe, emit, poll_seconds=0.1)
        try:
            focus(first)
            monitor.start()
            for window_id in (second, first):
                changed.clear()
                focus(window_id)
                assert changed.wait(10), "the focus change was not noticed"
        finally:
            monitor.stop()
            probe.close()

    windows = [data for data, _ in received.of("window")]
    assert [(w["title"], w["application"]) for w in windows] == [
        ("Maths worksheet", "xterm"),
        ("Games chat", "xterm"),
        ("Maths worksheet", "xterm"),
    ]
    assert [t for t, *_ in received][0] == "logon"


@pytest.mark.integration
def test_a_real_program_opening_a_window_is_reported_started_then_stopped():
    with XvfbDisplay() as display:
        probe = LinuxX11Probe()
        received = Events()
        monitor = ActivityMonitor(probe, received, process_seconds=0)
        try:
            monitor.poll_once()  # baseline
            window_id = display.open_xterm("Started later")
            pid = int(display.xdotool("getwindowpid", str(window_id)))
            monitor.poll_once()
            os.kill(pid, 15)
            deadline = time.monotonic() + 10
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            monitor.poll_once()
        finally:
            probe.close()

    assert [(d["name"], d["action"]) for d, _ in received.of("application")] == [
        ("xterm", "started"),
        ("xterm", "stopped"),
    ]
