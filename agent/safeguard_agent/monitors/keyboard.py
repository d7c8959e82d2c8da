"""Keystrokes -> per-window text buffers -> incremental keyword matching.

Two layers, so the logic is tested without a keyboard and the keyboard without the logic:

- `WindowBuffers` (pure): turns `Stroke`s into the text a pupil is typing, one buffer per window, and runs the
  keyword engine's incremental matcher over it. Backspace deletes a character, ctrl+backspace a word,
  ctrl+A followed by typing or deleting starts afresh; enter and tab are separators (a newline / a space,
  and the matcher is flushed so a keyword that ends right there is reported). Arrow, home/end and page keys
  move the caret somewhere we cannot see, and keys typed into a field the OS says is a password field are
  not buffered at all: both are breaks — the window's text starts afresh, so what was typed before and
  after is never matched as one phrase.
- `KeyboardMonitor`: a pynput listener that reads each key's modifiers, asks the platform probe which
  window has the focus (and whether the focused field is a password box), and hands a `Stroke` to the
  `CaptureDetector`, which owns a `WindowBuffers`.

Privacy: the typed text lives only in these in-memory buffers (bounded: the matcher keeps a tail of about a
thousand characters per window, and at most `max_windows` windows). It is never logged, never written to
disk and never sent; only a match's ~80 characters of context leave through the detector. Nothing here logs
a key, a character or a buffer, only counts and exception types.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safeguard_agent.detection import CaptureDetector
    from safeguard_agent.keywords.engine import IncrementalMatcher, KeywordEngine
    from safeguard_agent.keywords.types import Match
    from safeguard_agent.platform.base import PlatformProbe

log = logging.getLogger(__name__)

# Named keys that move the caret: after one, what is typed next is not necessarily adjacent to what was typed
# before, so the buffer starts afresh.
NAVIGATION_KEYS = frozenset({"left", "right", "up", "down", "home", "end", "page_up", "page_down"})
# Keys that change nothing by themselves (pressed on their own or before the key they modify).
MODIFIER_KEYS = frozenset(
    {"shift", "shift_l", "shift_r", "ctrl", "ctrl_l", "ctrl_r", "alt", "alt_l", "alt_r", "alt_gr", "cmd", "cmd_l"}
    | {"cmd_r", "caps_lock", "num_lock"}
)
DEFAULT_MAX_WINDOWS = 16


@dataclass(frozen=True)
class Stroke:
    """One key press, as the buffers need it.

    `char` is the text the key produced ("a", "A", "é"), `key` a named key ("backspace", "enter", "tab",
    "space", "delete", "left", ...). `ctrl`/`alt` are the modifiers held; ctrl and alt together are AltGr on
    Windows, which types text.
    """

    char: str | None = None
    key: str | None = None
    ctrl: bool = False
    alt: bool = False

    @property
    def is_shortcut(self) -> bool:
        return self.ctrl != self.alt  # ctrl+C, alt+F: commands, not text. ctrl+alt+2 (AltGr) is text.


@dataclass
class _Buffer:
    engine: KeywordEngine
    matcher: IncrementalMatcher
    select_all: bool = False  # ctrl+A was the last key: the next edit replaces everything
    needs_separator: bool = False  # keys went to a password field since the last buffered text: break


@dataclass
class Typed:
    """Matches the last stroke completed in one window, with the buffer text to cut their context from.
    `offset` is the absolute position of `text[0]` (match offsets count from the window's last reset)."""

    window_id: int
    matches: list[Match]
    text: str
    offset: int
    reset: bool = False  # the buffer was cleared (ctrl+A then an edit): a fresh start for dedupe too


class WindowBuffers:
    """The per-window typed text and its incremental matchers. Not thread-safe: the detector locks."""

    def __init__(self, *, max_windows: int = DEFAULT_MAX_WINDOWS) -> None:
        self.max_windows = max_windows
        self._buffers: OrderedDict[int, _Buffer] = OrderedDict()
        self.current: int | None = None

    def __len__(self) -> int:
        return len(self._buffers)

    def __contains__(self, window_id: int) -> bool:
        return window_id in self._buffers

    def text(self, window_id: int) -> str:
        buffer = self._buffers.get(window_id)
        return buffer.matcher.text if buffer else ""

    def clear(self) -> None:
        self._buffers.clear()
        self.current = None

    def forget(self, window_id: int) -> None:
        self._buffers.pop(window_id, None)
        if self.current == window_id:
            self.current = None

    def _buffer(self, window_id: int, engine: KeywordEngine) -> _Buffer:
        buffer = self._buffers.get(window_id)
        if buffer is None:
            buffer = _Buffer(engine=engine, matcher=engine.incremental())
            self._buffers[window_id] = buffer
            while len(self._buffers) > self.max_windows:
                self._buffers.popitem(last=False)  # the least recently typed-in window
        elif buffer.engine is not engine:
            # The policy changed: carry the text over to a matcher of the new engine. What the old text
            # matches now is not reported (the screen no longer shows what it was typed for).
            text = buffer.matcher.text
            buffer.engine, buffer.matcher = engine, engine.incremental()
            buffer.matcher.feed(text)
        self._buffers.move_to_end(window_id)
        return buffer

    def _result(self, window_id: int, buffer: _Buffer, matches: list[Match], *, reset: bool = False) -> Typed:
        matcher = buffer.matcher
        return Typed(window_id, matches, matcher.text, matcher.length - len(matcher.text), reset=reset)

    def switch_to(self, window_id: int) -> Typed | None:
        """Focus moved to `window_id`: flush the window we leave (its last word is complete now)."""
        previous, self.current = self.current, window_id
        if previous is None or previous == window_id or previous not in self._buffers:
            return None
        buffer = self._buffers[previous]
        matches = buffer.matcher.flush()
        return self._result(previous, buffer, matches) if matches else None

    def flush(self, window_id: int) -> Typed | None:
        """Typing paused: report a keyword that ends the buffer."""
        buffer = self._buffers.get(window_id)
        if buffer is None:
            return None
        matches = buffer.matcher.flush()
        return self._result(window_id, buffer, matches) if matches else None

    def stroke(self, window_id: int, stroke: Stroke, engine: KeywordEngine, *, password: bool | None) -> list[Typed]:
        """Apply one key press typed into `window_id`; the matches it completed (in this or the window left)."""
        results: list[Typed] = []
        left = self.switch_to(window_id)
        if left is not None:
            results.append(left)
        if password:
            # Not a character of a password field is kept; the text typed before and after it must not run
            # together as if adjacent (the next buffered key starts the text afresh).
            if window_id in self._buffers:
                self._buffers[window_id].needs_separator = True
            return results
        buffer = self._buffer(window_id, engine)
        matcher = buffer.matcher
        reset = False
        name = stroke.key

        if stroke.ctrl and not stroke.alt and (stroke.char or "").lower() == "a":
            buffer.select_all = True
            return results
        if stroke.char and stroke.is_shortcut:
            return results  # ctrl+C, alt+F...: a command, no text (and a selection stays selected)
        if buffer.select_all and (stroke.char or name in ("space", "backspace", "delete", "enter", "tab")):
            matcher.reset()  # the edit replaced everything that was selected
            reset = True
        if name is not None and name not in MODIFIER_KEYS:
            buffer.select_all = False
        if stroke.char:
            buffer.select_all = False

        matches: list[Match] = []
        if stroke.char or name in ("space", "enter", "tab"):
            if buffer.needs_separator:
                matches += self._break(matcher)
                buffer.needs_separator = False
            if stroke.char:
                matches += matcher.feed(stroke.char)
            elif name == "space":
                matches += matcher.feed(" ")
            else:
                matches += matcher.feed("\n" if name == "enter" else " ")
                matches += matcher.flush()
        elif name == "backspace":
            if reset:
                pass
            elif stroke.ctrl:
                matcher.backspace(_word_length(matcher.text))
            else:
                matcher.backspace(1)
        elif name in NAVIGATION_KEYS:
            matches += self._break(matcher)
        if matches or reset:
            results.append(self._result(window_id, buffer, matches, reset=reset))
        return results

    @staticmethod
    def _break(matcher: IncrementalMatcher) -> list[Match]:
        """What follows is not adjacent to what came before: report what ends the text, then start afresh.

        A separator character would not do: the engine joins a phrase across newlines and punctuation (as it
        should for "kill. myself"), so only a fresh matcher keeps two pieces of text apart."""
        matches = matcher.flush()
        matcher.reset()
        return matches


def _word_length(text: str) -> int:
    """How many characters ctrl+backspace deletes from the end of `text`: trailing spaces, then a word."""
    end = len(text)
    position = end
    while position > 0 and text[position - 1].isspace():
        position -= 1
    while position > 0 and not text[position - 1].isspace():
        position -= 1
    return end - position


# ------------------------------------------------------------------------------------------- pynput side
_CTRL = frozenset({"ctrl", "ctrl_l", "ctrl_r"})
_ALT = frozenset({"alt", "alt_l", "alt_r"})


def stroke_from_pynput(key: Any, *, ctrl: bool, alt: bool) -> Stroke | None:
    """A pynput key (Key.backspace, KeyCode(char="a")) as a Stroke; None for keys that type nothing."""
    char = getattr(key, "char", None)
    if char is not None:
        if len(char) == 1 and ord(char) < 32:  # X11 reports ctrl+A as "\x01"
            return Stroke(char=chr(ord(char) + 96), ctrl=True, alt=alt)
        return Stroke(char=char, ctrl=ctrl, alt=alt)
    name = getattr(key, "name", None)
    if name is None:
        return None  # a key with only a virtual-key code (a media key, an unmapped numpad key)
    return Stroke(key=name, ctrl=ctrl, alt=alt)


def _unblock_xorg_listener(listener: Any) -> None:
    """Make pynput's X11 listener thread actually end on stop().

    pynput 1.8 sends RecordDisableContext on the very connection that is blocked in RecordEnableContext and
    does not flush it, so the thread waits for the next key (measured under Xvfb: join() timed out after
    5 s, then the thread died with a broken pipe when the display went away). The RECORD extension wants
    the disable sent from another connection: pynput keeps one for that (`_display_stop`).
    """
    display, context = getattr(listener, "_display_stop", None), getattr(listener, "_context", None)
    if display is None or context is None:
        return  # not the X11 backend (Windows, macOS): its stop() works
    try:
        display.record_disable_context(context)
        display.flush()
    except Exception as error:  # the listener already ended and closed it
        log.debug("keyboard monitor: unblocking the X11 listener: %s", type(error).__name__)


def _press_only_x11_listener(keyboard: Any) -> Any:
    """pynput's X11 listener, recording key presses only and keeping the modifier state of each; None
    on other platforms.

    pynput records presses and releases and parses each in pure Python (python-xlib's XRecord replies),
    about 0.3 ms of CPU an event: the releases were there only to know when ctrl or alt go up, and every
    X key event already carries the modifiers held (`state`). Recording presses alone halves the
    listener's cost. (Relies on pynput 1.8's X11 `_EVENTS` and `_handle_message`, as pinned.)
    """
    base = keyboard.Listener
    if base.__module__ != "pynput.keyboard._xorg":
        return None
    from Xlib import X

    class PressOnlyListener(base):
        _EVENTS = (X.KeyPress, X.KeyPress)  # the XRecord device-event range: first, last
        modifier_state: int | None = None

        def _handle_message(self, display: Any, event: Any, injected: bool) -> None:
            self.modifier_state = event.state
            super()._handle_message(display, event, injected)

    return PressOnlyListener


_X11_CONTROL_MASK = 1 << 2  # X.ControlMask
_X11_MOD1_MASK = 1 << 3  # X.Mod1Mask: alt


class KeyboardMonitor:
    """Listens to the keyboard with pynput and feeds every key press to the detector.

    Importing pynput needs a display on Linux, so it happens in `start()`, which raises ImportError (or
    Xlib's errors) where there is none; the agent then logs it and runs without keyword detection from typing.
    An idle flush (typing paused for `idle_seconds`) reports a keyword that ends the text, e.g. a search typed
    and then clicked, not followed by space or enter.
    """

    def __init__(
        self,
        probe: PlatformProbe,
        detector: CaptureDetector,
        *,
        idle_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.detector = detector
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._ctrl: set[str] = set()
        self._alt: set[str] = set()
        self._listener: Any = None
        self._last_key = 0.0
        self._pending_flush = False
        self._stop = threading.Event()
        self._idle_thread: threading.Thread | None = None
        self.keys_seen = 0  # a count, for tests and the benchmark; never the keys themselves

    def start(self) -> None:
        from pynput import keyboard

        x11 = _press_only_x11_listener(keyboard)
        if x11 is not None:
            self._listener = x11(on_press=self._on_press)
        else:
            self._listener = keyboard.Listener(on_press=self._on_press, on_release=self._on_release)
        self._listener.start()
        self._listener.wait()  # until the hook is installed, so the first keys are not missed
        self._stop.clear()
        self._idle_thread = threading.Thread(target=self._idle_loop, name="keyboard-idle", daemon=True)
        self._idle_thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.stop()
            _unblock_xorg_listener(self._listener)
            self._listener.join(timeout=5)
            self._listener = None
        if self._idle_thread is not None:
            self._idle_thread.join(timeout=5)
            self._idle_thread = None

    @property
    def running(self) -> bool:
        return self._listener is not None and self._listener.running

    def _on_press(self, key: Any) -> None:
        try:
            name = getattr(key, "name", None)
            if name in _CTRL:
                self._ctrl.add(name)
                return
            if name in _ALT:
                self._alt.add(name)
                return
            state = getattr(self._listener, "modifier_state", None)
            if state is not None:  # X11: the modifiers held, from the key event itself
                ctrl, alt = bool(state & _X11_CONTROL_MASK), bool(state & _X11_MOD1_MASK)
            else:
                ctrl, alt = bool(self._ctrl), bool(self._alt)
            stroke = stroke_from_pynput(key, ctrl=ctrl, alt=alt)
            if stroke is None:
                return
            self.keys_seen += 1
            window = self.probe.foreground_window()
            if window is None:
                return  # nothing has the focus: the key went nowhere
            password = self.probe.focused_field_is_password()
            self.detector.keystroke(window, stroke, password=password)
            self._last_key = self._clock()
            self._pending_flush = True
        except Exception as error:  # never let one key stop the listener; never log the key
            log.error("keyboard monitor: %s while handling a key", type(error).__name__)

    def _on_release(self, key: Any) -> None:
        name = getattr(key, "name", None)
        self._ctrl.discard(name)
        self._alt.discard(name)

    def _idle_loop(self) -> None:
        while not self._stop.wait(min(0.5, self.idle_seconds / 2)):
            self.check_idle()

    def check_idle(self) -> None:
        """Flush the detector once typing has paused for idle_seconds."""
        if self._pending_flush and self._clock() - self._last_key >= self.idle_seconds:
            self._pending_flush = False
            try:
                self.detector.flush()
            except Exception as error:
                log.error("keyboard monitor: %s during the idle flush", type(error).__name__)
