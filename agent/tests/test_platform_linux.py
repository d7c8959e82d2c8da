"""The Linux/X11 probe against a real X server (Xvfb, no window manager) with real xterm windows."""

import os
import subprocess
import sys

import pytest

from safeguard_agent.platform import ProbeUnavailable, create_probe
from safeguard_agent.platform.linux_x11 import LinuxX11Probe, linux_user_name, xdg_user_folders
from safeguard_agent.testing import XvfbDisplay, focus, open_xterm, set_window_title

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def display():
    with XvfbDisplay() as xvfb:
        yield xvfb


@pytest.fixture(scope="module")
def xterms(display):
    """Two real xterm windows: {title: window id}."""
    return {title: open_xterm(title) for title in ("Homework notes", "Chat with friends")}


@pytest.fixture
def probe(display):
    probe = LinuxX11Probe()
    yield probe
    probe.close()


def xterm_pid(display, window_id: int) -> int:
    return int(display.xdotool("getwindowpid", str(window_id)))


def test_the_focused_xterm_is_the_foreground_window_with_its_title_and_program(display, xterms, probe):
    for title, window_id in xterms.items():
        focus(window_id)

        window = probe.foreground_window()

        assert window is not None
        assert (window.title, window.application, window.window_id) == (title, "xterm", window_id)
        assert window.pid == xterm_pid(display, window_id)
        assert os.path.basename(window.path) == "xterm"


def test_a_new_title_is_reported_at_once(xterms, probe):
    window_id = xterms["Chat with friends"]
    focus(window_id)

    set_window_title(window_id, "Chat with friends (3 new)")
    try:
        assert probe.foreground_window().title == "Chat with friends (3 new)"
    finally:
        set_window_title(window_id, "Chat with friends")


def test_an_unchanged_foreground_window_is_not_read_again_from_the_x_server(xterms, probe):
    """The keyboard monitor asks on every key: with no focus or title event since, the answer is the one
    already read (the same object), not four more X round trips."""
    focus(xterms["Homework notes"])
    first = probe.foreground_window()

    assert probe.foreground_window() is first

    focus(xterms["Chat with friends"])  # an event says it changed: read afresh
    assert probe.foreground_window().title == "Chat with friends"


def test_a_foreground_window_that_closes_is_not_reported_after_it_went(display, xterms, probe):
    from Xlib import X
    from Xlib import display as xdisplay

    connection = xdisplay.Display()
    try:
        window = connection.screen().root.create_window(0, 0, 200, 100, 0, X.CopyFromParent)
        window.set_wm_name("A window about to close")
        window.map()
        connection.sync()
        subprocess.run(["xdotool", "search", "--sync", "--name", "^A window about"], check=True, capture_output=True)
        focus(window.id)
        assert probe.foreground_window().title == "A window about to close"

        window.destroy()
        connection.sync()

        after = probe.foreground_window()
        assert after is None or after.window_id != window.id
    finally:
        connection.close()


def test_focus_on_an_inner_window_reports_its_top_level_window(display, xterms, probe):
    """xterm draws its text in a child window; focus given to it still names the xterm."""
    parent = xterms["Homework notes"]
    from Xlib import display as xdisplay

    connection = xdisplay.Display()
    try:
        children = connection.create_resource_object("window", parent).query_tree().children
    finally:
        connection.close()
    assert children, "xterm has an inner VT100 window"
    focus(children[0].id)

    window = probe.foreground_window()

    assert (window.title, window.window_id) == ("Homework notes", parent)


def test_a_window_manager_s_active_window_wins_over_the_input_focus(display, xterms, probe):
    """With a window manager, _NET_ACTIVE_WINDOW names the active window: the probe reads it first."""
    from Xlib import Xatom
    from Xlib import display as xdisplay

    focus(xterms["Homework notes"])
    connection = xdisplay.Display()
    root = connection.screen().root
    active = connection.intern_atom("_NET_ACTIVE_WINDOW")
    root.change_property(active, Xatom.WINDOW, 32, [xterms["Chat with friends"]])
    connection.sync()
    try:
        assert probe.foreground_window().title == "Chat with friends"
    finally:
        root.delete_property(active)
        connection.sync()
        connection.close()
    assert probe.foreground_window().title == "Homework notes"  # no WM again: the input focus


def test_a_window_without_net_wm_pid_is_traced_to_its_process_through_x_resource(display, probe):
    """Not every client sets _NET_WM_PID; the X-Resource extension still knows the client's pid."""
    from Xlib import X
    from Xlib import display as xdisplay

    connection = xdisplay.Display()
    try:
        window = connection.screen().root.create_window(0, 0, 200, 100, 0, X.CopyFromParent)
        window.set_wm_name("A window without a pid property")
        window.map()
        connection.sync()
        subprocess.run(["xdotool", "search", "--sync", "--name", "^A window without"], check=True, capture_output=True)
        focus(window.id)

        found = probe.foreground_window()

        assert found.title == "A window without a pid property"
        assert found.pid == os.getpid()
        assert found.application == os.path.basename(os.path.realpath(sys.executable))
    finally:
        connection.close()


def test_no_window_is_reported_when_nothing_has_the_focus(display, xterms, probe):
    focus(xterms["Homework notes"])
    from Xlib import X
    from Xlib import display as xdisplay

    connection = xdisplay.Display()
    try:
        connection.set_input_focus(X.PointerRoot, X.RevertToPointerRoot, X.CurrentTime)
        connection.sync()
        assert probe.foreground_window() is None
    finally:
        connection.close()


def test_the_xterms_are_applications_with_windows(display, xterms, probe):
    pids = probe.window_pids()

    assert {xterm_pid(display, window_id) for window_id in xterms.values()} <= pids


def test_processes_come_from_proc_with_program_names_and_paths(display, xterms, probe):
    processes = probe.running_processes()

    xterm = processes[xterm_pid(display, xterms["Homework notes"])]
    assert (xterm.name, os.path.basename(xterm.path)) == ("xterm", "xterm")
    assert processes[os.getpid()].path == os.path.realpath(sys.executable)
    assert len(processes) > 3


def test_x11_cannot_tell_a_password_field(xterms, probe):
    focus(xterms["Homework notes"])

    assert probe.focused_field_is_password() is None


def test_create_probe_returns_the_x11_probe_under_a_display(display):
    probe = create_probe()
    try:
        assert isinstance(probe, LinuxX11Probe)
    finally:
        probe.close()


def test_create_probe_says_why_without_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)

    with pytest.raises(ProbeUnavailable, match="no X display"):
        create_probe()


def test_create_probe_says_why_when_the_display_does_not_answer(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":4242")

    with pytest.raises(ProbeUnavailable, match=":4242"):
        create_probe()


# --- user name and folders ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("login", "domain", "expected"),
    [
        ("jsmith", "", "jsmith"),
        ("jsmith", "school", "SCHOOL\\jsmith"),
        ("jsmith@school.example", "", "SCHOOL\\jsmith"),
        ("jsmith@school.example", "KS", "KS\\jsmith"),
        ("SCHOOL\\jsmith", "", "SCHOOL\\jsmith"),
    ],
)
def test_the_linux_user_name_follows_the_domain_conventions(login, domain, expected):
    assert linux_user_name(login, domain=domain) == expected


def test_the_linux_user_name_defaults_to_the_account_running_the_agent(monkeypatch):
    import pwd

    monkeypatch.delenv("SAFEGUARD_USER_DOMAIN", raising=False)

    assert linux_user_name() == pwd.getpwuid(os.getuid()).pw_name


def test_user_folders_follow_user_dirs_and_skip_missing_or_home(tmp_path):
    home = tmp_path / "home"
    (home / "Desktop").mkdir(parents=True)
    (home / "Dokumente").mkdir()
    (home / "Downloads").mkdir()
    config = home / ".config"
    config.mkdir()
    (config / "user-dirs.dirs").write_text(
        '# written by xdg-user-dirs-update\nXDG_DOCUMENTS_DIR="$HOME/Dokumente"\nXDG_MUSIC_DIR="$HOME/"\n'
        'XDG_PICTURES_DIR="$HOME/Bilder"\n'
    )

    folders = xdg_user_folders(home, config)

    assert folders == [home / "Desktop", home / "Dokumente", home / "Downloads"]
