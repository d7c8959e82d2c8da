"""End-to-end agent tests: the real `safeguard-agent` against the Django app as a live test server.

The live server runs in this process (pytest-django `live_server`, transactional database); the
agent runs as a subprocess (`.venv/bin/safeguard-agent`) or, where a test needs to reach into it,
as an in-process `Agent`. Capture previews are made in-process (eager Celery): these tests are
about what the agent delivers, not about the preview worker.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from safeguard.celery import app as celery_app
from safeguard_agent.config import Enrolment, save_enrolment

AGENT = Path(sys.executable).with_name("safeguard-agent")


@pytest.fixture(autouse=True)
def _previews_in_process():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def read_db(query: Callable[[], object], *, attempts: int = 100) -> object:
    """Run a read while the live server writes. On SQLite the test database is one shared in-memory
    database with table locks and no busy timeout, so a read can meet "database table is locked":
    try again a moment later. (PostgreSQL never needs the retry.)"""
    from django.db import OperationalError

    for attempt in range(attempts):
        try:
            return query()
        except OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def wait_for(condition: Callable[[], object], *, timeout: float = 60.0, what: str = "the condition") -> object:
    """Poll `condition` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class AgentProcess:
    home: Path
    process: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def run_agent(tmp_path) -> Iterator[Callable[..., AgentProcess]]:
    """Start `safeguard-agent run --headless --config-dir HOME` (stopped at the end of the test)."""
    started: list[AgentProcess] = []

    def start(home: Path, *, env: dict[str, str] | None = None) -> AgentProcess:
        log_path = tmp_path / f"agent-{len(started)}.stderr"
        process = subprocess.Popen(  # noqa: S603
            [str(AGENT), "run", "--headless", "--config-dir", str(home)],
            stdout=subprocess.DEVNULL,
            stderr=log_path.open("w"),
            env={**os.environ, **(env or {})},
        )
        running = AgentProcess(home, process, log_path)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def enrol_home(home: Path, *, server: str, device, token: str) -> Path:
    """A state folder as `safeguard-agent enrol` leaves it, for a device made with the factories."""
    save_enrolment(home, Enrolment(server=server, device_id=str(device.uuid), token=token))
    return home
