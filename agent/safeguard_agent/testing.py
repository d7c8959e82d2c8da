"""Helpers for tests that need a real X display: Xvfb, an xterm to type into, xdotool to type.

Shipped inside the package (not under tests/) so the agent's tests, the server's end-to-end tests and the
benchmark all drive the same display the same way. Nothing here is used by the agent at run time.

Facts that shape it (see /work/shared/PLATFORM-NOTES.md): there is no window manager on a bare Xvfb, so
`xdotool windowactivate` fails and focus is set with `xdotool windowfocus --sync`; pynput sees keys that
`xdotool type` sends through XTEST (not `type --window`, which uses XSendEvent and bypasses the RECORD
extension pynput listens with).

Usage:
    with XvfbDisplay() as display:          # sets DISPLAY for this process and its children
        wid = display.open_xterm("Notes")   # or open_xterm("Notes") for the innermost display
        focus(wid)
        type_text("hello world")
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

SCREEN = "1280x800x24"
_START_TIMEOUT = 15.0
_COMMAND_TIMEOUT = 15.0

# The displays started by XvfbDisplay, innermost last, so the module-level helpers know whose xterm to track.
_active: list[XvfbDisplay] = []


class DisplayError(RuntimeError):
    """Xvfb or an X client could not be started, or did not answer in time."""


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the process that started us dies.

    Xvfb and the xterms run in their own session (so a Ctrl+C meant for pytest does not kill them mid-
    teardown); without this, a test run killed outright (a CI timeout) would leave them running for ever.
    Linux only; the signal follows the *thread* that started the child, so start displays from the main
    thread (pytest fixtures do).
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise DisplayError(
            f"{program!r} is not installed; run scripts/install-system-packages.sh (xvfb, xdotool, xterm, x11-utils)"
        )
    return path


class XvfbDisplay:
    """A private Xvfb on a free display number for the duration of a `with` block.

    The free number comes from Xvfb itself (`-displayfd`): it tries :0, :1, ... and reports the first one it
    could bind, which cannot race with another test run picking the same number between our check and its
    start. We then wait until `xdpyinfo` answers, export DISPLAY (restoring the old value on exit), and
    terminate Xvfb and every X client opened through this object.
    """

    def __init__(self, *, screen: str = SCREEN, start_timeout: float = _START_TIMEOUT) -> None:
        self.screen = screen
        self.start_timeout = start_timeout
        self.display: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._clients: list[subprocess.Popen[bytes]] = []
        self._previous_display: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> XvfbDisplay:
        xvfb = _require("Xvfb")
        _require("xdpyinfo")
        read_fd, write_fd = os.pipe()
        try:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [xvfb, "-displayfd", str(write_fd), "-screen", "0", self.screen, "-nolisten", "tcp", "-noreset"],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        finally:
            os.close(write_fd)
        try:
            number = self._read_display_number(read_fd)
        finally:
            os.close(read_fd)
        self.display = f":{number}"
        self._wait_until_answering()
        self._previous_display = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = self.display
        _active.append(self)
        return self

    def _read_display_number(self, read_fd: int) -> int:
        deadline = time.monotonic() + self.start_timeout
        buffer = b""
        os.set_blocking(read_fd, False)
        while time.monotonic() < deadline:
            try:
                chunk = os.read(read_fd, 64)
            except BlockingIOError:
                chunk = None
            if chunk:
                buffer += chunk
                if b"\n" in buffer:
                    return int(buffer.split(b"\n", 1)[0])
            elif chunk == b"" or (self._process is not None and self._process.poll() is not None):
                break
            time.sleep(0.02)
        self._kill_server()
        raise DisplayError("Xvfb did not report a display number (is another X server misbehaving?)")

    def _wait_until_answering(self) -> None:
        assert self.display is not None
        env = {**os.environ, "DISPLAY": self.display}
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            result = subprocess.run(  # noqa: S603
                [_require("xdpyinfo")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
            )
            if result.returncode == 0:
                return
            time.sleep(0.05)
        self._kill_server()
        raise DisplayError(f"Xvfb on {self.display} did not answer xdpyinfo within {self.start_timeout} s")

    def stop(self) -> None:
        for client in self._clients:
            _terminate(client)
        self._clients.clear()
        self._kill_server()
        if self in _active:
            _active.remove(self)
        if self.display is not None and os.environ.get("DISPLAY") == self.display:
            if self._previous_display is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = self._previous_display

    def _kill_server(self) -> None:
        if self._process is not None:
            _terminate(self._process)
            self._process = None

    def __enter__(self) -> XvfbDisplay:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment for a child process that should draw on this display."""
        if self.display is None:
            raise DisplayError("the display is not started")
        return {**os.environ, "DISPLAY": self.display}

    def open_xterm(self, title: str, *, command: tuple[str, ...] = ("cat",)) -> int:
        """Open an xterm titled `title` and return its X window id once it is mapped.

        It runs `cat` by default rather than a shell, so whatever a test types is echoed and never executed.
        """
        process = subprocess.Popen(  # noqa: S603
            [_require("xterm"), "-T", title, "-geometry", "80x24+0+0", "-e", *command],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._clients.append(process)
        return find_window(title, env=self.env())

    def xdotool(self, *args: str) -> str:
        return _xdotool(*args, env=self.env())


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _xdotool(*args: str, env: dict[str, str] | None = None, timeout: float = _COMMAND_TIMEOUT) -> str:
    try:
        result = subprocess.run(  # noqa: S603
            [_require("xdotool"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise DisplayError(f"xdotool {' '.join(args)} did not finish within {timeout} s") from error
    if result.returncode != 0:
        raise DisplayError(f"xdotool {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def _current_env() -> dict[str, str]:
    if _active:
        return _active[-1].env()
    if not os.environ.get("DISPLAY"):
        raise DisplayError("no X display: use `with XvfbDisplay():` first")
    return dict(os.environ)


def find_window(title: str, *, env: dict[str, str] | None = None, timeout: float = _COMMAND_TIMEOUT) -> int:
    """The id of the (first) window whose name is exactly `title`, waiting until it exists."""
    output = _xdotool(
        "search",
        "--sync",
        "--onlyvisible",  # mapped: focusing a window that exists but is not yet mapped fails (BadMatch)
        "--limit",
        "1",
        "--name",
        f"^{re.escape(title)}$",
        env=env or _current_env(),
        timeout=timeout,
    )
    ids = [int(line) for line in output.split() if line.strip().isdigit()]
    if not ids:
        raise DisplayError(f"no window named {title!r}")
    return ids[0]


def open_xterm(title: str, *, command: tuple[str, ...] = ("cat",)) -> int:
    """Open an xterm on the innermost XvfbDisplay (which will close it) and return its window id."""
    if not _active:
        raise DisplayError("open_xterm needs a running XvfbDisplay")
    return _active[-1].open_xterm(title, command=command)


def focus(window_id: int) -> None:
    """Give `window_id` the keyboard focus and wait until the X server confirms it (no WM needed)."""
    _xdotool("windowfocus", "--sync", str(window_id), env=_current_env())


def type_text(text: str, delay_ms: int = 12) -> None:
    """Type `text` through XTEST into whatever window has the focus, as a keyboard would."""
    _xdotool("type", "--delay", str(delay_ms), "--", text, env=_current_env(), timeout=_COMMAND_TIMEOUT + len(text))


def press_keys(*keys: str, delay_ms: int = 12) -> None:
    """Press key combinations such as "BackSpace", "Return" or "ctrl+BackSpace" in order."""
    _xdotool("key", "--delay", str(delay_ms), *keys, env=_current_env())


def window_title(window_id: int) -> str:
    return _xdotool("getwindowname", str(window_id), env=_current_env()).rstrip("\n")


def set_window_title(window_id: int, title: str) -> None:
    _xdotool("set_window", "--name", title, str(window_id), env=_current_env())


def files_under(folder: Path) -> list[Path]:
    """Every regular file below `folder`, for privacy tests that grep the agent's state."""
    return [path for path in folder.rglob("*") if path.is_file()]
