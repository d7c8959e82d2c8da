"""The running agent against a real local HTTP server: heartbeat, commands, captures, reports, pause."""

import io
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from http_stub import Reply, StubServer
from PIL import Image

from safeguard_agent import __version__
from safeguard_agent.config import Enrolment, save_enrolment
from safeguard_agent.detection import DetectedMatch
from safeguard_agent.runtime import Agent
from safeguard_agent.sync import DEFAULT_SETTINGS
from safeguard_agent.testing import XvfbDisplay

API = "/api/v1/agent/"
POLICY_ID = "6f1c7a52-8d9e-4f3b-a1c2-0d9e8f7a6b5c"


def config(**settings) -> dict:
    return {
        "version": "v1",
        "policies": [
            {
                "id": POLICY_ID,
                "name": "Self-harm",
                "category": "self_harm",
                "illegal_content": False,
                "keywords": [{"id": 1, "text": "kms", "match_kind": "word", "severity": "severe"}],
            }
        ],
        "settings": {**DEFAULT_SETTINGS, **settings},
    }


def wait_for(condition, timeout: float = 15.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture
def server():
    with StubServer() as stub:
        stub.on("GET", API + "config", Reply(200, config(recording_seconds=1), {"ETag": '"v1"'}))
        stub.on("POST", API + "heartbeat", Reply(200, {"commands": [], "server_time": "x", "groups": ["Year 9"]}))
        for path in ("events",):
            stub.on("POST", API + path, Reply(200, {"accepted": 1, "duplicates": []}))
        for path in ("captures", "confide", "assistance", "recordings"):
            stub.on("POST", API + path, Reply(201, {}))
        stub.on("POST", API + "thumbnail", Reply(204))
        yield stub


@pytest.fixture
def make_agent(tmp_path, server):
    agents = []

    def make(**kwargs) -> Agent:
        save_enrolment(tmp_path, Enrolment(server=server.url, device_id="dev-1", token="tok-1"))
        kwargs.setdefault("monitors", False)
        kwargs.setdefault("evidence", False)
        agent = Agent(tmp_path, hostname="LAB1-PC07", **kwargs)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        if agent._started:
            agent.stop(drain_seconds=0)


def detected(keyword="kms", severity="high", **extra) -> DetectedMatch:
    values = {
        "keyword": keyword,
        "policy_id": POLICY_ID,
        "policy_name": "Self-harm",
        "severity": severity,
        "context": "i want to kms tonight",
        "application": "xterm",
        "window_title": "Notes",
        "url": "",
        "user": "SCHOOL\\pupil",
        "occurred_at": datetime.now(UTC),
    }
    values.update(extra)
    return DetectedMatch(**values)


def heartbeats(server) -> list[dict]:
    return [r.json() for r in server.sent(API + "heartbeat")]


# -- heartbeat and lifecycle ---------------------------------------------------------------------------


def test_start_reports_started_and_stop_reports_stopping(make_agent, server):
    agent = make_agent()
    agent.start()
    first = wait_for(lambda: heartbeats(server), message="the first heartbeat")[0]
    assert first["event"] == "started"
    assert first["agent_version"] == __version__
    assert first["user"]
    assert first["monitoring_paused_until"] is None
    assert wait_for(lambda: agent.groups == ["Year 9"], message="groups")
    assert server.sent(API + "heartbeat")[0].headers["Authorization"] == "Device tok-1"

    agent.stop(drain_seconds=1)

    assert heartbeats(server)[-1]["event"] == "stopping"
    assert [h.get("event") for h in heartbeats(server)].count("started") == 1


def test_a_started_event_the_server_did_not_hear_is_sent_again(make_agent, server):
    server.on(
        "POST",
        API + "heartbeat",
        Reply(503, {"error": "down", "fields": {}}),
        Reply(200, {"commands": [], "server_time": "x", "groups": []}),
    )
    agent = make_agent()
    agent._pending_event = "started"  # what start() sets

    assert agent.heartbeat_once() is False  # 503: the event is kept...
    assert agent.heartbeat_once() is True  # ...and the next heartbeat carries it

    assert [h.get("event") for h in heartbeats(server)] == ["started", "started"]
    assert agent._pending_event is None


def test_activity_events_go_through_the_outbox_to_the_server(make_agent, server):
    agent = make_agent()
    agent.start()
    when = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    agent.emit_event("window", {"title": "Notes", "application": "xterm"}, when, "SCHOOL\\pupil")
    sent = wait_for(lambda: server.sent(API + "events"), message="the event batch")
    event = sent[0].json()["events"][0]
    uuid.UUID(event["id"])
    assert event == {
        "id": event["id"],
        "type": "window",
        "occurred_at": "2026-01-05T09:30:00+00:00",
        "user": "SCHOOL\\pupil",
        "data": {"title": "Notes", "application": "xterm"},
    }
    wait_for(lambda: agent.outbox.depth() == 0, message="the outbox to empty")


def test_a_capture_carries_its_metadata_and_a_watermarked_picture_even_without_a_screen(
    make_agent, server, monkeypatch
):
    monkeypatch.delenv("DISPLAY", raising=False)
    agent = make_agent()
    agent.start()
    capture_id = agent.record_capture(detected(window_title="T" * 2000, application="a" * 300))
    request = wait_for(lambda: server.sent(API + "captures"), message="the capture")[0]
    parts = request.multipart()
    metadata = json.loads(parts["metadata"][1])
    assert metadata["id"] == capture_id
    assert metadata["policy"] == POLICY_ID
    assert (metadata["keyword"], metadata["severity"], metadata["user"]) == ("kms", "high", "SCHOOL\\pupil")
    assert metadata["context"] == "i want to kms tonight"
    assert len(metadata["window_title"]) == 1024 and len(metadata["application"]) == 255  # the server's limits
    picture = Image.open(io.BytesIO(parts["screenshot"][1]))
    assert picture.format == "PNG"
    assert picture.getpixel((picture.width - 20, 20)) != picture.getpixel((20, picture.height - 20))  # the panel


# -- Confide and assistance ----------------------------------------------------------------------------


def test_anonymous_confide_has_no_user_an_hour_precise_time_and_no_user_in_the_log(make_agent, server, caplog):
    caplog.set_level(logging.DEBUG)
    agent = make_agent()
    agent.start()
    agent.submit_confide(message="someone is hurting me", about="me", anonymous=True)
    body = wait_for(lambda: server.sent(API + "confide"), message="the report")[0].json()
    assert set(body) == {"id", "message", "about", "anonymous", "occurred_at"}
    assert body["anonymous"] is True and body["about"] == "me"
    when = datetime.fromisoformat(body["occurred_at"])
    assert (when.minute, when.second, when.microsecond) == (0, 0, 0)
    assert agent.user() not in caplog.text
    assert "someone is hurting me" not in caplog.text


def test_named_confide_and_assistance_carry_the_user(make_agent, server):
    agent = make_agent()
    agent.start()
    agent.submit_confide(message="my friend is sad", about="someone_else", anonymous=False)
    agent.submit_assistance(message="my screen froze")
    confide = wait_for(lambda: server.sent(API + "confide"), message="confide")[0].json()
    assistance = wait_for(lambda: server.sent(API + "assistance"), message="assistance")[0].json()
    assert confide["user"] == agent.user() and confide["anonymous"] is False
    assert assistance["user"] == agent.user() and assistance["message"] == "my screen froze"


# -- pausing with the staff PIN ------------------------------------------------------------------------


def test_a_right_pin_pauses_until_the_server_says_then_monitoring_resumes(make_agent, server, tmp_path):
    until = datetime.now(UTC) + timedelta(seconds=2)
    server.on("POST", API + "pause", Reply(200, {"monitoring_paused_until": until.isoformat()}))
    agent = make_agent()
    agent.start()

    ok, message = agent.request_pause(pin="4821", minutes=15)

    assert ok and "paused until" in message
    assert server.sent(API + "pause")[0].json() == {"pin": "4821", "minutes": 15, "user": agent.user()}
    assert agent.paused
    assert json.loads((tmp_path / "status.json").read_text())["paused_until"] == until.isoformat()
    agent.emit_event("window", {"title": "x", "application": "y"}, datetime.now(UTC), "u")
    assert agent.outbox.depth("event") == 0  # nothing is recorded during a pause

    resumed = wait_for(
        lambda: [h for h in heartbeats(server) if h.get("event") == "resumed"], message="the resumed heartbeat"
    )
    assert resumed[0]["monitoring_paused_until"] is None
    assert not agent.paused
    assert json.loads((tmp_path / "status.json").read_text())["paused_until"] is None


def test_a_pause_survives_a_restart(make_agent, server):
    until = datetime.now(UTC) + timedelta(minutes=30)
    server.on("POST", API + "pause", Reply(200, {"monitoring_paused_until": until.isoformat()}))
    agent = make_agent()
    agent.start()
    agent.request_pause(pin="4821", minutes=30)
    agent.stop(drain_seconds=0)

    again = make_agent()
    again.start()
    assert again.paused
    beat = wait_for(lambda: [h for h in heartbeats(server) if h.get("event") == "started"][1:], message="restart")[0]
    assert datetime.fromisoformat(beat["monitoring_paused_until"]) == until


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(403, {"error": "Wrong PIN.", "fields": {"pin": ["incorrect"]}}), "Wrong PIN."),
        (Reply(429, {"error": "Too many.", "fields": {}}, {"Retry-After": "600"}), "Try again in about 10 minutes"),
        (Reply(401, {"error": "revoked", "fields": {}}), "no longer enrolled"),
        (Reply(500, {"error": "boom", "fields": {}}), "cannot be reached"),
    ],
)
def test_a_refused_pin_pauses_nothing_and_says_why(make_agent, server, reply, expected):
    server.on("POST", API + "pause", reply)
    agent = make_agent()
    ok, message = agent.request_pause(pin="0000", minutes=15)
    assert not ok
    assert expected in message
    assert not agent.paused


# -- revoked devices -----------------------------------------------------------------------------------


def test_after_a_401_a_new_token_written_by_enrol_is_picked_up(make_agent, server, tmp_path):
    def by_token(request):
        if request.headers.get("Authorization") == "Device tok-2":
            return Reply(200, {"accepted": 1, "duplicates": []})
        return Reply(401, {"error": "Unknown or revoked device token.", "fields": {}})

    server.on("POST", API + "events", by_token)
    agent = make_agent()
    agent.start()
    agent.emit_event("logon", {}, datetime.now(UTC), "SCHOOL\\pupil")
    wait_for(lambda: server.sent(API + "events"), message="the refused batch")
    assert agent.outbox.depth("event") == 1  # kept, not moved aside

    # `safeguard-agent enrol` writes a new token: the waiting sender finds it within seconds, not minutes.
    save_enrolment(tmp_path, Enrolment(server=server.url, device_id="dev-2", token="tok-2"))
    wait_for(lambda: agent.outbox.depth("event") == 0, timeout=20, message="the events with the new token")
    assert agent.enrolment.device_id == "dev-2"
    assert server.sent(API + "events")[-1].headers["Authorization"] == "Device tok-2"


# -- with a screen: real screenshots and recordings -------------------------------------------------------


@pytest.fixture(scope="module")
def display():
    with XvfbDisplay() as xvfb:
        xvfb.open_xterm("Runtime test")
        yield xvfb


def test_a_severe_capture_sends_the_capture_then_its_recording(display, make_agent, server):
    agent = make_agent(evidence=True, recorder_pre_seconds=1.0)
    agent.start()
    wait_for(lambda: agent.sync.source == "server", message="the config")  # recording_seconds = 1

    capture_id = agent.record_capture(detected(severity="severe"))

    recording = wait_for(lambda: server.sent(API + f"captures/{capture_id}/recording"), timeout=30, message="the MP4")
    parts = recording[0].multipart()
    assert parts["recording"][1][4:8] == b"ftyp"
    assert 1.0 <= float(parts["duration_seconds"][1]) <= 3.5
    paths = [r.path for r in server.requests if r.method == "POST" and "/captures" in r.path]
    assert paths.index(API + "captures") < paths.index(API + f"captures/{capture_id}/recording")
    screenshot = Image.open(io.BytesIO(server.sent(API + "captures")[0].multipart()["screenshot"][1]))
    assert screenshot.size == (1280, 800)
    assert not list((agent.directory / "tmp").iterdir())  # the MP4 left the disk once in the outbox


def test_a_record_screen_command_uploads_an_on_demand_recording(display, make_agent, server):
    command_id = str(uuid.uuid4())
    server.on(
        "POST",
        API + "heartbeat",
        Reply(200, {"commands": [{"id": command_id, "type": "record_screen", "params": {"seconds": 1}}], "groups": []}),
        Reply(200, {"commands": [], "groups": []}),
    )
    agent = make_agent(evidence=True, recorder_pre_seconds=0.5)
    agent.start()

    upload = wait_for(lambda: server.sent(API + "recordings"), timeout=30, message="the on-demand recording")
    parts = upload[0].multipart()
    assert parts["command_id"][1].decode() == command_id
    assert parts["recording"][1][4:8] == b"ftyp"


def test_a_record_screen_command_is_not_carried_out_during_a_pause(make_agent, server, caplog):
    command_id = str(uuid.uuid4())
    server.on(
        "POST",
        API + "heartbeat",
        Reply(200, {"commands": [{"id": command_id, "type": "record_screen", "params": {"seconds": 1}}], "groups": []}),
    )
    agent = make_agent()
    agent.pause_until(datetime.now(UTC) + timedelta(minutes=10))
    assert agent.heartbeat_once() is True
    assert agent.outbox.depth("recording") == 0
    assert not agent._workers
    assert "monitoring is paused" in caplog.text


def test_thumbnails_are_sent_every_interval(display, make_agent, server):
    server.on("GET", API + "config", Reply(200, config(thumbnail_interval_seconds=1), {"ETag": '"v1"'}))
    agent = make_agent(evidence=True)
    agent.start()
    sent = wait_for(lambda: len(server.sent(API + "thumbnail")) >= 2, timeout=20, message="two thumbnails")
    assert sent
    image = Image.open(io.BytesIO(server.sent(API + "thumbnail")[0].multipart()["image"][1]))
    assert image.format == "JPEG" and image.width <= 320
