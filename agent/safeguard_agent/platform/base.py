"""What the agent asks of an operating system: the probe every platform adapter implements.

A probe only *reads* the OS (the foreground window, processes, print queue, who is logged on); the monitors in
`safeguard_agent.monitors` turn its readings into events, so each side can be tested on its own: the monitors
with a fake probe, the probes against the real OS (Linux/X11 under Xvfb) or with the OS calls faked at the
adapter boundary (Windows, see `platform/windows.py`).

Helpers shared by the adapters live here too (browser names, URL-from-title, skipping noise), so Linux and
Windows agree on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class WindowInfo:
    """The window that has the keyboard focus.

    `application` is the executable's file name as the OS names it ("xterm", "firefox-esr", "chrome.exe"):
    that is what the server's window/application events and the capture metadata carry. `window_id` is the
    OS handle (an X window id, a Windows HWND) and keys the per-window keystroke buffers.
    """

    title: str
    application: str
    pid: int | None
    window_id: int
    path: str = ""


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    path: str = ""


@dataclass(frozen=True)
class PrintJob:
    """One job in the print queue. `id` is unique per print server ("Printer-12", "HP LaserJet:7").

    `finished` is True once the spooler says the job is done (printed, cancelled or aborted) — only then is the
    page count final. `user` is the account that printed it, when the spooler tells us ("" when not).
    """

    id: str
    document: str
    printer: str
    pages: int | None = None
    user: str = ""
    finished: bool = False


@runtime_checkable
class PlatformProbe(Protocol):
    """Reads the OS. Implementations must be safe to call from more than one thread."""

    def foreground_window(self) -> WindowInfo | None:
        """The focused top-level window, or None (nothing focused, the desktop, a window that just closed)."""

    def focused_field_is_password(self) -> bool | None:
        """True if the focused input field hides its text (a password box), False if it is a field that does
        not, None if the platform cannot tell (then keystrokes are buffered: the best we can do)."""

    def running_processes(self) -> dict[int, ProcessInfo]:
        """Every process the agent can see, by pid."""

    def window_pids(self) -> set[int]:
        """Pids owning a visible top-level window on the user's desktop: what counts as an "application"."""

    def print_jobs(self) -> list[PrintJob]:
        """This user's jobs the print spooler reports (recent finished ones too where it keeps them)."""

    def user_name(self) -> str:
        """The logged-on user as the OS names them: `DOMAIN\\name` on a domain-joined Windows PC."""

    def user_folders(self) -> list[Path]:
        """The user's own document folders (Documents, Desktop, Downloads, Pictures, ...) that exist."""

    def browser_url(self, window: WindowInfo) -> str | None:
        """The address shown by `window` if it is a browser and the platform exposes it, else None."""

    def close(self) -> None:
        """Release OS handles (display connections, DLL handles)."""


# --------------------------------------------------------------------------------------------- browsers
# Executable names (lower case, without .exe) of the browsers we recognise, and the suffix each puts after the
# page title in its window title. A school can add more in a later version; unknown browsers still produce
# window events with the page title, just no website events.
BROWSERS: dict[str, str] = {
    "chrome": "Google Chrome",
    "google-chrome": "Google Chrome",
    "chromium": "Chromium",
    "chromium-browser": "Chromium",
    "msedge": "Microsoft Edge",
    "microsoft-edge": "Microsoft Edge",
    "firefox": "Mozilla Firefox",
    "firefox-esr": "Mozilla Firefox",
    "firefox-bin": "Mozilla Firefox",
    "brave": "Brave",
    "brave-browser": "Brave",
    "opera": "Opera",
    "vivaldi": "Vivaldi",
    "vivaldi-bin": "Vivaldi",
    "iexplore": "Internet Explorer",
    "safari": "Safari",
    "epiphany": "Web",
    "falkon": "Falkon",
    "waterfox": "Waterfox",
    "librewolf": "LibreWolf",
    "tor": "Tor Browser",
}

_SEPARATOR = re.compile(r"\s+[-\u2013\u2014]\s+")

# An address written out in a title: browsers show it when a page has no <title>, some kiosk setups always do.
_URL_IN_TITLE = re.compile(r"\b(?:https?|ftp)://[^\s\"'<>]+", re.IGNORECASE)
_HOST_IN_TITLE = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24})(?::\d{1,5})?(/[^\s\"'<>]*)?$", re.IGNORECASE
)
# "report.pdf" in a PDF viewer tab is a file name, not a host.
_FILE_EXTENSIONS = frozenset(
    "pdf doc docx odt ods odp xls xlsx ppt pptx txt rtf csv png jpg jpeg gif svg webp bmp mp3 mp4 mov avi html htm "
    "xml json zip py js".split()
)


def executable_stem(application: str) -> str:
    """ "Chrome.EXE" -> "chrome"; "firefox-esr" -> "firefox-esr"."""
    name = application.rsplit("\\", 1)[-1].rsplit("/", 1)[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


def browser_name(application: str) -> str | None:
    """The browser's display name if `application` is a browser we know, else None."""
    return BROWSERS.get(executable_stem(application))


def page_title(window_title: str, application: str) -> str:
    """The page's own title: the window title without the browser's " - Google Chrome" suffix."""
    name = browser_name(application)
    if name is None:
        return window_title
    cleaned = window_title.replace("\u200b", "")  # Edge writes "Microsoft\u200b Edge"
    brand = name.split()[-1].lower()
    separators = list(_SEPARATOR.finditer(cleaned))
    if separators and brand in cleaned[separators[-1].end() :].lower():
        return cleaned[: separators[-1].start()].strip()
    return cleaned.strip()


def url_from_title(window_title: str, application: str) -> str | None:
    """The address a browser window's title shows, if it shows one.

    Browsers put the page's <title> in the window title, not its address; they show the address instead only
    for pages without a title ("example.org/page - Google Chrome"). So this finds an address for some pages
    and None for most: it never guesses one from a page title.
    """
    if browser_name(application) is None:
        return None
    title = page_title(window_title, application)
    found = _URL_IN_TITLE.search(title)
    if found:
        return found.group(0).rstrip(".,;)")
    host = _HOST_IN_TITLE.match(title)
    if host and (host.group(2) or host.group(1).lower() not in _FILE_EXTENSIONS):
        return title  # as the browser shows it: the scheme is not in the title, so none is invented
    return None
