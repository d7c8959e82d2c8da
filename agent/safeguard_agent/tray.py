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
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from safeguard_agent import __version__

if TYPE_CHECKING:
    from safeguard_agent.dialogs import DialogHost
    from safeguard_agent.runtime import Agent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MenuEntry:
    key: str
    label: str
    handler: Callable[[], Any]
    submenu: Callable[[], list[str]] | None = None  # read-only names (Personal Groups)


class TrayMenu:
    """The tray's actions for one agent. `ui` shows the dialogs (None: no display for them)."""

    def __init__(
        self,
        agent: Agent,
        ui: DialogHost | None = None,
        *,
        open_url: Callable[[str], Any] = webbrowser.open,
    ) -> None:
        self.agent = agent
        self.ui = ui
        self.open_url = open_url
        self.report_button: Any = None

    def entries(self) -> list[MenuEntry]:
        return [
            MenuEntry("open_console", "Open Console", self.open_console),
            MenuEntry("confide", "Confide…", self.confide),
            MenuEntry("assistance", "Request Assistance", self.request_assistance),
            MenuEntry("groups", "Personal Groups", self.personal_groups, submenu=self.group_names),
            MenuEntry("disable", "Disable Monitoring", self.disable_monitoring),
            MenuEntry("properties", "Properties", self.properties),
        ]

    # -- the handlers ----------------------------------------------------------------------------------

    def console_url(self) -> str:
        return self.agent.settings.get("console_url") or self.agent.enrolment.server.rstrip("/") + "/console/"

    def open_console(self) -> str:
        url = self.console_url()
        self.open_url(url)
        return url

    def _need_ui(self, what: str) -> bool:
        if self.ui is None or not self.ui.running:
            log.warning("Cannot show %s: there is no display for windows.", what)
            return False
        return True

    def confide(self) -> Any:
        if not self._need_ui("the Confide window"):
            return None
        return self.ui.show_confide(self.agent.submit_confide).result(10)

    def request_assistance(self) -> Any:
        if not self._need_ui("the assistance window"):
            return None
        return self.ui.show_assistance(self.agent.submit_assistance).result(10)

    def group_names(self) -> list[str]:
        return list(self.agent.groups)

    def personal_groups(self) -> Any:
        names = self.group_names()
        if not self._need_ui("Personal Groups"):
            return names
        return self.ui.show_info(
            "Personal Groups", [("Group", name) for name in names], empty="You are not in any groups."
        ).result(10)

    def disable_monitoring(self) -> Any:
        if not self._need_ui("the PIN window"):
            return None
        return self.ui.show_pin(self.agent.request_pause).result(10)

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

    def properties(self) -> Any:
        rows = self.properties_rows()
        if not self._need_ui("Properties"):
            return rows
        return self.ui.show_info("Safeguard properties", rows).result(10)

    def panel(self) -> Any:
        """The menu as a window of buttons (for tray backends without menus)."""
        if not self._need_ui("the Safeguard window"):
            return None
        return self.ui.show_panel([(entry.label, entry.handler) for entry in self.entries()]).result(10)

    # -- the desktop button ------------------------------------------------------------------------------

    def sync_report_button(self) -> None:
        """Show or hide "Report a concern" to follow the server's confide_desktop_button setting."""
        wanted = bool(self.agent.settings.get("confide_desktop_button"))
        if self.ui is None or not self.ui.running:
            return
        if wanted and (self.report_button is None or self.report_button.closed):
            self.report_button = self.ui.show_report_button(self.confide_from_button).result(10)
        elif not wanted and self.report_button is not None and not self.report_button.closed:
            self.ui.run(self.report_button.close)
            self.report_button = None

    def confide_from_button(self) -> None:
        # The button runs on the Tk thread: open the dialog there directly (waiting on a Future
        # from the Tk thread would deadlock).
        from safeguard_agent.dialogs import ConfideDialog

        ConfideDialog(self.ui.root, self.agent.submit_confide)

    def on_agent(self, what: str) -> None:
        if what == "config":
            try:
                self.sync_report_button()
            except Exception:
                log.exception("Could not update the Report a concern button")


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


def run_tray(agent: Agent, *, ui: DialogHost | None = None, block: bool = True) -> bool:
    """Show the tray icon (and the desktop button when enabled). Returns False where there is no tray.

    With `block`, runs pystray's loop until the agent stops; otherwise returns once it is shown.
    Windows need a display: without one, the agent runs headless and this says so once.
    """
    from safeguard_agent.dialogs import DialogHost, DialogsUnavailable

    if ui is None:
        try:
            ui = DialogHost().start()
        except DialogsUnavailable as error:
            log.warning("No windows can be shown here (%s): running headless.", error)
            ui = None
    menu = TrayMenu(agent, ui)
    agent.listeners.append(menu.on_agent)
    if ui is not None:
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
        icon.run_detached()
        icon.visible = True
    return True
