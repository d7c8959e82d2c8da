"""Fault: PostgreSQL restarts while agents are sending. Agents retry; nothing is lost or stored twice.

The server is gunicorn (as in production) on a PostgreSQL cluster of this test's own, which the
test stops mid-ingestion ("fast": open transactions aborted; "immediate": every backend killed
with no checkpoint, as a crash, and WAL recovery on start) and starts again once the agent has
seen the failures. The agent is its real durable outbox and REST client (`Outbox`, `Sender`,
`ApiClient`), with a short back-off so the test does not wait minutes. Afterwards every event and
capture the agent queued is on the server exactly once, and every capture has its follow-up row
(the transactional outbox of its alerts), written in the capture's own transaction.
"""

import io
import json
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from PIL import Image

from safeguard_agent.client import ApiClient
from safeguard_agent.outbox import Outbox, Sender
from tests.faults.servers import app_environment, manage, start_app_server, wait_until

pytestmark = pytest.mark.integration

EVENTS = 3000
CAPTURES = 12
USER = "SCHOOL\\restart"

SEED = """
import json
from tests.factories import KeywordFactory, enrolled_device
device, token = enrolled_device(hostname="RESTART-{mode}")
keyword = KeywordFactory(text="restart word", severity="high", policy__name="Restart test {mode}")
print(json.dumps({"token": token, "device": str(device.uuid), "policy": str(keyword.policy.uuid)}))
"""


@pytest.fixture(scope="module")
def app(private_postgres, tmp_path_factory):
    """gunicorn on the private database, migrated; tasks run in-process (no Redis involved here)."""
    folder = tmp_path_factory.mktemp("restart-app")
    env = app_environment(private_postgres, folder)
    manage("migrate", "--noinput", env=env, timeout=300)
    server = start_app_server(env=env, log_path=folder / "gunicorn.log")
    try:
        yield server
    finally:
        server.stop()


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (120, 80), "white").save(buffer, "PNG")
    return buffer.getvalue()


def queue_captures(outbox: Outbox, policy: str) -> set[str]:
    """Queue CAPTURES captures (with screenshots), as the agent's keyword monitor would."""
    now = datetime.now(UTC)
    captures = set()
    for n in range(CAPTURES):
        metadata = {
            "id": str(uuid.uuid4()),
            "occurred_at": (now - timedelta(seconds=n)).isoformat(),
            "user": USER,
            "keyword": "restart word",
            "severity": "high",
            "context": f"capture {n}",
            "policy": policy,
        }
        outbox.put("capture", metadata, {"screenshot": png()}, item_id=metadata["id"])
        captures.add(metadata["id"])
    return captures


def queue_events(outbox: Outbox) -> set[str]:
    """Queue EVENTS window events, as an agent that was busy (or offline) would have."""
    now = datetime.now(UTC)
    events = []
    for n in range(EVENTS):
        event_id = str(uuid.uuid4())
        events.append(
            (
                event_id,
                {
                    "id": event_id,
                    "type": "window",
                    "occurred_at": (now - timedelta(milliseconds=n)).isoformat(),
                    "user": USER,
                    "data": {"title": f"Document {n} - Word", "application": "winword.exe"},
                },
            )
        )
    outbox.put_many("event", events)
    return {event_id for event_id, _ in events}


def stored(private_postgres, table: str, device: str) -> list[str]:
    rows = private_postgres.query(
        f"SELECT t.uuid::text FROM {table} t JOIN groups_device d ON d.id = t.device_id WHERE d.uuid = %s",  # noqa: S608
        (device,),
    )
    return [row[0] for row in rows]


def count_events(private_postgres, device: str) -> int:
    try:
        return len(stored(private_postgres, "logs_activityevent", device))
    except psycopg.OperationalError:  # the database is restarting: count again later
        return -1


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgresql_restarted_mid_ingestion_loses_and_doubles_nothing(app, private_postgres, tmp_path, mode):
    server = app
    # Each run gets a device of its own, so the two modes' counts do not mix.
    seed = SEED.replace("{mode}", mode)
    seeded = json.loads(manage("shell", "-c", seed, env=server.env).strip().splitlines()[-1])
    device = seeded["device"]
    outbox = Outbox(tmp_path / "outbox.db")
    events = queue_events(outbox)
    client = ApiClient(server.url, seeded["token"], timeout=(3.0, 10.0))
    # Small batches and a short back-off: many requests in flight over the restart, quick retries.
    sender = Sender(outbox, client, batch_size=100, backoff_base=0.05, backoff_cap=1.0)
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: count_events(private_postgres, device) >= 600, timeout=120, what="the first batches")
        private_postgres.stop(mode)
        # The agent meets the outage (5xx from the server, whose database is gone) and keeps its items.
        wait_until(lambda: sender.failures >= 2, timeout=60, what="the agent to see the outage", log=server.log)
        assert outbox.depth() > 0
        # Captures keep coming while the database is down: they wait in the outbox too.
        captures = queue_captures(outbox, seeded["policy"])
        wait_until(lambda: sender.failures >= 4, timeout=60, what="more failed sends", log=server.log)
        private_postgres.start()

        wait_until(lambda: outbox.depth() == 0, timeout=180, what="the outbox to drain", log=server.log)
    finally:
        stop.set()
        outbox.wake()
        thread.join(timeout=30)
        client.close()

    stored_events = stored(private_postgres, "logs_activityevent", device)
    assert len(stored_events) == EVENTS, f"{len(stored_events)} stored of {EVENTS}"
    assert set(stored_events) == events
    stored_captures = stored(private_postgres, "captures_capture", device)
    assert sorted(stored_captures) == sorted(captures)
    assert outbox.dead_items() == []  # nothing was refused (4xx) along the way
    # Each capture's pending background work was committed with it (the transactional outbox).
    followups = private_postgres.query(
        "SELECT count(*) FROM policies_capturefollowup f JOIN captures_capture c ON c.id = f.capture_id "
        "JOIN groups_device d ON d.id = c.device_id WHERE d.uuid = %s",
        (device,),
    )
    assert followups == [(CAPTURES,)]
    outbox.close()


def test_api_answers_503_in_the_error_shape_while_the_database_is_down(app, private_postgres):
    """The agent's outbox must see a retryable answer (5xx with Retry-After), in the one error shape."""
    seeded = json.loads(manage("shell", "-c", SEED.replace("{mode}", "down"), env=app.env).strip().splitlines()[-1])
    batch = {
        "events": [
            {
                "id": str(uuid.uuid4()),
                "type": "window",
                "occurred_at": datetime.now(UTC).isoformat(),
                "user": USER,
                "data": {"title": "Notes", "application": "notepad.exe"},
            }
        ]
    }
    request = urllib.request.Request(
        f"{app.url}/api/v1/agent/events",
        data=json.dumps(batch).encode(),
        headers={"Authorization": f"Device {seeded['token']}", "Content-Type": "application/json"},
        method="POST",
    )
    private_postgres.stop("fast")
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
    finally:
        private_postgres.start()
    assert refused.value.code == 503
    assert refused.value.headers["Retry-After"].isdigit()
    body = json.loads(refused.value.read())
    assert set(body) == {"error", "fields"}
    assert "database" in body["error"]
    # Once the database is back, the same batch is accepted: the refused request stored nothing.
    wait_until(lambda: _accepted(request), timeout=60, what="the database to come back", log=app.log)
    assert stored(private_postgres, "logs_activityevent", seeded["device"]) == [batch["events"][0]["id"]]


def _accepted(request: urllib.request.Request) -> bool:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status in (200, 201)
    except urllib.error.HTTPError as error:
        if error.code == 503:
            return False
        raise
