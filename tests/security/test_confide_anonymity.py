"""An anonymous Confide report leaves no trace of who sent it: not in the database, not in the logs.

The sending device and pupil are known to the server while the request runs (the device token
authenticates it; the agent could send the pupil's name). After an anonymous report, every table
is searched for what would name them (the device's UUID, hostname and token, the pupil's username
and name, the client's address and user agent), every log record the request produced (all
loggers at DEBUG) likewise, and every row the request wrote is listed: only the report itself, with
no person, no device, and its times only to the hour. The device's own rows are not touched either
(no last-seen or token last-used stamp at that moment). The real gunicorn access logger, as the
deployment runs it, writes no line for the Confide path.
"""

import logging
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from safeguard.confide.models import ConfideReport
from safeguard.groups.models import Device, DeviceToken
from tests.conftest import device_api_client
from tests.factories import PersonFactory, enrolled_device

CLIENT_ADDRESS = "203.0.113.77"
USER_AGENT = "safeguard-agent/9.9.9-anonymity-probe"


def snapshot() -> dict[str, set[tuple]]:
    """Every row of every table, as text: what a database dump would show."""
    tables = connection.introspection.table_names()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        rows = {}
        for table in tables:
            cursor.execute(f"SELECT * FROM {quote(table)}")  # noqa: S608 (table names from introspection)
            rows[table] = {tuple(str(value) for value in row) for row in cursor.fetchall()}
    return rows


@pytest.fixture
def sender(db):
    """A pupil at an enrolled computer, whose rows say when they were last stamped."""
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    device, token = enrolled_device(hostname="LIB-PC42-ANON")
    Device.objects.filter(pk=device.pk).update(last_seen_at=long_ago)
    DeviceToken.objects.filter(device=device).update(last_used_at=long_ago)
    pupil = PersonFactory(username="SCHOOL\\jsmith-anon", display_name="Jamie Smithanon")
    device.refresh_from_db()
    return device, token, pupil, long_ago


def test_an_anonymous_report_stores_and_logs_nothing_that_names_its_sender(sender, caplog):
    device, token, pupil, long_ago = sender
    token_row = DeviceToken.objects.get(device=device)
    needles = {
        "device uuid": str(device.uuid),
        "device uuid hex": device.uuid.hex,
        "hostname": device.hostname,
        "token": token,
        "token hash": token_row.token_hash,
        "username": pupil.username,
        "username (escaped)": pupil.username.replace("\\", "\\\\"),
        "account name": "jsmith-anon",
        "display name": pupil.display_name,
        "client address": CLIENT_ADDRESS,
        "user agent": USER_AGENT,
    }
    report_id = uuid.uuid4()
    sent_at = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=37, second=12, microsecond=0)
    client = device_api_client(token)
    before = snapshot()
    caplog.set_level(logging.DEBUG)  # every logger, at every level

    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/v1/agent/confide",
            {
                "id": str(report_id),
                "message": "Someone at home hurts me.",
                "about": "me",
                "anonymous": True,
                "user": pupil.username,  # the agent may send it; the server must drop it
                "occurred_at": sent_at.isoformat(),
            },
            format="json",
            REMOTE_ADDR=CLIENT_ADDRESS,
            HTTP_X_FORWARDED_FOR=CLIENT_ADDRESS,
            HTTP_USER_AGENT=USER_AGENT,
        )
    assert response.status_code == 201, response.content

    # The report: no person, no device, every time on the row only to the hour.
    report = ConfideReport.objects.get(uuid=report_id)
    assert report.is_anonymous and report.person_id is None and report.device_id is None
    for moment in (report.reported_at, report.created_at, report.updated_at):
        assert (moment.minute, moment.second, moment.microsecond) == (0, 0, 0), moment
    assert report.reported_at == sent_at.replace(minute=0, second=0)

    # The only rows written are the report's: the device and its token were not stamped.
    after = snapshot()
    changed = {table: after[table] - before.get(table, set()) for table in after}
    changed = {table: rows for table, rows in changed.items() if rows}
    assert set(changed) == {ConfideReport._meta.db_table}, changed
    device.refresh_from_db()
    assert device.last_seen_at == long_ago
    assert DeviceToken.objects.get(device=device).last_used_at == long_ago
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert writes and all(ConfideReport._meta.db_table in sql for sql in writes), writes

    # Nothing in any table, old or new row, that was not there before names the sender.
    new_text = "\n".join(" ".join(row) for rows in changed.values() for row in rows)
    for what, needle in needles.items():
        assert needle not in new_text, f"the {what} is stored with the report"

    # Nothing in the log output either.
    logged = "\n".join(f"{record.name} {record.getMessage()} {record.__dict__}" for record in caplog.records)
    for what, needle in needles.items():
        assert needle not in logged, f"the {what} was logged"


def test_a_named_report_does_keep_its_sender(sender):
    """The other side of the rule, so the test above cannot pass by storing nothing at all."""
    device, token, pupil, _long_ago = sender
    response = device_api_client(token).post(
        "/api/v1/agent/confide",
        {
            "id": str(uuid.uuid4()),
            "message": "I want to talk to someone.",
            "about": "me",
            "anonymous": False,
            "user": pupil.username,
            "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).replace(minute=37).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201
    report = ConfideReport.objects.get(uuid=response.json()["id"])
    assert (report.person, report.device) == (pupil, device)
    assert report.reported_at.minute == 37


# --- the web server's access log -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(url: str, method: str) -> None:
    request = urllib.request.Request(
        url, method=method, data=b"{}" if method == "POST" else None, headers={"User-Agent": USER_AGENT}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def test_gunicorn_writes_no_access_log_line_for_confide(tmp_path: Path):
    """Real gunicorn with the deployment's logger class and log format; other requests are logged."""
    port = _free_port()
    access_log = tmp_path / "access.log"
    repo = Path(__file__).resolve().parents[2]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "tests.security.hello_wsgi:app",
            f"--bind=127.0.0.1:{port}",
            "--workers=1",
            "--no-control-socket",
            f"--access-logfile={access_log}",
            '--access-logformat=%(h)s %({x-forwarded-for}i)s %(t)s "%(r)s" %(s)s "%(a)s"',
            "--logger-class=safeguard.core.accesslog.AccessLogWithoutConfide",
        ],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                _request(base + "/api/v1/agent/heartbeat", "POST")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        _request(base + "/api/v1/agent/confide", "POST")
        _request(base + "/api/v1/agent/confide/", "POST")
        _request(base + "/console/", "GET")  # logged after the Confide requests: the log is flushed past them
        deadline = time.monotonic() + 10
        while "GET /console/" not in (access_log.read_text() if access_log.exists() else ""):
            assert time.monotonic() < deadline, "the access log never showed the console request"
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=10)
    lines = access_log.read_text()
    assert "POST /api/v1/agent/heartbeat" in lines and USER_AGENT in lines  # the format logs agents
    assert "confide" not in lines


def test_nginx_skips_the_access_log_for_confide():
    """deploy/nginx.conf: the Confide location turns the access log off (nginx does not run here)."""
    conf = (Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf").read_text()
    block = conf.split("location = /api/v1/agent/confide {", 1)[1].split("}", 1)[0]
    assert "access_log off;" in block
    assert "proxy_pass http://safeguard_web;" in block


def test_the_web_server_runs_with_the_logger_class():
    repo = Path(__file__).resolve().parents[2]
    for name in ("Dockerfile", "docker-compose.yml", "Makefile"):
        assert "safeguard.core.accesslog.AccessLogWithoutConfide" in (repo / name).read_text(), name
