"""The Linux/X11 probe: python-xlib for windows, /proc for processes, CUPS for printing.

What X11 can and cannot tell us:

- **Foreground window**: the root window's `_NET_ACTIVE_WINDOW` when a window manager maintains it (every
  desktop environment does); otherwise — a bare X server such as the Xvfb the tests run, or a kiosk without
  a WM — the window holding the keyboard focus (`XGetInputFocus`), walked up to its top-level window.
  The answer is kept until the X server says it may have changed: the keyboard monitor asks on every key,
  and reading it afresh costs four X round trips (about 0.25 ms of CPU in python-xlib, most of the
  listener thread's cost at 10 keys/s). A second connection selects the events that announce a change
  (`_NET_ACTIVE_WINDOW` on the root, focus leaving the window, its title changing, the window going away)
  and is checked without blocking on each call: no event, same answer.
- **Title**: `_NET_WM_NAME` (UTF-8), else the legacy `WM_NAME`.
- **Application**: the owning process from `_NET_WM_PID`, else the X-Resource extension's client pid (for
  clients that do not set `_NET_WM_PID`), then `/proc/<pid>/exe` (its file name, e.g. "firefox-esr"), else
  `/proc/<pid>/comm`, else the window's `WM_CLASS`. A window of a remote client (ssh -X) has no local pid.
- **Password fields: cannot tell** (`focused_field_is_password` returns None). X11 has no notion of a
  field: the focus is on a whole window and each toolkit draws its own text boxes. The accessibility bus
  (AT-SPI, `ROLE_PASSWORD_TEXT`) could tell for GTK/Qt apps, but only when the desktop runs it with
  accessibility on; that is a later step. So on Linux typed passwords are buffered in memory like any
  other text (never sent, never written: only a keyword match's ~80 characters of context leave the
  process).
- **Browser URLs: from window titles only.** Browsers publish the page title, not the address, in
  `_NET_WM_NAME`; they show an address there only for a page without a <title>. `browser_url` returns that
  address when the title shows one, else None. (Firefox and Chromium expose the address bar over AT-SPI
  or a native-messaging extension — neither is here.)
- **Applications**: processes from /proc; an "application" is a process owning a viewable top-level window
  (`window_pids`), which leaves out daemons and kernel threads.
- **Print jobs**: CUPS (see `platform/cups.py`): document name, printer, pages when CUPS counted them.
- **User**: the login name of the account the agent runs as (see `linux_user_name`).
"""

from __future__ import annotations

import os
import pwd
import re
import select
import threading
import time
from pathlib import Path

from safeguard_agent.platform.base import PrintJob, ProcessInfo, WindowInfo, url_from_title
from safeguard_agent.platform.cups import cups_print_jobs

# Not imported at module level: importing python-xlib is fine without a display, but keeping the import
# here lazy keeps `safeguard_agent.platform` importable on Windows, where python-xlib is not installed.

# How long a foreground window read stays good with no event saying otherwise: a safety net for an event the
# server did not send (a toolkit renaming a window through a property we do not watch), not the mechanism.
FOREGROUND_MAX_AGE = 1.0


def _proc_application(pid: int) -> tuple[str, str]:
    """(file name, full path) of the executable of `pid`; path "" when /proc hides it (another user)."""
    path = ""
    try:
        path = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        pass
    if path.endswith(" (deleted)"):  # the binary was replaced by an upgrade while running
        path = path[: -len(" (deleted)")]
    if path:
        return os.path.basename(path), path
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip(), ""
    except OSError:
        return "", ""


def linux_user_name(login: str | None = None, *, domain: str | None = None) -> str:
    """The user as the server should see them, from the login name of the account the agent runs as.

    - "SCHOOL\\jsmith" (winbind's default separator) is kept as it is.
    - "jsmith@school.example" (SSSD with fully qualified names) becomes "SCHOOL\\jsmith": the realm's first
      label, upper case — what a Windows PC of the same domain reports, so one pupil is one person on the
      server whichever computer they use. (Where a domain's NetBIOS name differs from that label, set
      SAFEGUARD_USER_DOMAIN.)
    - A plain local login "jsmith" is reported as it is, or as "DOMAIN\\jsmith" when the machine's
      SAFEGUARD_USER_DOMAIN environment variable is set (LDAP logins without a domain in the name).
    """
    if login is None:
        try:
            login = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            login = os.environ.get("USER") or str(os.getuid())
    if domain is None:
        domain = os.environ.get("SAFEGUARD_USER_DOMAIN", "").strip()
    if "\\" in login:
        return login
    if "@" in login:
        name, _, realm = login.partition("@")
        return f"{(domain or realm.split('.', 1)[0]).upper()}\\{name}"
    return f"{domain.upper()}\\{login}" if domain else login


_XDG_KEYS = {
    "XDG_DESKTOP_DIR": "Desktop",
    "XDG_DOCUMENTS_DIR": "Documents",
    "XDG_DOWNLOAD_DIR": "Downloads",
    "XDG_PICTURES_DIR": "Pictures",
    "XDG_VIDEOS_DIR": "Videos",
    "XDG_MUSIC_DIR": "Music",
}
_XDG_LINE = re.compile(r'^\s*(XDG_[A-Z]+_DIR)\s*=\s*"(.*)"\s*$')


def xdg_user_folders(home: Path | None = None, config_home: Path | None = None) -> list[Path]:
    """The XDG user folders (user-dirs.dirs, else the English defaults) that exist, never $HOME itself."""
    home = home or Path.home()
    config_home = config_home or Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    folders = {key: home / default for key, default in _XDG_KEYS.items()}
    try:
        for line in (config_home / "user-dirs.dirs").read_text(encoding="utf-8", errors="replace").splitlines():
            match = _XDG_LINE.match(line)
            if match and match.group(1) in folders:
                folders[match.group(1)] = Path(match.group(2).replace("$HOME", str(home)))
    except OSError:
        pass
    result: list[Path] = []
    for folder in folders.values():
        # A disabled XDG folder points at $HOME: watching all of home recursively is not what we want.
        if folder.is_dir() and folder.resolve() != home.resolve() and folder not in result:
            result.append(folder)
    return result


class LinuxX11Probe:
    """The X11 probe. Opening it needs a display: Xlib raises (DisplayNameError/ConnectionClosedError) if
    there is none, and the agent then runs without window and keyboard monitoring."""

    def __init__(self, display_name: str | None = None) -> None:
        from Xlib import X, Xatom, display

        self._X = X
        self._Xatom = Xatom
        self._display = display.Display(display_name)
        self._root = self._display.screen().root
        self._lock = threading.Lock()
        atom = self._display.intern_atom
        self._NET_ACTIVE_WINDOW = atom("_NET_ACTIVE_WINDOW")
        self._NET_WM_NAME = atom("_NET_WM_NAME")
        self._NET_WM_PID = atom("_NET_WM_PID")
        self._NET_CLIENT_LIST = atom("_NET_CLIENT_LIST")
        self._WM_STATE = atom("WM_STATE")
        self._UTF8_STRING = atom("UTF8_STRING")
        self._TITLE_ATOMS = frozenset({self._NET_WM_NAME, Xatom.WM_NAME})
        self._has_res = self._display.has_extension("X-Resource")
        self._pid_cache: dict[int, int | None] = {}
        self._top_level_cache: dict[int, int] = {}
        self._owner_cache: dict[int, tuple[int | None, str, str]] = {}
        # The connection that is told when the foreground window may have changed (see the module docstring).
        # Its own connection, so its events never mix with the replies the probe waits for.
        self._events = display.Display(display_name)
        self._events.set_error_handler(self._event_error)  # a watched window closed: BadWindow, just re-read
        self._events_root = self._events.screen().root
        # Root: _NET_ACTIVE_WINDOW (with a WM) and focus leaving PointerRoot/None (without one).
        self._events_root.change_attributes(event_mask=X.PropertyChangeMask | X.FocusChangeMask)
        self._events.sync()
        self._watched: int | None = None
        self._foreground: WindowInfo | None = None
        self._foreground_at = 0.0
        self._events_dirty = False

    # -- windows ---------------------------------------------------------------------------------------
    def foreground_window(self) -> WindowInfo | None:
        from Xlib.error import XError

        with self._lock:
            try:
                changed = self._drain_events()
                cached = self._foreground
                if cached is not None and not changed and time.monotonic() - self._foreground_at < FOREGROUND_MAX_AGE:
                    return cached
                self._foreground = None
                window = self._active_window()
                if window is None:
                    return None  # not cached: focus arriving from nowhere is read on the next call
                # Watch before reading, so a title set between the read and the watch is not missed.
                self._watch(window.id)
                title = self._title(window)
                pid, application, path = self._owner(window)
                info = WindowInfo(title=title, application=application, pid=pid, window_id=window.id, path=path)
                self._foreground, self._foreground_at = info, time.monotonic()
                return info
            except XError:
                return None  # the window closed while we were reading it

    def _drain_events(self) -> bool:
        """Read the events queued on the watching connection without blocking: did anything change?"""
        changed = False
        events = self._events
        # A select() first: python-xlib's pending_events() costs ~80 µs of locking and parsing even when
        # nothing came, and this runs on every key. (Every event read is consumed below, so nothing waits
        # in python-xlib's own queue when the socket is quiet.)
        if not select.select([events.fileno()], [], [], 0)[0] and not self._events_dirty:
            return False
        while events.pending_events():
            event = events.next_event()
            if event.type == self._X.PropertyNotify:
                window = event.window.id
                if window == self._events_root.id:
                    changed = changed or event.atom == self._NET_ACTIVE_WINDOW
                else:
                    changed = changed or event.atom in self._TITLE_ATOMS
            else:  # focus in/out, the window unmapped or destroyed
                changed = True
        if self._events_dirty:  # an error answered a watch request (the window is gone), or see _watch
            changed, self._events_dirty = True, False
        return changed

    def _watch(self, window_id: int) -> None:
        """Be told when `window_id` loses the focus, changes its title or goes away."""
        if self._watched == window_id:
            return
        X = self._X
        if self._watched is not None:
            self._events.create_resource_object("window", self._watched).change_attributes(event_mask=X.NoEventMask)
        self._events.create_resource_object("window", window_id).change_attributes(
            event_mask=X.PropertyChangeMask | X.FocusChangeMask | X.StructureNotifyMask
        )
        self._events.sync()  # the selection is in force before the title is read
        self._watched = window_id
        if self._events.pending_events():
            # Events read while waiting for the sync sit in python-xlib's queue, where select() cannot see
            # them: the next call looks at them (and reads the window again, to be safe).
            self._events_dirty = True

    def _event_error(self, error: object, request: object = None) -> None:
        self._events_dirty = True

    def _active_window(self):  # -> Xlib window | None
        prop = self._root.get_full_property(self._NET_ACTIVE_WINDOW, self._X.AnyPropertyType)
        if prop is not None and prop.value is not None and len(prop.value) and prop.value[0]:
            return self._display.create_resource_object("window", int(prop.value[0]))
        focus = self._display.get_input_focus().focus
        # X.NONE (0) and X.PointerRoot (1) come back as ints: nothing in particular has the focus.
        if isinstance(focus, int) or focus.id == self._root.id:
            return None
        return self._top_level(focus)

    def _top_level(self, window):  # -> Xlib window | None
        """The nearest ancestor (or self) that is a client window: it has WM_STATE or a name. Focus is often
        on a child (a toolkit's inner widget window) of the window the user sees."""
        cached = self._top_level_cache.get(window.id)
        if cached is not None:
            return self._display.create_resource_object("window", cached)
        found = self._find_top_level(window)
        self._remember(self._top_level_cache, window.id, found.id)
        return found

    def _find_top_level(self, window):  # -> Xlib window
        current = window
        for _ in range(32):
            if current.id == self._root.id:
                return window
            if self._has_property(current, self._WM_STATE) or self._title(current):
                return current
            current = current.query_tree().parent
            if isinstance(current, int):
                return window
        return window

    def _has_property(self, window, atom: int) -> bool:
        return window.get_full_property(atom, self._X.AnyPropertyType) is not None

    def _title(self, window) -> str:
        prop = window.get_full_property(self._NET_WM_NAME, self._UTF8_STRING)
        if prop is not None and prop.value:
            value = prop.value
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        name = window.get_wm_name()
        if isinstance(name, bytes):
            return name.decode("latin-1")
        return name or ""

    def _owner(self, window) -> tuple[int | None, str, str]:
        """(pid, application, path) of a window: a window never changes owner, so this is read once per
        window — typing costs three X round trips per key, not a /proc walk."""
        cached = self._owner_cache.get(window.id)
        if cached is not None:
            return cached
        pid = self._pid(window)
        application, path = _proc_application(pid) if pid else ("", "")
        if not application:
            application = self._wm_class(window)
        owner = (pid, application, path)
        self._remember(self._owner_cache, window.id, owner)
        return owner

    @staticmethod
    def _remember(cache: dict, key: int, value: object) -> None:
        if len(cache) >= 4096:  # windows come and go all day; forget them all now and then
            cache.clear()
        cache[key] = value

    def _wm_class(self, window) -> str:
        wm_class = window.get_wm_class()
        return wm_class[1] if wm_class else ""

    def _pid(self, window) -> int | None:
        if window.id in self._pid_cache:
            return self._pid_cache[window.id]
        pid = None
        prop = window.get_full_property(self._NET_WM_PID, self._Xatom.CARDINAL)
        if prop is not None and len(prop.value):
            pid = int(prop.value[0])
        elif self._has_res:
            from Xlib.ext import res

            reply = self._display.res_query_client_ids([{"client": window.id, "mask": res.LocalClientPIDMask}])
            for client in reply.ids:
                if client.spec.mask & res.LocalClientPIDMask and client.value:
                    pid = int(client.value[0])
        self._remember(self._pid_cache, window.id, pid)
        return pid

    def focused_field_is_password(self) -> bool | None:
        return None  # X11 cannot tell: see the module docstring

    def browser_url(self, window: WindowInfo) -> str | None:
        return url_from_title(window.title, window.application)

    def window_pids(self) -> set[int]:
        from Xlib.error import XError

        pids: set[int] = set()
        with self._lock:
            try:
                prop = self._root.get_full_property(self._NET_CLIENT_LIST, self._X.AnyPropertyType)
                if prop is not None and len(prop.value):
                    windows = [self._display.create_resource_object("window", int(wid)) for wid in prop.value]
                else:  # no window manager: the viewable children of the root are the top-level windows
                    windows = []
                    for child in self._root.query_tree().children:
                        attributes = child.get_attributes()
                        if attributes.map_state == self._X.IsViewable and not attributes.override_redirect:
                            windows.append(child)
                for window in windows:
                    try:
                        pid = self._pid(window)
                    except XError:
                        continue
                    if pid:
                        pids.add(pid)
            except XError:
                pass
        return pids

    # -- processes, printing, user ---------------------------------------------------------------------
    def running_processes(self) -> dict[int, ProcessInfo]:
        processes: dict[int, ProcessInfo] = {}
        try:
            entries = os.listdir("/proc")
        except OSError:
            return processes
        for entry in entries:
            if not entry.isdigit():
                continue
            pid = int(entry)
            name, path = _proc_application(pid)
            if name:
                processes[pid] = ProcessInfo(name=name, path=path)
        return processes

    def print_jobs(self) -> list[PrintJob]:
        """This user's CUPS jobs (and those whose owner CUPS hides from us): another account's printing on
        a shared computer is not this user's activity."""
        try:
            login = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            login = ""
        return [job for job in cups_print_jobs(user=login) if not job.user or not login or job.user == login]

    def user_name(self) -> str:
        return linux_user_name()

    def user_folders(self) -> list[Path]:
        return xdg_user_folders()

    def close(self) -> None:
        with self._lock:
            self._display.close()
            self._events.close()
