"""Keyword detection: typed text, window titles and browser addresses -> `DetectedMatch`es.

The `CaptureDetector` is the one place matches are made and deduplicated:

- **Typed text**: `keystroke()` feeds the per-window buffers (`monitors/keyboard.py`), whose incremental
  matchers report a keyword once the character after it shows it is a whole word (or at a separator, a
  focus change or an idle flush).
- **Titles and addresses**: `window_seen()` (the activity monitor calls it on every poll; the keyboard path
  on every key) scans a window's title and its browser address whenever they change, so a page titled
  with a monitored phrase is captured even if nothing is typed.
- **Once per window**: a (policy, keyword) is reported once per window until that window's title changes
  (another page, another document) or its buffer is cleared (ctrl+A then an edit). Typing the phrase again
  in the same window does not make another capture; typing it in another window does.
- **Context**: at most `context_chars` (80) characters around the match, cut from the typed buffer or the
  title, on one line. That is all of the typed text that ever leaves the process.
- **Pause**: `paused = True` (staff disabled monitoring with the PIN) drops every key, forgets all buffers
  and reports nothing until it is set back to False.

`on_detection` is called on the thread that found the match (the keyboard listener's for typed text): it
should hand the capture to a queue or thread and return, so typing is never held up by a screenshot.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from safeguard_agent.monitors.keyboard import DEFAULT_MAX_WINDOWS, Stroke, Typed, WindowBuffers
from safeguard_agent.platform.base import WindowInfo

if TYPE_CHECKING:
    from safeguard_agent.keywords.engine import KeywordEngine
    from safeguard_agent.keywords.types import Match

log = logging.getLogger(__name__)

CONTEXT_CHARS = 80


@dataclass(frozen=True)
class DetectedMatch:
    """A keyword match, with what the runtime needs to make a capture (metadata + watermark).

    `policy_id` is the policy's UUID from the server config (None when unknown: the server then finds the
    policy from the keyword). `source` says where the text was: "typed", "title" or "url".
    """

    keyword: str
    policy_id: str | None
    policy_name: str
    severity: str
    context: str
    application: str
    window_title: str
    url: str
    user: str
    occurred_at: datetime
    source: str = "typed"


def context_around(text: str, start: int, end: int, limit: int = CONTEXT_CHARS) -> str:
    """At most `limit` characters of `text` around text[start:end], the match in the middle, on one line.

    Whatever room one side does not use goes to the other; the cut falls on a word boundary where one is
    near, so the context does not begin or end in half a word when it can avoid it.
    """
    start, end = max(0, start), min(len(text), end)
    if end - start >= limit:
        return " ".join(text[start : start + limit].split())
    room = limit - (end - start)
    before = min(start, room // 2)
    after = min(len(text) - end, room - before)
    before = min(start, room - after)
    left, right = start - before, end + after
    # Prefer whole words: drop a partial word at either cut, unless that would drop most of the room.
    if left > 0 and not text[left - 1].isspace():
        space = text.find(" ", left, start)
        if space != -1 and space - left < 15:
            left = space + 1
    if right < len(text) and not text[right].isspace():
        space = text.rfind(" ", end, right)
        if space != -1 and right - space < 15:
            right = space
    return " ".join(text[left:right].split())


def policy_ids_from_config(config: Mapping) -> dict[str, str]:
    """Policy name -> UUID from the agent config (GET /api/v1/agent/config), for DetectedMatch.policy_id."""
    return {
        str(policy["name"]): str(policy["id"])
        for policy in config.get("policies", [])
        if isinstance(policy, Mapping) and policy.get("name") and policy.get("id")
    }


@dataclass
class _WindowState:
    window: WindowInfo
    url: str | None = None
    scanned: tuple[str, str | None] | None = None  # the (title, url) last scanned
    reported: set[tuple[str, str]] = field(default_factory=set)  # (policy, keyword) reported in this window


class CaptureDetector:
    def __init__(
        self,
        engine_provider: Callable[[], KeywordEngine | None],
        on_detection: Callable[[DetectedMatch], None],
        *,
        user: str | Callable[[], str] = "",
        policy_ids: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        url_provider: Callable[[WindowInfo], str | None] | None = None,
        context_chars: int = CONTEXT_CHARS,
        max_windows: int = DEFAULT_MAX_WINDOWS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine_provider = engine_provider
        self.on_detection = on_detection
        self._user = user
        self._policy_ids = policy_ids
        self._url_provider = url_provider
        self.context_chars = context_chars
        self._clock = clock
        self._buffers = WindowBuffers(max_windows=max_windows)
        self._windows: OrderedDict[int, _WindowState] = OrderedDict()
        self._max_windows = max_windows
        self._lock = threading.RLock()
        self._paused = False

    # -- pause -----------------------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        with self._lock:
            self._paused = bool(value)
            if self._paused:
                # Nothing typed while monitoring is off may be matched later, nor anything from before.
                self._buffers.clear()
                self._windows.clear()

    # -- inputs ----------------------------------------------------------------------------------------
    def keystroke(self, window: WindowInfo, stroke: Stroke, *, password: bool | None = None) -> list[DetectedMatch]:
        """One key typed into `window` (the foreground window when it was pressed)."""
        if self._paused:
            return []
        engine = self.engine_provider()
        if engine is None:
            return []
        with self._lock:
            found = self._see(window, self._url_for(window), engine)
            for typed in self._buffers.stroke(window.window_id, stroke, engine, password=password):
                found += self._typed(typed)
        return self._deliver(found)

    def window_seen(self, window: WindowInfo | None, url: str | None = None) -> list[DetectedMatch]:
        """The foreground window now (each activity poll): scan its title/address if they changed."""
        if self._paused or window is None:
            return []
        engine = self.engine_provider()
        if engine is None:
            return []
        with self._lock:
            found = self._see(window, url if url is not None else self._url_for(window), engine)
            left = self._buffers.switch_to(window.window_id)
            if left is not None:
                found += self._typed(left)
        return self._deliver(found)

    def flush(self) -> list[DetectedMatch]:
        """Typing paused: report a keyword that ends the current window's text."""
        if self._paused:
            return []
        with self._lock:
            current = self._buffers.current
            typed = self._buffers.flush(current) if current is not None else None
            found = self._typed(typed) if typed is not None else []
        return self._deliver(found)

    def buffered_text(self, window_id: int) -> str:
        """The typed text held for a window (tests and the privacy check; never logged)."""
        with self._lock:
            return self._buffers.text(window_id)

    # -- internals -------------------------------------------------------------------------------------
    def _url_for(self, window: WindowInfo) -> str | None:
        if self._url_provider is None:
            return None
        try:
            return self._url_provider(window)
        except Exception as error:  # an OS hiccup reading the address must not cost the keystroke
            log.warning("reading the browser address failed: %s", type(error).__name__)
            return None

    def _state(self, window: WindowInfo) -> _WindowState:
        state = self._windows.get(window.window_id)
        if state is None:
            state = _WindowState(window=window)
            self._windows[window.window_id] = state
            while len(self._windows) > max(self._max_windows, 1) * 2:
                evicted, _ = self._windows.popitem(last=False)
                self._buffers.forget(evicted)
        self._windows.move_to_end(window.window_id)
        return state

    def _see(self, window: WindowInfo, url: str | None, engine: KeywordEngine) -> list[DetectedMatch]:
        state = self._state(window)
        if state.window.title != window.title:
            state.reported.clear()  # another page or document in the same window: report afresh
        state.window = window
        if url is not None:
            state.url = url
        key = (window.title, state.url)
        if state.scanned == key:
            return []
        state.scanned = key
        found: list[DetectedMatch] = []
        for source, text in (("title", window.title), ("url", state.url or "")):
            if text:
                for match in engine.scan(text):
                    found += self._report(
                        state, match, context_around(text, match.start, match.end, self.context_chars), source
                    )
        return found

    def _typed(self, typed: Typed) -> list[DetectedMatch]:
        state = self._windows.get(typed.window_id)
        if state is None:
            return []
        if typed.reset:
            state.reported.clear()
        found: list[DetectedMatch] = []
        for match in typed.matches:
            start, end = match.start - typed.offset, match.end - typed.offset
            found += self._report(state, match, context_around(typed.text, start, end, self.context_chars), "typed")
        return found

    def _report(self, state: _WindowState, match: Match, context: str, source: str) -> list[DetectedMatch]:
        key = (match.policy, match.keyword)
        if key in state.reported:
            return []
        state.reported.add(key)
        window = state.window
        return [
            DetectedMatch(
                keyword=match.keyword,
                policy_id=self._policy_id(match),
                policy_name=match.policy,
                severity=match.severity,
                context=context,
                application=window.application,
                window_title=window.title,
                url=state.url or "",
                user=self._user() if callable(self._user) else self._user,
                occurred_at=self._clock(),
                source=source,
            )
        ]

    def _policy_id(self, match: Match) -> str | None:
        if isinstance(match.policy_id, str) and match.policy_id:
            return match.policy_id
        if self._policy_ids is not None:
            ids = self._policy_ids() if callable(self._policy_ids) else self._policy_ids
            return ids.get(match.policy)
        return None

    def _deliver(self, found: list[DetectedMatch]) -> list[DetectedMatch]:
        for detected in found:
            try:
                self.on_detection(detected)
            except Exception:
                log.exception("on_detection failed for a %s match of policy %r", detected.source, detected.policy_name)
        return found
