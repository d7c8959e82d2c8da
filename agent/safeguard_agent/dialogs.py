"""The agent's windows, in tkinter (the standard library, the same on Windows and Linux).

* ConfideDialog    a pupil tells staff about a worry: message, "about me / about someone else",
                   "send anonymously";
* AssistanceDialog asks staff for help, with an optional message;
* PinDialog        "Disable Monitoring": a member of staff types the PIN and picks how long;
* InfoDialog       read-only lists (Properties, Personal Groups);
* PanelWindow      every tray action as a button, for tray backends without menus;
* ReportButton     the optional "Report a concern" button on the desktop.

Each window runs in a child process of its own (`python -m safeguard_agent.dialogs KIND`), with Tk
in that process's main thread, as Tk wants. The agent never loads Tk: its keyboard hook and
senders are not slowed by a window, a crash in a window cannot take the agent down, and the
memory a window takes is given back when it closes. The child and the agent talk in JSON lines
over the child's stdin/stdout (`DialogProcess`): the agent sends an "init" line (title, rows,
actions), the child sends requests ({"action": "confide", ...}, {"action": "pause", ...},
{"action": "menu", "key": ...}) and gets one answer line for each.

Nothing typed into these windows is logged. A Confide message travels only through the pipe to
the agent and into its outbox; an anonymous report carries no user at all.

Keyboard: Ctrl+Enter sends; in Confide, Alt+M / Alt+E choose "about me" / "about someone else"
and Alt+N toggles "send anonymously".
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any

log = logging.getLogger(__name__)

MAX_MESSAGE = 5000
PAUSE_CHOICES = [("15 minutes", 15), ("30 minutes", 30), ("1 hour", 60), ("2 hours", 120), ("4 hours", 240)]
CLOSE_AFTER_MS = 4000
REPLY_TIMEOUT = 30.0
KINDS = ("confide", "assistance", "pin", "info", "panel", "report-button")


class DialogsUnavailable(RuntimeError):
    """No display to draw windows on."""


def display_available() -> bool:
    return os.name == "nt" or bool(os.environ.get("DISPLAY"))


# -- the agent's side -----------------------------------------------------------------------------------


class DialogProcess:
    """One window in a child process. `on_request(message) -> answer` runs on a reader thread."""

    def __init__(
        self,
        kind: str,
        on_request: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        *,
        init: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown dialog {kind!r}")
        self.kind = kind
        self.on_request = on_request
        self.init = init or {}
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.requests: list[dict[str, Any]] = []  # what the window asked for (never logged)
        self._reader: threading.Thread | None = None
        self._write_lock = threading.Lock()

    def start(self) -> DialogProcess:
        if not display_available():
            raise DialogsUnavailable("there is no display to show a window on")
        self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "safeguard_agent.dialogs", self.kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            encoding="utf-8",
            env=self.env,
        )
        self._send(self.init)
        self._reader = threading.Thread(target=self._read, name=f"safeguard-dialog-{self.kind}", daemon=True)
        self._reader.start()
        return self

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        with self._write_lock:
            try:
                self.process.stdin.write(json.dumps(message) + "\n")
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the window was closed meanwhile

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self.requests.append(message)
            answer: dict[str, Any] | None
            try:
                answer = self.on_request(message) if self.on_request is not None else {"ok": True}
            except Exception as error:
                log.error("The %s window's request failed: %s", self.kind, type(error).__name__)
                answer = {"ok": False, "message": "Sorry, something went wrong. Please tell a member of staff."}
            self._send(answer if answer is not None else {"ok": True})

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        if self.process is None:
            return None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def close(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# -- the window's side -------------------------------------------------------------------------------------


class _Channel:
    """The child's end: requests out on stdout, one answer back on stdin for each."""

    def __init__(self, stdin: IO[str], stdout: IO[str]) -> None:
        self._out = stdout
        self._answers: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.init: dict[str, Any] = {}
        first = stdin.readline()
        if first:
            try:
                self.init = json.loads(first)
            except ValueError:
                self.init = {}
        threading.Thread(target=self._read, args=(stdin,), daemon=True).start()

    def _read(self, stdin: IO[str]) -> None:
        for line in stdin:
            try:
                self._answers.put(json.loads(line))
            except ValueError:
                continue
        self._answers.put({"ok": False, "message": "The Safeguard agent is not running.", "closed": True})

    def ask(self, message: dict[str, Any], timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        with self._lock:
            self._out.write(json.dumps(message) + "\n")
            self._out.flush()
            try:
                return self._answers.get(timeout=timeout)
            except queue.Empty:
                return {"ok": False, "message": "The Safeguard agent did not answer."}


def _raise_unless_ok(answer: dict[str, Any]) -> None:
    if not answer.get("ok"):
        raise RuntimeError(answer.get("message") or "refused")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m safeguard_agent.dialogs KIND`: show one window, talk to the agent over stdin/stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in KINDS:
        print(f"usage: python -m safeguard_agent.dialogs {{{','.join(KINDS)}}}", file=sys.stderr)
        return 2
    kind = args[0]
    channel = _Channel(sys.stdin, sys.stdout)
    import tkinter

    try:
        root = tkinter.Tk()
    except tkinter.TclError as error:
        print(f"safeguard dialogs: no display ({error})", file=sys.stderr)
        return 3
    root.withdraw()
    root.title("Safeguard")
    init = channel.init

    def confide(**report: Any) -> None:
        _raise_unless_ok(channel.ask({"action": "confide", **report}))

    def assistance(**request: Any) -> None:
        _raise_unless_ok(channel.ask({"action": "assistance", **request}))

    def pause(**request: Any) -> tuple[bool, str]:
        answer = channel.ask({"action": "pause", **request})
        return bool(answer.get("ok")), str(answer.get("message") or "")

    def menu(key: str) -> Callable[[], None]:
        return lambda: channel.ask({"action": "menu", "key": key}, timeout=5)

    if kind == "confide":
        window: Any = ConfideDialog(root, confide)
    elif kind == "assistance":
        window = AssistanceDialog(root, assistance)
    elif kind == "pin":
        window = PinDialog(root, pause)
    elif kind == "info":
        rows = [(str(label), str(value)) for label, value in init.get("rows", [])]
        window = InfoDialog(root, str(init.get("title") or "Safeguard"), rows, empty=str(init.get("empty") or ""))
    elif kind == "panel":
        window = PanelWindow(root, [(str(label), menu(str(key))) for key, label in init.get("actions", [])])
    else:
        window = ReportButton(root, menu("confide"))
    window.on_close = root.quit
    root.mainloop()
    return 0


def _base():
    import tkinter
    from tkinter import ttk

    return tkinter, ttk


class _Dialog:
    """A Toplevel with a title, a padded frame, a status line and a close method."""

    def __init__(self, master: Any, title: str) -> None:
        tkinter, ttk = _base()
        self.tk = tkinter
        self.ttk = ttk
        self.window = tkinter.Toplevel(master)
        self.window.title(title)
        self.window.resizable(False, False)
        self.window.protocol("WM_DELETE_WINDOW", self.close)
        self.frame = ttk.Frame(self.window, padding=14)
        self.frame.grid(sticky="nsew")
        self.status = tkinter.StringVar(self.window, value="")
        self.closed = False
        self.on_close: Callable[[], Any] | None = None  # the child process ends its main loop here

    def _status_line(self, row: int) -> None:
        self.ttk.Label(self.frame, textvariable=self.status, wraplength=420, foreground="#1d4f91").grid(
            row=row, column=0, columnspan=2, sticky="w", pady=(8, 0)
        )

    def _centre(self) -> None:
        self.window.update_idletasks()
        width, height = self.window.winfo_reqwidth(), self.window.winfo_reqheight()
        x = max(0, (self.window.winfo_screenwidth() - width) // 2)
        y = max(0, (self.window.winfo_screenheight() - height) // 3)
        self.window.geometry(f"+{x}+{y}")
        self.window.lift()
        self.window.attributes("-topmost", True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.window.destroy()
            if self.on_close is not None:
                self.on_close()

    def close_later(self, ms: int = CLOSE_AFTER_MS) -> None:
        self.window.after(ms, self.close)


class ConfideDialog(_Dialog):
    """Confide: a worry for staff, about the pupil or someone else, with their name or without."""

    def __init__(self, master: Any, on_send: Callable[..., Any]) -> None:
        super().__init__(master, "Confide - tell a member of staff")
        tk, ttk = self.tk, self.ttk
        self.on_send = on_send
        self.sent = False
        ttk.Label(
            self.frame,
            text="Tell us what is worrying you. A member of staff who looks after pupils' safety will read it.",
            wraplength=420,
        ).grid(row=0, column=0, columnspan=2, sticky="w")
        self.message = tk.Text(self.frame, width=52, height=8, wrap="word")
        self.message.grid(row=1, column=0, columnspan=2, pady=8)
        self.about = tk.StringVar(self.window, value="me")
        ttk.Radiobutton(self.frame, text="It is about me", variable=self.about, value="me", underline=15).grid(
            row=2, column=0, sticky="w"
        )
        ttk.Radiobutton(
            self.frame, text="It is about someone else", variable=self.about, value="someone_else", underline=18
        ).grid(row=2, column=1, sticky="w")
        self.anonymous = tk.BooleanVar(self.window, value=False)
        ttk.Checkbutton(
            self.frame, text="Send anonymously (your name is not sent)", variable=self.anonymous, underline=7
        ).grid(row=3, column=0, columnspan=2, sticky="w", pady=(6, 0))
        # Keyboard: Alt+M / Alt+E for whom it is about, Alt+N for anonymous, Ctrl+Enter to send.
        self.window.bind("<Alt-m>", lambda event: self.about.set("me"))
        self.window.bind("<Alt-e>", lambda event: self.about.set("someone_else"))
        self.window.bind("<Alt-n>", lambda event: self.anonymous.set(not self.anonymous.get()))
        self.window.bind("<Control-Return>", lambda event: self.send())
        self.message.bind("<Control-Return>", lambda event: (self.send(), "break")[1])
        buttons = ttk.Frame(self.frame)
        buttons.grid(row=4, column=0, columnspan=2, sticky="e", pady=(10, 0))
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.close)
        self.cancel_button.grid(row=0, column=0, padx=4)
        self.send_button = ttk.Button(buttons, text="Send", command=self.send)
        self.send_button.grid(row=0, column=1)
        self._status_line(5)
        self._centre()
        self.message.focus_set()

    def set_message(self, text: str) -> None:
        self.message.delete("1.0", "end")
        self.message.insert("1.0", text)

    def send(self) -> bool:
        text = self.message.get("1.0", "end").strip()
        if not text:
            self.status.set("Please write your message first.")
            return False
        if len(text) > MAX_MESSAGE:
            self.status.set(f"Please keep your message under {MAX_MESSAGE} characters.")
            return False
        try:
            self.on_send(message=text, about=self.about.get(), anonymous=bool(self.anonymous.get()))
        except Exception as error:
            log.error("The Confide report could not be saved: %s", type(error).__name__)
            self.status.set("Sorry, your message could not be saved. Please tell a member of staff.")
            return False
        self.sent = True
        self.message.configure(state="disabled")
        self.send_button.state(["disabled"])
        self.status.set("Thank you. Your message has been sent and will be read by staff.")
        self.close_later()
        return True


class AssistanceDialog(_Dialog):
    """Request Assistance: ask staff to come and help, with an optional note."""

    def __init__(self, master: Any, on_send: Callable[..., Any]) -> None:
        super().__init__(master, "Request assistance")
        tk, ttk = self.tk, self.ttk
        self.on_send = on_send
        self.sent = False
        ttk.Label(
            self.frame, text="Ask a member of staff for help. You can add a note (optional).", wraplength=420
        ).grid(row=0, column=0, columnspan=2, sticky="w")
        self.message = tk.Text(self.frame, width=52, height=4, wrap="word")
        self.message.grid(row=1, column=0, columnspan=2, pady=8)
        buttons = ttk.Frame(self.frame)
        buttons.grid(row=2, column=0, columnspan=2, sticky="e")
        ttk.Button(buttons, text="Cancel", command=self.close).grid(row=0, column=0, padx=4)
        self.send_button = ttk.Button(buttons, text="Ask for help", command=self.send)
        self.send_button.grid(row=0, column=1)
        self.window.bind("<Control-Return>", lambda event: self.send())
        self.message.bind("<Control-Return>", lambda event: (self.send(), "break")[1])
        self._status_line(3)
        self._centre()
        self.message.focus_set()

    def set_message(self, text: str) -> None:
        self.message.delete("1.0", "end")
        self.message.insert("1.0", text)

    def send(self) -> bool:
        text = self.message.get("1.0", "end").strip()[:MAX_MESSAGE]
        try:
            self.on_send(message=text)
        except Exception as error:
            log.error("The assistance request could not be saved: %s", type(error).__name__)
            self.status.set("Sorry, your request could not be saved. Please ask a member of staff.")
            return False
        self.sent = True
        self.send_button.state(["disabled"])
        self.status.set("Your request has been sent. A member of staff will come to help.")
        self.close_later()
        return True


class PinDialog(_Dialog):
    """Disable Monitoring: the staff PIN and how long; the server checks the PIN."""

    def __init__(self, master: Any, on_submit: Callable[..., tuple[bool, str]]) -> None:
        super().__init__(master, "Disable monitoring")
        tk, ttk = self.tk, self.ttk
        self.on_submit = on_submit
        self.result: tuple[bool, str] | None = None
        self.done = threading.Event()
        self._answers: queue.SimpleQueue[tuple[bool, str]] = queue.SimpleQueue()
        ttk.Label(
            self.frame,
            text="For staff: type the staff PIN to pause monitoring on this computer.",
            wraplength=380,
        ).grid(row=0, column=0, columnspan=2, sticky="w")
        ttk.Label(self.frame, text="PIN").grid(row=1, column=0, sticky="w", pady=(8, 0))
        self.pin = tk.StringVar(self.window, value="")
        self.pin_entry = ttk.Entry(self.frame, textvariable=self.pin, show="•", width=18)
        self.pin_entry.grid(row=1, column=1, sticky="w", pady=(8, 0))
        ttk.Label(self.frame, text="Pause for").grid(row=2, column=0, sticky="w", pady=(6, 0))
        self.duration = tk.StringVar(self.window, value=PAUSE_CHOICES[1][0])
        self.duration_box = ttk.Combobox(
            self.frame,
            textvariable=self.duration,
            values=[label for label, _ in PAUSE_CHOICES],
            state="readonly",
            width=16,
        )
        self.duration_box.grid(row=2, column=1, sticky="w", pady=(6, 0))
        buttons = ttk.Frame(self.frame)
        buttons.grid(row=3, column=0, columnspan=2, sticky="e", pady=(10, 0))
        ttk.Button(buttons, text="Cancel", command=self.close).grid(row=0, column=0, padx=4)
        self.submit_button = ttk.Button(buttons, text="Pause monitoring", command=self.submit)
        self.submit_button.grid(row=0, column=1)
        self.window.bind("<Return>", lambda event: self.submit())
        self._status_line(4)
        self._centre()
        self.pin_entry.focus_set()

    @property
    def minutes(self) -> int:
        return dict(PAUSE_CHOICES).get(self.duration.get(), PAUSE_CHOICES[1][1])

    def submit(self) -> bool:
        pin = self.pin.get().strip()
        if not pin:
            self.status.set("Type the staff PIN.")
            return False
        self.done.clear()
        self.submit_button.state(["disabled"])
        self.status.set("Checking the PIN with the server…")
        minutes = self.minutes

        def ask() -> None:  # off the Tk thread: the server may take a few seconds to answer
            try:
                answer = self.on_submit(pin=pin, minutes=minutes)
            except Exception as error:
                answer = (False, f"Something went wrong ({type(error).__name__}).")
            self._answers.put(answer)

        threading.Thread(target=ask, name="safeguard-pin-check", daemon=True).start()
        self.window.after(50, self._poll)
        return True

    def _poll(self) -> None:
        try:
            ok, message = self._answers.get_nowait()
        except queue.Empty:
            if not self.closed:
                self.window.after(50, self._poll)
            return
        self.result = (ok, message)
        self.status.set(message)
        if ok:
            self.close_later(2500)
        else:
            self.pin.set("")
            self.submit_button.state(["!disabled"])
        self.done.set()


class InfoDialog(_Dialog):
    """A read-only list of label/value rows (Properties) or names (Personal Groups)."""

    def __init__(self, master: Any, title: str, rows: list[tuple[str, str]], *, empty: str = "") -> None:
        super().__init__(master, title)
        ttk = self.ttk
        self.rows = list(rows)
        if not rows and empty:
            ttk.Label(self.frame, text=empty).grid(row=0, column=0, sticky="w")
        for index, (label, value) in enumerate(rows):
            ttk.Label(self.frame, text=label, font=("TkDefaultFont", 10, "bold")).grid(
                row=index, column=0, sticky="nw", padx=(0, 12)
            )
            ttk.Label(self.frame, text=value, wraplength=380).grid(row=index, column=1, sticky="w")
        ttk.Button(self.frame, text="Close", command=self.close).grid(
            row=len(rows) + 1, column=1, sticky="e", pady=(10, 0)
        )
        self._centre()


class PanelWindow(_Dialog):
    """Every tray action as a button: the menu, for tray backends that cannot show one."""

    def __init__(self, master: Any, actions: list[tuple[str, Callable[[], Any]]]) -> None:
        super().__init__(master, "Safeguard")
        self.buttons = {}
        for index, (label, action) in enumerate(actions):
            button = self.ttk.Button(self.frame, text=label, command=action, width=28)
            button.grid(row=index, column=0, pady=2)
            self.buttons[label] = button
        self._centre()


class ReportButton:
    """A small always-on-top "Report a concern" button in the bottom-right corner of the desktop."""

    def __init__(self, master: Any, on_click: Callable[[], Any]) -> None:
        tkinter, ttk = _base()
        self.window = tkinter.Toplevel(master)
        self.window.title("Report a concern")
        self.window.overrideredirect(True)  # no title bar: it is a button, not a window
        self.window.attributes("-topmost", True)
        self.button = tkinter.Button(
            self.window,
            text="Report a concern",
            command=on_click,
            bg="#1d4f91",
            fg="white",
            activebackground="#163c70",
            activeforeground="white",
            relief="flat",
            padx=12,
            pady=6,
        )
        self.button.pack()
        self.on_close: Callable[[], Any] | None = None
        self.window.update_idletasks()
        width, height = self.window.winfo_reqwidth(), self.window.winfo_reqheight()
        x = self.window.winfo_screenwidth() - width - 16
        y = self.window.winfo_screenheight() - height - 56
        self.window.geometry(f"+{x}+{y}")
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.window.destroy()
            if self.on_close is not None:
                self.on_close()


if __name__ == "__main__":
    sys.exit(main())
