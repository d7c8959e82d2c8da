"""A real SMTP server for the tests (aiosmtpd), registered in tests/conftest.py via pytest_plugins.

`smtp_server` (one per session) listens on a free loopback port in a thread of the test process
and keeps every message it accepts, parsed. The `smtp` fixture empties it and points this
process's email settings at it (Django's SMTP backend, no TLS); `smtp_server.worker_env()` gives a
Celery worker subprocess the same settings (EMAIL_URL, DEFAULT_FROM_EMAIL, SAFEGUARD_CONSOLE_URL).

Like a careful mail server, it stores a message only once it answers "250" to its DATA: when the
client goes away before that (a worker killed mid-send), the message is dropped. `stall_next_data()`
makes the next DATA wait before answering, so a test can kill the sender at exactly that point.
"""

import asyncio
import email
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"
CONSOLE_URL = "https://safeguard.test/console/"
FROM_ADDRESS = "safeguard@school.test"
STALL_SECONDS = 30.0  # far longer than any test waits: the stalled sender is killed, not waited for


@dataclass
class Received:
    """A message the server accepted: the envelope recipients and the parsed message."""

    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()

    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()

    def attachments(self) -> list:
        return list(self.message.iter_attachments())


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stall_armed: bool = False
    stalling: threading.Event = field(default_factory=threading.Event)
    dropped: int = 0  # DATA commands whose client went away before the server answered

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            stall, self.stall_armed = self.stall_armed, False
        if stall:
            self.stalling.set()
            try:
                await asyncio.sleep(STALL_SECONDS)
            except asyncio.CancelledError:  # the client's connection closed: aiosmtpd cancels us
                with self.lock:
                    self.dropped += 1
                raise
        message = email.message_from_bytes(envelope.original_content, policy=default_policy)
        with self.lock:
            self.received.append(Received(recipients=list(envelope.rcpt_tos), message=message))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: Handler

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()
            self.handler.stall_armed = False
            self.handler.dropped = 0
        self.handler.stalling.clear()

    def stall_next_data(self) -> threading.Event:
        """Make the next DATA wait (STALL_SECONDS) before answering; the event is set when it starts waiting."""
        with self.handler.lock:
            self.handler.stall_armed = True
        self.handler.stalling.clear()
        return self.handler.stalling

    @property
    def dropped(self) -> int:
        with self.handler.lock:
            return self.handler.dropped

    def wait_for(self, count: int, *, timeout: float = 30.0, log=None) -> list[Received]:
        """Wait until at least `count` messages arrived; fail with `log()` (e.g. the worker's log) if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.05)
        detail = f"\n{log()[-4000:]}" if log else ""
        pytest.fail(f"expected {count} email(s) within {timeout:.0f} s, got {len(self.messages)}{detail}")

    def settings(self) -> dict:
        """Django settings that send this process's email to the server."""
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": self.host,
            "EMAIL_PORT": self.port,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_TIMEOUT": 60,
            "DEFAULT_FROM_EMAIL": FROM_ADDRESS,
            "SAFEGUARD_CONSOLE_URL": CONSOLE_URL,
        }

    def worker_env(self) -> dict[str, str]:
        """The same settings for a worker subprocess, as environment variables."""
        return {
            "EMAIL_URL": f"smtp://{self.host}:{self.port}",
            "DEFAULT_FROM_EMAIL": FROM_ADDRESS,
            "SAFEGUARD_CONSOLE_URL": CONSOLE_URL,
        }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    handler = Handler()
    port = _free_port()
    controller = Controller(handler, hostname=HOST, port=port)
    controller.start()
    try:
        yield SmtpServer(host=HOST, port=port, handler=handler)
    finally:
        controller.stop()


@pytest.fixture
def smtp(smtp_server, settings) -> SmtpServer:
    """The session's SMTP server, emptied, with this process's email settings pointing at it."""
    smtp_server.clear()
    for name, value in smtp_server.settings().items():
        setattr(settings, name, value)
    yield smtp_server
    smtp_server.clear()
