"""The tray menu: each item does what it says, on a real X display (Xvfb), with real windows.

The menu is data plus handlers; these tests call the handlers as the tray would, then work the
windows they open with xdotool, and check what reached the agent (its outbox, the server stub).
The icon itself is tested where a system tray exists (trayer on Xvfb) and where none does.
"""

import json
import logging
import re
import stat
import subprocess
import time
import webbrowser
from datetime import UTC, datetime, timedelta

import pytest
from http_stub import Reply, StubServer

from safeguard_agent.config import Enrolment, save_enrolment
from safeguard_agent.runtime import Agent
from safeguard_agent.sync import DEFAULT_SETTINGS
from safeguard_agent.testing import DisplayError, XvfbDisplay, find_window, focus, press_keys, type_text
from safeguard_agent.tray import TrayMenu, icon_docked, run_tray, system_tray_available

API = "/api/v1/agent/"


def wait_for(condition, timeout: float = 15.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


def window_exists(title: str) -> bool:
    try:
        find_window(title, timeout=5)
    except DisplayError:
        return False
    return True


@pytest.fixture(scope="module")
def display():
    with XvfbDisplay() as xvfb:
        yield xvfb


@pytest.fixture
def server():
    with StubServer() as stub:
        yield stub


@pytest.fixture
def agent(tmp_path, server):
    save_enrolment(tmp_path, Enrolment(server=server.url, device_id="dev-7", token="tok"))
    made = Agent(tmp_path, monitors=False, evidence=False, hostname="LAB1-PC07")
    made.sync.config = {"version": "v9", "policies": [], "settings": {**DEFAULT_SETTINGS}}
    yield made
    made.outbox.close()


@pytest.fixture
def menu(agent, display):
    tray = TrayMenu(agent, env=display.env())
    yield tray
    tray.close_all()


def test_the_menu_has_the_six_items_in_order_and_no_quit(menu):
    assert [(entry.key, entry.label) for entry in menu.entries()] == [
        ("open_console", "Open Console"),
        ("confide", "Confide…"),
        ("assistance", "Request Assistance"),
        ("groups", "Personal Groups"),
        ("disable", "Disable Monitoring"),
        ("properties", "Properties"),
    ]


def test_open_console_opens_the_console_url_in_the_browser(menu, agent, tmp_path, monkeypatch):
    """Through the real webbrowser module, with $BROWSER pointing at a script that notes the address."""
    noted = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" > {noted}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("BROWSER", f"{script} %s")
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    agent.sync.config["settings"]["console_url"] = "https://safeguard.example.sch.uk/console/"

    assert menu.open_console() == "https://safeguard.example.sch.uk/console/"
    assert wait_for(lambda: noted.exists() and noted.read_text().strip()) == "https://safeguard.example.sch.uk/console/"

    agent.sync.config["settings"]["console_url"] = ""
    assert menu.console_url() == agent.enrolment.server + "/console/"


def test_confide_sent_anonymously_from_the_tray_carries_no_user(menu, agent, caplog):
    caplog.set_level(logging.DEBUG)
    window = menu.confide()
    focus(find_window("Confide - tell a member of staff"))
    type_text("a boy in year 8 is being hit")
    press_keys("alt+e", "alt+n", "ctrl+Return")

    assert window.wait(20) == 0
    [item] = agent.outbox.peek("confide")
    assert item.payload["anonymous"] is True
    assert item.payload["about"] == "someone_else"
    assert item.payload["message"] == "a boy in year 8 is being hit"
    assert "user" not in item.payload
    assert "a boy in year 8" not in caplog.text and agent.user() not in caplog.text


def test_request_assistance_queues_a_request_with_the_user(menu, agent):
    window = menu.request_assistance()
    focus(find_window("Request assistance"))
    type_text("printer jammed")
    press_keys("ctrl+Return")

    assert window.wait(20) == 0
    [item] = agent.outbox.peek("assistance")
    assert item.payload["message"] == "printer jammed"
    assert item.payload["user"] == agent.user()


def test_disable_monitoring_checks_the_pin_with_the_server_and_pauses(menu, agent, server):
    until = datetime.now(UTC) + timedelta(minutes=30)
    server.on("POST", API + "pause", Reply(200, {"monitoring_paused_until": until.isoformat()}))
    window = menu.disable_monitoring()
    focus(find_window("Disable monitoring"))
    type_text("4821")
    press_keys("Return")

    wait_for(lambda: agent.paused, message="the pause")
    assert server.sent(API + "pause")[0].json()["pin"] == "4821"
    assert window.wait(20) == 0  # it says so, then closes


def test_a_wrong_pin_leaves_monitoring_on(menu, agent, server):
    server.on("POST", API + "pause", Reply(403, {"error": "Wrong PIN.", "fields": {"pin": ["incorrect"]}}))
    window = menu.disable_monitoring()
    focus(find_window("Disable monitoring"))
    type_text("0000")
    press_keys("Return")

    wait_for(lambda: server.sent(API + "pause"), message="the PIN check")
    assert window.requests == [{"action": "pause", "pin": "0000", "minutes": 30}]
    assert not agent.paused
    assert window.running


def test_personal_groups_lists_the_groups_from_the_heartbeat(menu, agent):
    agent.groups = ["Year 9", "Chess club"]
    assert menu.group_names() == ["Year 9", "Chess club"]
    window = menu.personal_groups()
    assert window_exists("Personal Groups")
    assert window.init["rows"] == [["Group", "Year 9"], ["Group", "Chess club"]]


def test_properties_shows_version_server_device_sync_and_outbox(menu, agent):
    agent.outbox.put("event", {"n": 1})
    rows = dict(menu.properties_rows())
    assert rows["Server"] == agent.enrolment.server
    assert rows["Device id"] == "dev-7"
    assert rows["Outbox"] == "1 waiting to be sent"
    assert rows["Last sync"] == "never"
    window = menu.properties()
    assert window_exists("Safeguard properties")
    assert window.running


def test_the_panel_runs_the_item_chosen(menu):
    window = menu.panel()
    assert window_exists("Safeguard") and window.running
    entries = {entry.key: entry for entry in menu.entries()}
    opened = menu._menu_request({"action": "menu", "key": "properties"}, entries)
    assert opened == {"ok": True}
    assert window_exists("Safeguard properties")
    assert menu._menu_request({"action": "menu", "key": "quit"}, entries) == {"ok": False}


def test_the_report_a_concern_button_follows_the_server_setting(menu, agent, display):
    menu.sync_report_button()
    assert menu.report_button is None

    agent.sync.config["settings"]["confide_desktop_button"] = True
    menu.on_agent("config")
    button = wait_for(lambda: menu.report_button)
    wid = find_window("Report a concern")
    geometry = display.xdotool("getwindowgeometry", str(wid))
    x, y = map(int, re.search(r"Position: (\d+),(\d+)", geometry).groups())
    display.xdotool("mousemove", str(x + 10), str(y + 10), "click", "1")
    assert window_exists("Confide - tell a member of staff")  # the button opens Confide

    agent.sync.config["settings"]["confide_desktop_button"] = False
    menu.on_agent("config")
    assert menu.report_button is None
    assert button.wait(10) is not None


def test_without_a_system_tray_the_agent_carries_on_with_one_log_line(agent, display, caplog):
    assert system_tray_available() == (False, "no system tray on this desktop")
    with caplog.at_level(logging.WARNING):
        assert run_tray(agent, block=False) is False
    assert [r.getMessage() for r in caplog.records if "tray" in r.getMessage()] == [
        "No system tray here (no system tray on this desktop): running without a tray icon."
    ]


def test_with_a_system_tray_the_icon_docks_and_a_click_opens_the_menu_window(agent, display):
    host = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--width", "10", "--height", "32"]
        + ["--transparent", "false", "--SetDockType", "false"],
        env=display.env(),
        stderr=subprocess.DEVNULL,
    )
    menu = TrayMenu(agent, env=display.env())
    try:
        wait_for(lambda: system_tray_available()[0], message="trayer to own the system tray")
        assert run_tray(agent, block=False, menu=menu) is True
        icon = agent.tray_icon
        wait_for(lambda: icon_docked(icon), message="the icon to dock")
        geometry = display.xdotool("getwindowgeometry", str(icon._window.id))
        x, y = map(int, re.search(r"Position: (\d+),(\d+)", geometry).groups())
        display.xdotool("mousemove", str(x + 5), str(y + 5), "click", "1")
        assert window_exists("Safeguard")  # the panel of menu buttons
        assert json.dumps(menu.windows[-1].init["actions"][0]) == '["open_console", "Open Console"]'
    finally:
        if agent.tray_icon is not None:
            agent.tray_icon.stop()
        menu.close_all()
        host.terminate()
        host.wait(10)
