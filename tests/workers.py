"""A real Celery worker for integration tests (registered in tests/conftest.py via pytest_plugins).

`celery_worker` starts `celery -A safeguard worker` as a subprocess against real Redis and the
test database, on a queue of its own: several engineers' test runs share one Redis, and a shared
queue would let one run's worker take another run's tasks (pointed at the wrong database). The
test process sends to that queue too (celery_app.conf.task_default_queue), and stops running
tasks eagerly while the worker is up.

A second process can only see the test database through a database server, so these tests need
PostgreSQL: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/sg_<name>`. On SQLite they fail
(not skip) with a message saying so; `make test` and CI always set it.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from safeguard.celery import app as celery_app

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
WORKER_START_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 20.0


def require_postgresql() -> None:
    """Fail (never skip) when the tests run on a database a second process or thread cannot share."""
    if connection.vendor != "postgresql":
        pytest.fail(
            "This test needs PostgreSQL: a worker process (or a second connection) must see the test "
            "database, which SQLite's in-memory test database does not allow. Run it with "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/sg_<yourname> (make test and CI set it).",
            pytrace=False,
        )


@pytest.fixture
def postgresql_transactional_db(transactional_db) -> None:
    """Committed transactions on PostgreSQL, for tests that use several connections at once."""
    require_postgresql()


def test_database_url() -> str:
    """DATABASE_URL naming the test database this session created (test_<name>), for a subprocess."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    return f"postgres://{credentials}@{host}:{port}/{quote(db['NAME'], safe='')}"


test_database_url.__test__ = False  # not a test, despite its name


@pytest.fixture(scope="session")
def celery_queue() -> str:
    """A queue name no other test session uses."""
    return f"safeguard-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class Worker:
    queue: str
    node: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _celery_command() -> list[str]:
    beside_python = Path(sys.executable).with_name("celery")
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which("celery")
    return [found] if found else [sys.executable, "-m", "celery"]


def _reset_producers() -> None:
    """Drop cached broker connections so the next send uses the current broker_url."""
    from kombu import pools

    # kombu keeps pools in a global registry keyed by broker URL: closing one but leaving it there
    # hands the closed pool back ("Acquire on closed pool") when REDIS_URL was already the broker.
    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task, then exit
    try:
        process.wait(timeout=WORKER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=WORKER_STOP_TIMEOUT)


@pytest.fixture
def celery_worker(transactional_db, settings, celery_queue, tmp_path) -> Iterator[Worker]:
    """A running `celery -A safeguard worker` consuming this session's queue, for one test.

    The worker shares the test's MEDIA_ROOT and database. Mark tests using it `integration`.
    """
    require_postgresql()
    node = f"{celery_queue}@localhost"
    log_path = tmp_path / "celery-worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "safeguard.settings",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": REDIS_URL,
        "CELERY_QUEUE": celery_queue,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CONN_MAX_AGE": "0",
        "LOG_LEVEL": "INFO",
    }
    command = [
        *_celery_command(),
        "-A",
        "safeguard",
        "worker",
        "--queues",
        celery_queue,
        "--hostname",
        node,
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    previous = {
        "broker_url": celery_app.conf.broker_url,
        "task_always_eager": celery_app.conf.task_always_eager,
        "task_default_queue": celery_app.conf.task_default_queue,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            command, cwd=django_settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    worker = Worker(queue=celery_queue, node=node, process=process, log_path=log_path)
    try:
        celery_app.conf.broker_url = REDIS_URL
        celery_app.conf.task_always_eager = False
        celery_app.conf.task_default_queue = celery_queue
        _reset_producers()
        _wait_until_ready(worker)
        yield worker
    finally:
        _stop(process)
        _delete_queue_keys(celery_queue)
        for key, value in previous.items():
            setattr(celery_app.conf, key, value)
        _reset_producers()


def _delete_queue_keys(queue: str) -> None:
    """Remove the queue's keys from Redis (its list and kombu's binding sets): no litter per session.

    The name is unique to this session, so matching on it cannot touch anyone else's keys.
    """
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _wait_until_ready(worker: Worker) -> None:
    """Ping the worker over the broker until it answers; fail with its log if it dies or is slow."""
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(f"The Celery worker exited with {worker.process.returncode}:\n{worker.log()[-4000:]}")
        try:
            replies = celery_app.control.ping(destination=[worker.node], timeout=1.0)
        except Exception as error:  # Redis unreachable: keep trying until the deadline
            last_error = error
            time.sleep(0.5)
            continue
        if any(worker.node in reply for reply in replies):
            return
    _stop(worker.process)
    detail = f" (last broker error: {last_error!r})" if last_error else ""
    pytest.fail(
        f"The Celery worker did not answer a ping within {WORKER_START_TIMEOUT:.0f} s{detail}:\n{worker.log()[-4000:]}"
    )
