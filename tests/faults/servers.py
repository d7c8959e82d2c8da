"""Throwaway servers the fault tests may stop, crash and restart: never the shared ones.

`PrivatePostgres` is a PostgreSQL 15 cluster made with initdb in a temporary folder, on a free
loopback port (as the `postgres` user when the tests run as root: PostgreSQL refuses to run as
root). `PrivateRedis` is a `redis-server` on a free port with nothing saved to disk.
`AppServer` is gunicorn serving this checkout with a given environment (e.g. the private
database), as production runs it. Every process here is started by the test and stopped by
its pid; the shared PostgreSQL (5432) and Redis (6379) are never touched.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis
import requests
from django.conf import settings as django_settings


def _pg_bin() -> Path:
    """PostgreSQL's programs: SAFEGUARD_PG_BIN, else Debian's newest /usr/lib/postgresql/<major>/bin."""
    if os.environ.get("SAFEGUARD_PG_BIN"):
        return Path(os.environ["SAFEGUARD_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
HOST = "127.0.0.1"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_until(condition, *, timeout: float, what: str, log=None):
    """Poll `condition` until it is truthy; fail naming `what` (with `log()` if given) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    detail = f"\n{log()[-4000:]}" if log else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


# --- PostgreSQL -----------------------------------------------------------------------------------


def _as_postgres_user() -> list[str]:
    """Prefix for PostgreSQL's own programs: they refuse to run as root, so run them as `postgres`."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("Running as root without runuser: cannot start a private PostgreSQL as the postgres user.")
    return [runuser, "-u", "postgres", "--"]


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, which the test may stop and start at will."""

    root: Path
    port: int
    database: str = "safeguard"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgresql.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/{self.database}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _pg_ctl(self, *args: str) -> None:
        command = [*_as_postgres_user(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT)  # noqa: S603
        if result.returncode != 0:
            pytest.fail(f"pg_ctl {' '.join(args)} failed: {result.stdout}{result.stderr}\n{self.log()[-3000:]}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses={HOST} -c fsync=off -c max_connections=50"
        self._pg_ctl("-o", options, "-l", str(self.log_path), "-w", "-t", str(int(START_TIMEOUT)), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: "fast" aborts open transactions and closes connections; "immediate"
        kills every backend at once with no shutdown checkpoint, as a crash would (the next start
        recovers from the WAL)."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(host=HOST, port=self.port, user="postgres", dbname=self.database, autocommit=True)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.connect() as connection:
            return connection.execute(sql, params).fetchall()

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except (subprocess.SubprocessError, OSError, pytest.fail.Exception):
                pass  # cleaning up: a server that will not stop is removed with its folder anyway
        shutil.rmtree(self.root, ignore_errors=True)


def start_private_postgres() -> PrivatePostgres:
    """initdb a new cluster in a temporary folder, start it on a free port, create its database."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL's programs are not in {PG_BIN} (set SAFEGUARD_PG_BIN)")
    # Not under pytest's tmp_path: the postgres user must be able to reach the folder.
    root = Path(tempfile.mkdtemp(prefix="safeguard-faults-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    server = PrivatePostgres(root=root, port=free_port())
    command = [
        *_as_postgres_user(),
        str(PG_BIN / "initdb"),
        "-D",
        str(server.data),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT)  # noqa: S603
    if result.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {result.stdout}{result.stderr}")
    try:
        server.start()
        with psycopg.connect(host=HOST, port=server.port, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{server.database}"')
    except BaseException:
        server.destroy()
        raise
    return server


def app_environment(server: PrivatePostgres, folder: Path, **extra: str) -> dict[str, str]:
    """The environment of this checkout's processes (manage.py, gunicorn, a worker) on `server`'s database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "safeguard.settings",
        "DATABASE_URL": server.url,
        "REDIS_URL": "",
        "MEDIA_ROOT": str(folder / "media"),
        "EMAIL_URL": "consolemail://",
        "SECRET_KEY": "faults-test-secret-key-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DEBUG": "false",
        **extra,
    }


def manage(*args: str, env: dict[str, str], timeout: float = 120.0) -> str:
    """Run `manage.py` in a subprocess with `env`; return its output, fail with it on an error."""
    result = subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, "manage.py", *args],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# --- Redis ------------------------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    """A redis-server of the test's own on a free port; `stop` and `start` it to make Redis "go down"."""

    port: int
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/install-system-packages.sh installs it)")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own command line
                [binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis(host=HOST, port=self.port)
        try:
            wait_until(lambda: self._pings(client), timeout=START_TIMEOUT, what="the private Redis", log=self.log)
        finally:
            client.close()

    def _pings(self, client: redis.Redis) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"redis-server exited with {self.process.returncode}:\n{self.log()}")
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        """Kill the server (SIGKILL: Redis gone at once, as in a crash). Nothing was saved: it comes back empty."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=20)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# --- the application under gunicorn -----------------------------------------------------------------


@dataclass
class AppServer:
    """gunicorn serving this checkout on a free port."""

    port: int
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_app_server(*, env: dict[str, str], log_path: Path) -> AppServer:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    port = free_port()
    command = [
        str(gunicorn),
        "safeguard.wsgi",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        "1",
        "--threads",
        "4",
        "--no-control-socket",
        "--error-logfile",
        "-",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            command, cwd=django_settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = AppServer(port=port, process=process, log_path=log_path, env=env)

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            # The first request loads the application: give it time.
            requests.get(f"{server.url}/api/v1/agent/config", timeout=20)
        except requests.RequestException:
            return False
        return True

    try:
        wait_until(answers, timeout=START_TIMEOUT, what="gunicorn to answer", log=server.log)
    except BaseException:
        server.stop()
        raise
    return server
