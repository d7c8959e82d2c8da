"""The outbox end to end: nothing accepted by the agent is lost or stored twice, whatever happens to it.

(1) Events made while the server is down all arrive, once each, when it is back.
(2) An agent killed with SIGKILL while sending, then restarted, loses and duplicates nothing.
"""

import io
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count
from PIL import Image

from safeguard.captures.models import Capture
from safeguard.logs.models import ActivityEvent
from safeguard_agent.outbox import Outbox
from safeguard_agent.runtime import Agent
from tests.agent_e2e.conftest import enrol_home, read_db, wait_for
from tests.factories import KeywordFactory, enrolled_device

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NO_DISPLAY = {"DISPLAY": ""}  # these tests are about delivery: no monitors, no screen


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def window_event(n: int, user: str) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "window",
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=n)).isoformat(),
        "user": user,
        "data": {"title": f"Document {n} - Word", "application": "winword.exe"},
    }


def stored_uuids(device) -> list[str]:
    return [str(value) for value in ActivityEvent.objects.filter(device=device).values_list("uuid", flat=True)]


def event_count(device) -> int:
    return read_db(lambda: ActivityEvent.objects.filter(device=device).count())


def outbox_depth(home) -> int:
    outbox = Outbox(home / "outbox.db")
    try:
        return outbox.depth()
    finally:
        outbox.close()


def test_1000_events_made_while_the_server_is_down_all_arrive_exactly_once(live_server, run_agent, tmp_path):
    device, token = enrolled_device(hostname="OFFLINE-PC")
    home = enrol_home(tmp_path / "home", server=closed_port_url(), device=device, token=token)

    # The agent runs with its server away: every event goes into the outbox and stays there.
    offline = Agent(home, monitors=False, evidence=False)
    offline.start()
    for n in range(1000):
        offline.emit_event(
            "window", {"title": f"Essay {n}", "application": "winword.exe"}, datetime.now(UTC), "SCHOOL\\offline"
        )
    wait_for(lambda: offline.sender.failures >= 1, timeout=30, what="the agent to find the server away")
    offline.stop(drain_seconds=0)
    queued = Outbox(home / "outbox.db")
    made = {item.id for item in queued.peek("event", limit=2000)}
    queued.close()
    assert len(made) == 1000
    assert ActivityEvent.objects.count() == 0

    # The server is back (the agent is pointed at it) and the real agent process is started.
    enrol_home(home, server=live_server.url, device=device, token=token)
    agent = run_agent(home, env=NO_DISPLAY)
    wait_for(lambda: event_count(device) >= 1000, what="1000 events on the server")
    wait_for(lambda: outbox_depth(home) == 0, timeout=30, what="the outbox to empty")
    assert agent.stop() == 0

    uuids = stored_uuids(device)
    assert len(uuids) == 1000
    assert set(uuids) == made
    assert set(ActivityEvent.objects.filter(device=device).values_list("person__username", flat=True)) == {
        "SCHOOL\\offline"
    }


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (160, 100), "white").save(buffer, "PNG")
    return buffer.getvalue()


def test_an_agent_killed_with_sigkill_mid_send_loses_and_duplicates_nothing(live_server, run_agent, tmp_path):
    device, token = enrolled_device(hostname="KILLED-PC")
    keyword = KeywordFactory(text="kms", severity="severe")
    home = enrol_home(tmp_path / "home", server=live_server.url, device=device, token=token)
    total = 6000
    events = [window_event(n, "SCHOOL\\killed") for n in range(total)]
    captures = []
    outbox = Outbox(home / "outbox.db")
    for n in range(5):
        metadata = {
            "id": str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat(),
            "user": "SCHOOL\\killed",
            "keyword": "kms",
            "severity": "severe",
            "context": f"capture {n}",
            "policy": str(keyword.policy.uuid),
        }
        captures.append(metadata["id"])
        outbox.put("capture", metadata, {"screenshot": png()}, item_id=metadata["id"])
    outbox.put_many("event", [(event["id"], event) for event in events])
    outbox.close()

    first = run_agent(home, env=NO_DISPLAY)
    wait_for(lambda: event_count(device) >= 500, what="the first batches")
    first.kill9()

    arrived_before_restart = event_count(device)
    assert arrived_before_restart < total, "the agent finished before it could be killed mid-send"
    assert outbox_depth(home) > 0

    second = run_agent(home, env=NO_DISPLAY)
    wait_for(lambda: event_count(device) >= total, what="every event")
    wait_for(lambda: outbox_depth(home) == 0, timeout=30, what="the outbox to empty")
    assert second.stop() == 0

    uuids = stored_uuids(device)
    assert len(uuids) == total
    assert set(uuids) == {event["id"] for event in events}
    assert not ActivityEvent.objects.values("uuid").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert sorted(str(u) for u in Capture.objects.filter(device=device).values_list("uuid", flat=True)) == sorted(
        captures
    )
