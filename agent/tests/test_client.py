"""The REST client against a real local HTTP server: each answer maps to one clear outcome."""

import json
import socket
import time

import pytest
from http_stub import Reply, StubServer

from safeguard_agent.client import ApiClient, Outcome

API = "/api/v1/agent/"


@pytest.fixture
def server():
    with StubServer() as stub:
        yield stub


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.OK),
        (201, Outcome.OK),
        (204, Outcome.OK),
        (400, Outcome.REJECTED),
        (403, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (409, Outcome.REJECTED),
        (413, Outcome.REJECTED),
        (401, Outcome.UNAUTHORIZED),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
    ],
)
def test_each_status_maps_to_an_outcome(server, status, outcome):
    server.on("POST", API + "heartbeat", Reply(status, {"error": "why", "fields": {}} if status >= 400 else {}))
    result = ApiClient(server.url, "tok").heartbeat({})
    assert result.outcome is outcome
    assert result.status == status


def test_a_refusal_carries_the_servers_error_and_fields(server):
    body = {"error": "Invalid user: must not contain control characters", "fields": {"user": ["control characters"]}}
    server.on("POST", API + "assistance", Reply(400, body))
    result = ApiClient(server.url, "tok").assistance({"user": "a\nb"})
    assert result.outcome is Outcome.REJECTED
    assert result.error == body["error"]
    assert result.fields == {"user": ["control characters"]}
    assert "HTTP 400: Invalid user" in result.describe() and '"user"' in result.describe()


def test_retry_after_is_read(server):
    server.on("POST", API + "pause", Reply(429, {"error": "Too many tries.", "fields": {}}, {"Retry-After": "120"}))
    result = ApiClient(server.url, "tok").pause(pin="0000", minutes=10)
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == 120.0


def test_a_closed_port_is_a_network_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = ApiClient(f"http://127.0.0.1:{port}", "tok").heartbeat({})
    assert result.outcome is Outcome.NETWORK
    assert result.status is None
    assert "no answer from the server" in result.describe()


def test_a_server_that_does_not_answer_in_time_is_a_network_error(server):
    def slow(request):
        time.sleep(1.5)
        return Reply(200, {})

    server.on("POST", API + "heartbeat", slow)
    client = ApiClient(server.url, "tok", timeout=(2.0, 0.3))
    result = client.heartbeat({})
    assert result.outcome is Outcome.NETWORK
    assert "Timeout" in result.error


def test_a_non_json_error_page_is_still_explained(server):
    def proxy_page(request):
        return Reply(502, None)

    server.on("GET", API + "config", proxy_page)
    result = ApiClient(server.url, "tok").config()
    assert result.outcome is Outcome.RETRY
    assert result.body is None
    assert result.error  # the reason phrase at least


def test_every_call_but_enrol_sends_the_device_token(server):
    server.on("POST", API + "enrol", Reply(201, {"device_id": "d", "token": "t"}))
    server.on("POST", API + "events", Reply(200, {"accepted": 0, "duplicates": []}))
    client = ApiClient(server.url + "/", "secret-token")
    client.enrol(code="ABCD", hostname="PC1", os_name="Linux")
    client.events([])
    enrol, events = server.requests
    assert "Authorization" not in enrol.headers
    assert enrol.json() == {
        "code": "ABCD",
        "hostname": "PC1",
        "os": "Linux",
        "agent_version": enrol.json()["agent_version"],
    }
    assert events.headers["Authorization"] == "Device secret-token"
    assert events.headers["User-Agent"].startswith("safeguard-agent/")


def test_config_sends_the_etag_and_reads_304(server):
    server.on("GET", API + "config", Reply(304, None, {"ETag": '"v1"'}))
    result = ApiClient(server.url, "tok").config(etag='"v1"')
    assert result.outcome is Outcome.NOT_MODIFIED and result.ok
    assert server.requests[0].headers["If-None-Match"] == '"v1"'


def test_a_capture_is_multipart_metadata_json_and_the_screenshot(server):
    server.on("POST", API + "captures", Reply(201, {"id": "c", "status": "new"}))
    metadata = {"id": "c", "keyword": "kms"}
    ApiClient(server.url, "tok").capture(metadata, b"\x89PNG\r\n\x1a\nrest")
    parts = server.requests[0].multipart()
    assert json.loads(parts["metadata"][1]) == metadata
    assert parts["metadata"][0] is None  # a text part, not a file
    assert parts["screenshot"] == ("screenshot.png", b"\x89PNG\r\n\x1a\nrest")


def test_recordings_go_to_their_capture_or_to_the_on_demand_endpoint(server):
    server.on("POST", API + "captures/c1/recording", Reply(201, {}))
    server.on("POST", API + "recordings", Reply(201, {}))
    client = ApiClient(server.url, "tok")
    client.recording(capture_id="c1", recording=b"mp4", started_at="2026-01-01T00:00:00+00:00", duration_seconds=3)
    client.on_demand_recording(command_id="k1", recording=b"mp4", duration_seconds=2.5)
    capture_parts = server.requests[0].multipart()
    demand_parts = server.requests[1].multipart()
    assert capture_parts["recording"] == ("recording.mp4", b"mp4")
    assert capture_parts["started_at"][1] == b"2026-01-01T00:00:00+00:00"
    assert capture_parts["duration_seconds"][1] == b"3.000"
    assert demand_parts["command_id"][1] == b"k1"
    assert "started_at" not in demand_parts
