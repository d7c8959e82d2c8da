"""The agent's windows, in tkinter (the standard library, the same on Windows and Linux).

* ConfideDialog    a pupil tells staff about a worry: message, "about me / about someone else",
                   "send anonymously";
* AssistanceDialog asks staff for help, with an optional message;
* PinDialog        "Disable Monitoring": a member of staff types the PIN and picks how long;
* InfoDialog       read-only lists (Properties, Personal Groups);
* PanelWindow      every tray action as a button, for tray backends without menus;
* ReportButton     the optional "Report a concern" button on the desktop.

Tk must only be touched from one thread, so `DialogHost` owns a hidden Tk root in a thread of its
own and runs everything there (`host.call(fn)` returns a Future). The tray's menu callbacks, which
pystray runs on its own thread, go through the host; so do the tests, which fill in the widgets
and press the buttons programmatically (`dialog.send()` is what the Send button runs).

Nothing typed into these windows is logged: Confide messages go straight to the outbox, and an
anonymous report carries no user at all.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)

MAX_MESSAGE = 5000
PAUSE_CHOICES = [("15 minutes", 15), ("30 minutes", 30), ("1 hour", 60), ("2 hours", 120), ("4 hours", 240)]
CLOSE_AFTER_MS = 4000


class DialogsUnavailable(RuntimeError):
    """No display (or no Tk) to draw windows on."""


class DialogHost:
    """A hidden Tk root running its mainloop in a dedicated thread; every dialog is made there."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.root: Any = None
        self.error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> DialogHost:
        """Start the Tk thread; raises DialogsUnavailable where Tk cannot open a window."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._main, name="safeguard-dialogs", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise DialogsUnavailable("the dialog thread did not start in time")
        if self.error is not None:
            raise DialogsUnavailable(f"{type(self.error).__name__}: {self.error}")
        return self

    def _main(self) -> None:
        try:
            import tkinter

            self.root = tkinter.Tk()
            self.root.withdraw()
            self.root.title("Safeguard")
        except Exception as error:  # TclError "no display name", ImportError without Tk
            self.error = error
            self._ready.set()
            return
        self.root.after(20, self._pump)
        self._ready.set()
        self.root.mainloop()
        try:
            self.root.destroy()
        except Exception:
            log.debug("Tk root already gone", exc_info=True)

    def _pump(self) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                break
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as error:
                future.set_exception(error)
        if self.root is not None:
            self.root.after(20, self._pump)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.error is None

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the Tk thread; its result (or exception) arrives in the Future."""
        future: Future = Future()
        if not self.running:
            future.set_exception(DialogsUnavailable("the dialog host is not running"))
            return future
        self._calls.put((fn, future))
        return future

    def run(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        return self.call(fn).result(timeout)

    def stop(self) -> None:
        if self.running:
            self.call(self.root.quit)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- the dialogs, made on the Tk thread ---------------------------------------------------------

    def show_confide(self, on_send: Callable[..., Any]) -> Future:
        return self.call(lambda: ConfideDialog(self.root, on_send))

    def show_assistance(self, on_send: Callable[..., Any]) -> Future:
        return self.call(lambda: AssistanceDialog(self.root, on_send))

    def show_pin(self, on_submit: Callable[..., tuple[bool, str]]) -> Future:
        return self.call(lambda: PinDialog(self.root, on_submit))

    def show_info(self, title: str, rows: list[tuple[str, str]], *, empty: str = "") -> Future:
        return self.call(lambda: InfoDialog(self.root, title, rows, empty=empty))

    def show_panel(self, actions: list[tuple[str, Callable[[], Any]]]) -> Future:
        return self.call(lambda: PanelWindow(self.root, actions))

    def show_report_button(self, on_click: Callable[[], Any]) -> Future:
        return self.call(lambda: ReportButton(self.root, on_click))


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

    def close_later(self, ms: int = CLOSE_AFTER_MS) -> None:
        self.window.after(ms, self.close)


class ConfideDialog(_Dialog):
    """Confide: a worry for staff, about the pupil or someone else, with their name or without."""

    def __init__(self, master: Any, on_send: Callable[..., Any]) -> None:
        super().__init__(master, "Confide – tell a member of staff")
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
        ttk.Radiobutton(self.frame, text="It is about me", variable=self.about, value="me").grid(
            row=2, column=0, sticky="w"
        )
        ttk.Radiobutton(self.frame, text="It is about someone else", variable=self.about, value="someone_else").grid(
            row=2, column=1, sticky="w"
        )
        self.anonymous = tk.BooleanVar(self.window, value=False)
        ttk.Checkbutton(self.frame, text="Send anonymously (your name is not sent)", variable=self.anonymous).grid(
            row=3, column=0, columnspan=2, sticky="w", pady=(6, 0)
        )
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
        self._status_line(3)
        self._centre()

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
