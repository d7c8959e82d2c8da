"""The tray icon and its menu.

The menu is data (`TrayMenu.entries()`: label + handler) so it can be tested by calling the
handlers, and so the same actions appear wherever the platform can show them:

* pystray's menu where the backend has one (Windows' win32, GTK/AppIndicator on Linux);
* a small window of buttons when the icon is clicked, where the backend has no menu (pystray's
  plain X11 backend);
* nowhere, where there is no system tray at all (pystray cannot load, or no tray host owns the
  desktop's system-tray selection): one log line, and the agent carries on headless.

Items: Open Console, Confide…, Request Assistance, Personal Groups (read-only), Disable
Monitoring (staff PIN), Properties. There is deliberately no Quit: a pupil must not be able to
stop monitoring from the tray.

When the server's `confide_desktop_button` setting is on, a "Report a concern" button is also
shown on the desktop (and hidden again when the setting goes off).
"""

from __future__ import annotations

import logging
import os
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from safeguard_agent import __version__

if TYPE_CHECKING:
    from safeguard_agent.dialogs import DialogProcess
    from safeguard_agent.runtime import Agent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MenuEntry:
    key: str
    label: str
    handler: Callable[[], Any]
    submenu: Callable[[], list[str]] | None = None  # read-only names (Personal Groups)


class TrayMenu:
    """The tray's actions for one agent; each window is a child process (see dialogs.py)."""

    def __init__(
        self,
        agent: Agent,
        *,
        open_url: Callable[[str], Any] = webbrowser.open,
        env: dict[str, str] | None = None,
    ) -> None:
        self.agent = agent
        self.open_url = open_url
        self.env = env
        self.windows: list[DialogProcess] = []
        self.report_button: DialogProcess | None = None
        self._lock = threading.Lock()

    def entries(self) -> list[MenuEntry]:
        return [
            MenuEntry("open_console", "Open Console", self.open_console),
            MenuEntry("confide", "Confide…", self.confide),
            MenuEntry("assistance", "Request Assistance", self.request_assistance),
            MenuEntry("groups", "Personal Groups", self.personal_groups, submenu=self.group_names),
            MenuEntry("disable", "Disable Monitoring", self.disable_monitoring),
            MenuEntry("properties", "Properties", self.properties),
        ]

    # -- windows -------------------------------------------------------------------------------------

    def _open(
        self,
        kind: str,
        on_request: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        init: dict[str, Any] | None = None,
    ) -> DialogProcess | None:
        from safeguard_agent.dialogs import DialogProcess, DialogsUnavailable

        try:
            window = DialogProcess(kind, on_request, init=init, env=self.env).start()
        except (DialogsUnavailable, OSError) as error:
            log.warning("Cannot show the %s window: %s", kind, error)
            return None
        with self._lock:
            self.windows = [w for w in self.windows if w.running]
            self.windows.append(window)
        return window

    def close_all(self) -> None:
        with self._lock:
            windows, self.windows = self.windows, []
        for window in windows:
            window.close()
        if self.report_button is not None:
            self.report_button.close()
            self.report_button = None

    # -- the handlers ----------------------------------------------------------------------------------

    def console_url(self) -> str:
        return self.agent.settings.get("console_url") or self.agent.enrolment.server.rstrip("/") + "/console/"

    def open_console(self) -> str:
        url = self.console_url()
        self.open_url(url)
        return url

    def confide(self) -> DialogProcess | None:
        return self._open("confide", self._confide_request)

    def _confide_request(self, request: dict[str, Any]) -> dict[str, Any]:
        message = str(request.get("message") or "").strip()
        about = request.get("about")
        if request.get("action") != "confide" or not message or about not in ("me", "someone_else"):
            return {"ok": False, "message": "Please write your message first."}
        self.agent.submit_confide(message=message[:5000], about=about, anonymous=bool(request.get("anonymous")))
        return {"ok": True}

    def request_assistance(self) -> DialogProcess | None:
        return self._open("assistance", self._assistance_request)

    def _assistance_request(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("action") != "assistance":
            return {"ok": False, "message": "Unexpected request."}
        self.agent.submit_assistance(message=str(request.get("message") or "")[:5000])
        return {"ok": True}

    def group_names(self) -> list[str]:
        return list(self.agent.groups)

    def personal_groups(self) -> DialogProcess | None:
        rows = [["Group", name] for name in self.group_names()]
        return self._open(
            "info", init={"title": "Personal Groups", "rows": rows, "empty": "You are not in any groups."}
        )

    def disable_monitoring(self) -> DialogProcess | None:
        return self._open("pin", self._pause_request)

    def _pause_request(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            minutes = int(request.get("minutes") or 0)
        except (TypeError, ValueError):
            minutes = 0
        pin = str(request.get("pin") or "")
        if request.get("action") != "pause" or not pin or minutes <= 0:
            return {"ok": False, "message": "Type the staff PIN."}
        ok, message = self.agent.request_pause(pin=pin, minutes=minutes)
        return {"ok": ok, "message": message}

    def properties_rows(self) -> list[tuple[str, str]]:
        props = self.agent.properties()
        rows = [
            ("Version", __version__),
            ("Server", props["server"]),
            ("Device id", props["device_id"]),
            ("Last sync", props["last_sync"] or "never"),
            ("Last contact", props["last_contact"] or "never"),
            ("Policy version", (props["policy_version"] or "none")[:16]),
            ("Outbox", f"{props['outbox_depth']} waiting to be sent"),
        ]
        if props.get("paused_until"):
            rows.append(("Paused until", props["paused_until"]))
        return rows

    def properties(self) -> DialogProcess | None:
        return self._open("info", init={"title": "Safeguard properties", "rows": self.properties_rows()})

    def panel(self) -> DialogProcess | None:
        """The menu as a window of buttons (for tray backends without menus)."""
        entries = {entry.key: entry for entry in self.entries()}
        return self._open(
            "panel",
            lambda request: self._menu_request(request, entries),
            init={"actions": [[key, entry.label] for key, entry in entries.items()]},
        )

    def _menu_request(self, request: dict[str, Any], entries: dict[str, MenuEntry]) -> dict[str, Any]:
        entry = entries.get(str(request.get("key")))
        if request.get("action") != "menu" or entry is None:
            return {"ok": False}
        entry.handler()
        return {"ok": True}

    # -- the desktop button ------------------------------------------------------------------------------

    def sync_report_button(self) -> None:
        """Show or hide "Report a concern" to follow the server's confide_desktop_button setting."""
        wanted = bool(self.agent.settings.get("confide_desktop_button"))
        showing = self.report_button is not None and self.report_button.running
        if wanted and not showing:
            entries = {"confide": MenuEntry("confide", "Confide…", self.confide)}
            self.report_button = self._open("report-button", lambda request: self._menu_request(request, entries))
        elif not wanted and self.report_button is not None:
            self.report_button.close()
            self.report_button = None

    def on_agent(self, what: str) -> None:
        if what == "config":
            try:
                self.sync_report_button()
            except Exception:
                log.exception("Could not update the Report a concern button")
        elif what == "stopping":
            self.close_all()


def icon_image(size: int = 64) -> Any:
    """A shield in the school-safe blue, drawn with Pillow (no image file to ship)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    s = size / 64
    shield = [(32 * s, 4 * s), (58 * s, 14 * s), (54 * s, 40 * s), (32 * s, 60 * s), (10 * s, 40 * s), (6 * s, 14 * s)]
    draw.polygon(shield, fill=(29, 79, 145, 255), outline=(255, 255, 255, 255))
    draw.line(
        [(20 * s, 32 * s), (29 * s, 41 * s), (45 * s, 22 * s)], fill=(255, 255, 255, 255), width=max(2, int(5 * s))
    )
    return image


def system_tray_available() -> tuple[bool, str]:
    """Whether a tray host is there to dock into (X11: an owner of _NET_SYSTEM_TRAY_S<n>)."""
    if os.name == "nt":
        return True, "Windows notification area"
    if not os.environ.get("DISPLAY"):
        return False, "no X display"
    try:
        from Xlib import X, display
    except ImportError as error:
        return False, f"python-xlib is missing ({error})"
    try:
        connection = display.Display()
    except Exception as error:
        return False, f"cannot open the display ({type(error).__name__})"
    try:
        atom = connection.intern_atom(f"_NET_SYSTEM_TRAY_S{connection.get_default_screen()}")
        owner = connection.get_selection_owner(atom)
        if owner == X.NONE:
            return False, "no system tray on this desktop"
        return True, "system tray found"
    finally:
        connection.close()


class _DockFailure(logging.Filter):
    """pystray logs 'Failed to dock icon' with a traceback each time; say it once, plainly."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "Failed to dock icon" in record.getMessage():
            if not self.seen:
                self.seen = True
                log.warning("The system tray went away: the agent carries on without its icon.")
            return False
        return True


def build_icon(menu: TrayMenu) -> Any:
    """The pystray Icon for `menu` (raises whatever pystray raises where it cannot load)."""
    import pystray

    def action(handler: Callable[[], Any]) -> Callable[..., None]:
        def run(icon: Any = None, item: Any = None) -> None:
            try:
                handler()
            except Exception:
                log.exception("Tray action failed")

        return run

    items = []
    for entry in menu.entries():
        if entry.submenu is not None:
            names = entry.submenu

            def group_items(names: Callable[[], list[str]] = names) -> list[Any]:
                found = names()
                if not found:
                    return [pystray.MenuItem("(no groups)", None, enabled=False)]
                return [pystray.MenuItem(name, None, enabled=False) for name in found]

            items.append(pystray.MenuItem(entry.label, pystray.Menu(group_items)))
        else:
            items.append(pystray.MenuItem(entry.label, action(entry.handler)))
    # Clicking the icon opens the button window: the menu for backends that have none.
    items.append(pystray.MenuItem("Safeguard", action(menu.panel), default=True, visible=False))
    return pystray.Icon("safeguard-agent", icon_image(), f"Safeguard {__version__}", menu=pystray.Menu(*items))


def _enable_clicks(icon: Any) -> None:
    """pystray 0.19's plain X11 backend never selects button presses on its icon window, so a click
    would never reach it (and that backend has no menu either). Ask the X server for them, so a click
    opens the panel of buttons. Other backends handle clicks themselves."""
    if type(icon).__module__ != "pystray._xorg":
        return
    window, connection = getattr(icon, "_window", None), getattr(icon, "_display", None)
    if window is None or connection is None:
        return
    from Xlib import X

    window.change_attributes(event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
    connection.flush()


def icon_docked(icon: Any) -> bool | None:
    """X11 only: whether the icon's window sits inside a tray (its parent is not the root window)."""
    window = getattr(icon, "_window", None)
    if type(icon).__module__ != "pystray._xorg" or window is None:
        return None
    from Xlib import display

    connection = display.Display()
    try:
        tree = connection.create_resource_object("window", window.id).query_tree()
        return tree.parent.id != tree.root.id
    except Exception:  # the window is gone (the icon stopped)
        return False
    finally:
        connection.close()


def _keep_docked(icon: Any, stop: threading.Event, every: float = 3.0) -> None:
    """Dock again when the X11 icon is not in a tray although one exists: a dock request sent while
    the tray host was still starting is lost, and a tray host that restarts forgets its icons."""
    while not stop.wait(every):
        try:
            if icon_docked(icon) is False and system_tray_available()[0]:
                log.info("Docking the tray icon again.")
                icon.visible = False
                icon.visible = True
        except Exception as error:
            log.debug("re-docking failed: %s", error)


def run_tray(agent: Agent, *, block: bool = True, menu: TrayMenu | None = None) -> bool:
    """Show the tray icon (and the desktop button when enabled). Returns False where there is no tray.

    With `block`, runs pystray's loop until the agent is asked to stop; otherwise returns once it
    is shown. Where there is no tray the agent carries on headless (the desktop button, when
    enabled, still shows wherever there is a display).
    """
    menu = menu or TrayMenu(agent)
    agent.listeners.append(menu.on_agent)
    menu.sync_report_button()
    available, why = system_tray_available()
    if not available:
        log.warning("No system tray here (%s): running without a tray icon.", why)
        return False
    try:
        icon = build_icon(menu)
    except Exception as error:  # pystray raises Xlib errors (not ImportError) without a display
        log.warning("The tray icon cannot be shown (%s: %s): running without it.", type(error).__name__, error)
        return False
    _enable_clicks(icon)
    if type(icon).__module__ == "pystray._xorg":
        threading.Thread(
            target=_keep_docked, args=(icon, agent.stop_requested), name="safeguard-tray-dock", daemon=True
        ).start()
    dock_failure = _DockFailure()
    for name in ("pystray", "pystray._base", "pystray._xorg"):
        logging.getLogger(name).addFilter(dock_failure)
    agent.tray_icon = icon
    if block:

        def stop_with_agent(icon: Any) -> None:
            icon.visible = True
            agent.stop_requested.wait()
            icon.stop()

        icon.run(setup=stop_with_agent)
    else:
        # Not run_detached(): pystray 0.19's X11 backend starts a second setup thread there that
        # never ends and keeps the process from exiting.
        threading.Thread(
            target=icon.run, kwargs={"setup": lambda icon: setattr(icon, "visible", True)}, daemon=True
        ).start()
    return True
