"""The real keyboard path: xdotool types into real xterms on Xvfb, pynput hears it, the detector matches it."""

import threading
import time

import pytest

from safeguard_agent.detection import CaptureDetector, DetectedMatch
from safeguard_agent.keywords.engine import KeywordEngine
from safeguard_agent.keywords.types import KeywordSpec
from safeguard_agent.monitors.keyboard import KeyboardMonitor
from safeguard_agent.platform.linux_x11 import LinuxX11Probe
from safeguard_agent.testing import XvfbDisplay, focus, open_xterm, press_keys, type_text

pytestmark = pytest.mark.integration

WAIT = 10.0  # an upper bound for the X server and the listener thread; the tests never measure time


@pytest.fixture(scope="module")
def display():
    with XvfbDisplay() as xvfb:
        yield xvfb


@pytest.fixture(scope="module")
def windows(display):
    return {"chat": open_xterm("Chat - Discord"), "notes": open_xterm("Notes")}


class Collected:
    def __init__(self) -> None:
        self.matches: list[DetectedMatch] = []
        self._changed = threading.Condition()

    def __call__(self, match: DetectedMatch) -> None:
        with self._changed:
            self.matches.append(match)
            self._changed.notify_all()

    def wait_for(self, count: int) -> list[DetectedMatch]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.matches) >= count, timeout=WAIT)
        return list(self.matches)


@pytest.fixture
def running(display, windows):
    """A started KeyboardMonitor on the X11 probe: (monitor, detector, collected)."""
    engine = KeywordEngine.build(
        [
            KeywordSpec(text="kill myself", policy="Self-harm", severity="severe", match_kind="phrase"),
            KeywordSpec(text="bomb", policy="Weapons", severity="high"),
        ]
    )
    probe = LinuxX11Probe()
    collected = Collected()
    detector = CaptureDetector(lambda: engine, collected, user=probe.user_name(), url_provider=probe.browser_url)
    monitor = KeyboardMonitor(probe, detector, idle_seconds=0.5)
    monitor.start()
    yield monitor, detector, collected
    monitor.stop()
    probe.close()


def wait_for_keys(monitor: KeyboardMonitor, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while monitor.keys_seen < count and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_phrase_typed_into_a_window_is_detected_once_with_that_window(running, windows):
    monitor, detector, collected = running
    focus(windows["chat"])

    type_text("honestly i want to kill myself and i mean kill myself ")
    wait_for_keys(monitor, 54)

    (match,) = collected.wait_for(1)
    assert (match.keyword, match.policy_name, match.severity) == ("kill myself", "Self-harm", "severe")
    assert (match.window_title, match.application, match.source) == ("Chat - Discord", "xterm", "typed")
    assert match.context == "honestly i want to kill myself"
    assert detector.buffered_text(windows["chat"]).endswith("i mean kill myself ")
    assert collected.matches == [match]  # the second "kill myself" in the same window made no capture


def test_typing_goes_into_the_buffer_of_the_focused_window(running, windows):
    monitor, detector, collected = running
    focus(windows["chat"])
    type_text("i want to kill ")
    focus(windows["notes"])
    type_text("myself ")
    wait_for_keys(monitor, 22)

    assert detector.buffered_text(windows["chat"]) == "i want to kill "
    assert detector.buffered_text(windows["notes"]) == "myself "
    assert collected.matches == []  # words in two windows never make one phrase


def test_backspaces_and_enter_sent_by_the_keyboard_are_applied(running, windows):
    monitor, detector, collected = running
    focus(windows["notes"])

    type_text("bomv")
    press_keys("BackSpace")
    type_text("b")
    press_keys("Return")
    wait_for_keys(monitor, 7)

    (match,) = collected.wait_for(1)
    assert match.keyword == "bomb"
    assert detector.buffered_text(windows["notes"]) == "bomb\n"


def test_ctrl_backspace_deletes_a_word(running, windows):
    monitor, detector, _ = running
    focus(windows["notes"])

    type_text("a quick test")
    press_keys("ctrl+BackSpace")
    wait_for_keys(monitor, 13)

    assert detector.buffered_text(windows["notes"]) == "a quick "


def test_ctrl_a_then_typing_replaces_the_text_and_released_ctrl_is_seen_without_release_events(running, windows):
    """The X11 listener records key presses only: ctrl comes from each key's own modifier state, so a
    ctrl that was let go must not stick to the keys typed after it."""
    monitor, detector, _ = running
    focus(windows["notes"])

    type_text("old words")
    press_keys("ctrl+a")
    type_text("new")
    wait_for_keys(monitor, 9 + 1 + 3)

    assert detector.buffered_text(windows["notes"]) == "new"


def test_a_keyword_typed_last_is_detected_when_typing_pauses(running, windows):
    monitor, _, collected = running
    focus(windows["chat"])

    type_text("search: bomb")  # no space or enter after it: the idle flush reports it

    (match,) = collected.wait_for(1)
    assert match.keyword == "bomb"


def test_a_paused_detector_ignores_the_keyboard(running, windows):
    monitor, detector, collected = running
    detector.paused = True
    focus(windows["chat"])

    type_text("bomb ")
    wait_for_keys(monitor, 5)

    assert collected.matches == []
    assert detector.buffered_text(windows["chat"]) == ""


def test_stop_ends_the_listener(display, windows):
    probe = LinuxX11Probe()
    detector = CaptureDetector(lambda: None, lambda match: None)
    monitor = KeyboardMonitor(probe, detector)
    monitor.start()
    listener = monitor._listener

    monitor.stop()

    assert not listener.is_alive()
    probe.close()
