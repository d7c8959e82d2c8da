"""The tkinter dialogs on a real X display (Xvfb): driven through their widgets, with xdotool, and as
the child processes the agent runs them in."""

import subprocess
import sys
import time
import tkinter

import pytest

from safeguard_agent.dialogs import (
    AssistanceDialog,
    ConfideDialog,
    DialogProcess,
    DialogsUnavailable,
    InfoDialog,
    PanelWindow,
    PinDialog,
    ReportButton,
)
from safeguard_agent.testing import XvfbDisplay, find_window, focus, press_keys, type_text


@pytest.fixture(scope="module")
def display():
    with XvfbDisplay() as xvfb:
        yield xvfb


@pytest.fixture(scope="module")
def root(display):
    tk_root = tkinter.Tk()
    tk_root.withdraw()
    yield tk_root
    tk_root.destroy()


def pump(root, condition, timeout: float = 10.0):
    """Let Tk handle its events (as its main loop would) until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        root.update()
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the window")


class Calls:
    def __init__(self, result=None, error: Exception | None = None):
        self.calls: list[dict] = []
        self.result = result
        self.error = error

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if self.error:
            raise self.error
        return self.result


# -- Confide ---------------------------------------------------------------------------------------------


def test_confide_sends_the_message_about_and_anonymity(root):
    on_send = Calls()
    dialog = ConfideDialog(root, on_send)
    dialog.set_message("  Someone in my class is being bullied.  ")
    dialog.about.set("someone_else")
    dialog.anonymous.set(True)

    dialog.send_button.invoke()

    assert on_send.calls == [
        {"message": "Someone in my class is being bullied.", "about": "someone_else", "anonymous": True}
    ]
    assert dialog.sent
    assert dialog.status.get().startswith("Thank you")
    assert dialog.send_button.instate(["disabled"])
    dialog.close()


def test_confide_defaults_to_about_me_with_the_name(root):
    on_send = Calls()
    dialog = ConfideDialog(root, on_send)
    dialog.set_message("I feel unsafe at home")
    dialog.send()
    assert on_send.calls == [{"message": "I feel unsafe at home", "about": "me", "anonymous": False}]
    dialog.close()


@pytest.mark.parametrize(
    ("text", "reason"), [("   ", "write your message"), ("x" * 5001, "under 5000")], ids=["empty", "too-long"]
)
def test_confide_refuses_an_empty_or_overlong_message(root, text, reason):
    on_send = Calls()
    dialog = ConfideDialog(root, on_send)
    dialog.set_message(text)
    assert dialog.send() is False
    assert reason in dialog.status.get()
    assert on_send.calls == [] and not dialog.sent
    dialog.close()


def test_a_failure_to_save_is_said_and_nothing_counts_as_sent(root):
    dialog = ConfideDialog(root, Calls(error=OSError("disk full")))
    dialog.set_message("help")
    assert dialog.send() is False
    assert "could not be saved" in dialog.status.get()
    assert not dialog.sent
    dialog.close()


def test_confide_typed_and_sent_with_the_keyboard(root):
    """Real keystrokes through XTEST: the message, Alt+E, Alt+N and Ctrl+Enter."""
    on_send = Calls()
    dialog = ConfideDialog(root, on_send)
    pump(root, lambda: dialog.window.winfo_viewable())
    focus(find_window("Confide - tell a member of staff"))
    dialog.message.focus_force()
    pump(root, lambda: root.focus_get() == dialog.message)

    type_text("typed for real")
    pump(root, lambda: dialog.message.get("1.0", "end").strip() == "typed for real")
    press_keys("alt+e", "alt+n", "ctrl+Return")
    pump(root, lambda: on_send.calls)

    assert on_send.calls == [{"message": "typed for real", "about": "someone_else", "anonymous": True}]
    dialog.close()


# -- assistance and the PIN -------------------------------------------------------------------------------


def test_assistance_sends_an_optional_message(root):
    on_send = Calls()
    empty = AssistanceDialog(root, on_send)
    empty.send()
    noted = AssistanceDialog(root, on_send)
    noted.set_message("My login does not work")
    noted.send_button.invoke()
    assert on_send.calls == [{"message": ""}, {"message": "My login does not work"}]
    assert "member of staff will come" in noted.status.get()
    empty.close()
    noted.close()


def test_the_pin_dialog_asks_off_the_ui_thread_and_shows_the_answer(root):
    on_submit = Calls(result=(True, "Monitoring is paused until 10:30."))
    dialog = PinDialog(root, on_submit)
    dialog.pin.set("4821")
    dialog.duration.set("1 hour")

    dialog.submit_button.invoke()
    assert dialog.status.get() == "Checking the PIN with the server…"
    pump(root, dialog.done.is_set)

    assert on_submit.calls == [{"pin": "4821", "minutes": 60}]
    assert dialog.result == (True, "Monitoring is paused until 10:30.")
    assert dialog.status.get() == "Monitoring is paused until 10:30."
    dialog.close()


def test_a_refused_pin_clears_the_field_and_lets_staff_try_again(root):
    on_submit = Calls(result=(False, "Wrong PIN."))
    dialog = PinDialog(root, on_submit)
    dialog.pin.set("0000")
    dialog.submit()
    pump(root, dialog.done.is_set)
    assert dialog.pin.get() == ""
    assert dialog.submit_button.instate(["!disabled"])
    assert dialog.status.get() == "Wrong PIN."
    assert on_submit.calls == [{"pin": "0000", "minutes": 30}]  # the default: 30 minutes
    assert dialog.submit() is False  # an empty PIN is not sent at all
    assert dialog.status.get() == "Type the staff PIN."
    assert len(on_submit.calls) == 1
    dialog.close()


def test_the_pin_is_typed_hidden_and_submitted_with_enter(root):
    on_submit = Calls(result=(False, "Wrong PIN."))
    dialog = PinDialog(root, on_submit)
    pump(root, lambda: dialog.window.winfo_viewable())
    focus(find_window("Disable monitoring"))
    dialog.pin_entry.focus_force()
    pump(root, lambda: root.focus_get() == dialog.pin_entry)
    type_text("2468")
    pump(root, lambda: dialog.pin.get() == "2468")
    press_keys("Return")
    pump(root, dialog.done.is_set)
    assert on_submit.calls[0]["pin"] == "2468"
    assert dialog.pin_entry.cget("show") == "•"  # the PIN is never shown
    dialog.close()


# -- read-only windows, the panel and the desktop button --------------------------------------------------------


def labels(dialog) -> list[str]:
    return [child.cget("text") for child in dialog.frame.winfo_children() if child.winfo_class() == "TLabel"]


def test_info_dialog_lists_its_rows_or_says_it_is_empty(root):
    dialog = InfoDialog(root, "Safeguard properties", [("Version", "0.1.0"), ("Server", "https://s")])
    assert labels(dialog) == ["Version", "0.1.0", "Server", "https://s"]
    empty = InfoDialog(root, "Personal Groups", [], empty="You are not in any groups.")
    assert labels(empty) == ["You are not in any groups."]
    dialog.close()
    empty.close()


def test_the_report_button_sits_bottom_right_and_calls_its_action(root):
    clicked = []
    button = ReportButton(root, lambda: clicked.append(True))
    pump(root, lambda: button.window.winfo_viewable())
    right = button.window.winfo_rootx() + button.window.winfo_width()
    bottom = button.window.winfo_rooty() + button.window.winfo_height()
    assert button.window.winfo_screenwidth() - 40 <= right <= button.window.winfo_screenwidth()
    assert button.window.winfo_screenheight() - 100 <= bottom <= button.window.winfo_screenheight()
    button.button.invoke()
    assert clicked == [True]
    button.close()


def test_the_panel_has_a_button_per_action(root):
    ran = []
    panel = PanelWindow(root, [("Open Console", lambda: ran.append("console")), ("Confide…", lambda: ran.append("c"))])
    panel.buttons["Confide…"].invoke()
    assert ran == ["c"]
    assert set(panel.buttons) == {"Open Console", "Confide…"}
    panel.close()


# -- as child processes ------------------------------------------------------------------------------------------


def test_a_confide_window_in_its_own_process_reports_through_the_pipe(display):
    requests = []

    def answer(request):
        requests.append(request)
        return {"ok": True}

    window = DialogProcess("confide", answer, env=display.env()).start()
    wid = find_window("Confide - tell a member of staff")
    focus(wid)
    display.xdotool("mousemove", "--window", str(wid), "60", "80", "click", "1")  # into the message box
    type_text("sent from the child")
    press_keys("alt+n", "ctrl+Return")

    assert window.wait(20) == 0  # thanks, then it closes itself
    assert requests == [{"action": "confide", "message": "sent from the child", "about": "me", "anonymous": True}]


def test_a_pin_window_shows_the_agents_answer_and_stays_open_when_refused(display):
    asked = []

    def answer(request):
        asked.append(request)
        return {"ok": False, "message": "Wrong PIN."}

    window = DialogProcess("pin", answer, env=display.env()).start()
    focus(find_window("Disable monitoring"))
    type_text("1357")
    press_keys("Return")
    deadline = time.monotonic() + 15
    while not asked and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert asked == [{"action": "pause", "pin": "1357", "minutes": 30}]
    assert window.running  # a refused PIN leaves the window open for another try
    window.close()
    assert not window.running


def test_without_a_display_no_window_is_started(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(DialogsUnavailable):
        DialogProcess("confide").start()


def test_the_dialog_module_refuses_an_unknown_window():
    result = subprocess.run(
        [sys.executable, "-m", "safeguard_agent.dialogs", "bogus"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "usage" in result.stderr
