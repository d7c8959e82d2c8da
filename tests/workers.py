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
from contextlib import contextmanager
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

    def wait_for_task(self, task_id: str, *, timeout: float = 30.0) -> str:
        """Wait until the worker logged the end of task `task_id` ("succeeded" or "raised"); return that line."""
        deadline = time.monotonic() + timeout
        marker = f"[{task_id}]"
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if marker in line and (" succeeded in " in line or " raised " in line):
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"task {task_id} did not finish within {timeout:.0f} s; worker log:\n{self.log()[-4000:]}")


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


def worker_environment(*, queue: str, media_root, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker subprocess: the test database, this queue, the test's media."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "safeguard.settings",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": REDIS_URL,
        "CELERY_QUEUE": queue,
        # Tasks in flight are kept under keys of this queue's own: a worker that restores
        # abandoned tasks (a restarted one, with a short visibility timeout) restores only ours.
        "CELERY_UNACKED_KEY": f"unacked-{queue}",
        "MEDIA_ROOT": str(media_root),
        "CONN_MAX_AGE": "0",
        "LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }


def start_worker(*, queue: str, media_root, log_path: Path, extra_env: dict[str, str] | None = None) -> Worker:
    """Start `celery -A safeguard worker` on `queue` and wait until it answers a ping.

    The caller must already send to `queue` from this process (`sending_to`), and stop the
    worker with `stop_worker` (or `kill_worker`). One prefork child: tasks run one at a time.
    """
    require_postgresql()
    node = f"{queue}@localhost"
    env = worker_environment(queue=queue, media_root=media_root, extra_env=extra_env)
    command = [
        *_celery_command(),
        "-A",
        "safeguard",
        "worker",
        "--queues",
        queue,
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
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            command, cwd=django_settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    worker = Worker(queue=queue, node=node, process=process, log_path=log_path)
    try:
        _wait_until_ready(worker)
    except BaseException:
        _stop(process)
        raise
    return worker


def stop_worker(worker: Worker) -> None:
    """Warm shutdown: the worker finishes its current task, then exits."""
    _stop(worker.process)


def _descendants(pid: int) -> list[int]:
    """The pids of a process's children, grandchildren, ... (from /proc)."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children_files = Path(f"/proc/{parent}/task").glob("*/children")
        for children_file in children_files:
            try:
                children = [int(child) for child in children_file.read_text().split()]
            except OSError:  # the process exited meanwhile
                continue
            found.extend(children)
            frontier.extend(children)
    return found


def kill_worker(worker: Worker) -> None:
    """SIGKILL the worker and its pool processes at once, as a power cut or the OOM killer would.

    No warm shutdown and no acknowledgement: the task it was running stays unacknowledged in
    Redis, which hands it to another worker once the visibility timeout has passed.
    """
    pids = [worker.process.pid, *_descendants(worker.process.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.process.wait(timeout=WORKER_STOP_TIMEOUT)
    for pid in pids[1:]:  # the pool processes: orphaned now, gone once dead (or a zombie nobody reaps)
        deadline = time.monotonic() + WORKER_STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@contextmanager
def sending_to(queue: str, *, broker_url: str = REDIS_URL) -> Iterator[None]:
    """Send this process's tasks to `queue` on real Redis (not eagerly) until the block ends.

    A `broker_url` where nothing listens makes every enqueue fail, as when Redis is down.
    """
    previous = {
        "broker_url": celery_app.conf.broker_url,
        "task_always_eager": celery_app.conf.task_always_eager,
        "task_default_queue": celery_app.conf.task_default_queue,
    }
    try:
        celery_app.conf.broker_url = broker_url
        celery_app.conf.task_always_eager = False
        celery_app.conf.task_default_queue = queue
        _reset_producers()
        yield
    finally:
        for key, value in previous.items():
            setattr(celery_app.conf, key, value)
        _reset_producers()


def new_queue_name() -> str:
    """A queue name no other test session or worker uses (and not a part of another such name)."""
    return f"safeguard-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def celery_worker_env() -> dict[str, str]:
    """Extra environment for `celery_worker`; override it in a test module (e.g. EMAIL_URL for a test SMTP server)."""
    return {}


@pytest.fixture
def celery_worker(transactional_db, settings, celery_queue, tmp_path, celery_worker_env) -> Iterator[Worker]:
    """A running `celery -A safeguard worker` consuming this session's queue, for one test.

    The worker shares the test's MEDIA_ROOT and database. Mark tests using it `integration`.
    """
    require_postgresql()
    with sending_to(celery_queue):
        worker = start_worker(
            queue=celery_queue,
            media_root=settings.MEDIA_ROOT,
            log_path=tmp_path / "celery-worker.log",
            extra_env=celery_worker_env,
        )
        try:
            yield worker
        finally:
            stop_worker(worker)
            _delete_queue_keys(celery_queue)


@pytest.fixture(scope="module")
def celery_module_worker_env() -> dict[str, str]:
    """Extra environment for `module_celery_worker`; override it (module-scoped) in a test module."""
    return {}


@pytest.fixture(scope="module")
def _module_worker_process(
    django_db_setup, django_db_blocker, tmp_path_factory, celery_module_worker_env
) -> Iterator[tuple[Worker, Path]]:
    queue = new_queue_name()
    media_root = tmp_path_factory.mktemp("worker-media")
    log_path = tmp_path_factory.mktemp("worker-log") / "celery-worker.log"
    with django_db_blocker.unblock(), sending_to(queue):
        worker = start_worker(queue=queue, media_root=media_root, log_path=log_path, extra_env=celery_module_worker_env)
    try:
        yield worker, media_root
    finally:
        stop_worker(worker)
        _delete_queue_keys(queue)


@pytest.fixture
def module_celery_worker(_module_worker_process, transactional_db, settings) -> Iterator[Worker]:
    """Like `celery_worker`, but one worker serves every test of the module (a worker takes seconds to start).

    Each test still gets committed transactions (and an emptied database afterwards); the media
    root is the worker's, shared by the module's tests. Mark tests using it `integration`.
    """
    worker, media_root = _module_worker_process
    require_postgresql()
    if worker.process.poll() is not None:
        pytest.fail(f"The module's Celery worker exited with {worker.process.returncode}:\n{worker.log()[-4000:]}")
    settings.MEDIA_ROOT = media_root
    with sending_to(worker.queue):
        yield worker


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
