"""The REST client against a real local HTTP server: each answer maps to one clear outcome."""

import json
import socket
import threading
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


class RawServer:
    """A bare HTTP/1.1 server on a socket that counts connections; `close_after_answer` answers one
    request per connection and then closes it without saying so (as a server's keep-alive timeout does)."""

    def __init__(self, *, close_after_answer: bool) -> None:
        self.close_after_answer = close_after_answer
        self.connections = 0
        self.requests = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next(
                    (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), 0
                )
                reader.read(length)
                self.requests += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                if self.close_after_answer:
                    time.sleep(0.1)  # closed while the client holds it idle
                    return

    def close(self) -> None:
        self._sock.close()


def test_calls_share_one_kept_alive_connection():
    server = RawServer(close_after_answer=False)
    client = ApiClient(server.url, "tok")
    try:
        results = [client.heartbeat({}), client.events([]), client.config()]
    finally:
        client.close()
        server.close()
    assert [r.outcome for r in results] == [Outcome.OK] * 3
    assert (server.requests, server.connections) == (3, 1)


def test_a_connection_the_server_closed_while_idle_is_replaced_without_failing_the_call():
    server = RawServer(close_after_answer=True)
    client = ApiClient(server.url, "tok")
    try:
        first = client.heartbeat({})
        time.sleep(0.3)  # the server closes the kept-alive connection meanwhile
        second = client.heartbeat({})
    finally:
        client.close()
        server.close()
    assert (first.outcome, second.outcome) == (Outcome.OK, Outcome.OK)
    assert (server.requests, server.connections) == (2, 2)


def test_a_proxy_from_the_environment_is_used(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    ApiClient("http://safeguard.school.invalid:8000", "tok").heartbeat({})
    assert [r.path for r in server.requests] == ["http://safeguard.school.invalid:8000/api/v1/agent/heartbeat"]


@pytest.fixture
def tls_server(tmp_path):
    """The stub server behind TLS with a self-signed certificate for 127.0.0.1 (made with openssl)."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with StubServer() as stub:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        stub._server.socket = context.wrap_socket(stub._server.socket, server_side=True)
        yield stub, cert


def test_https_verifies_the_server_certificate_against_the_trusted_authorities(tls_server, monkeypatch):
    stub, cert = tls_server
    stub.on("POST", API + "heartbeat", Reply(200, {}))
    url = stub.url.replace("http://", "https://")

    untrusted = ApiClient(url, "tok").heartbeat({})
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the school's own CA, as the OS store would hold it
    trusted = ApiClient(url, "tok").heartbeat({})

    assert untrusted.outcome is Outcome.NETWORK and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    assert trusted.outcome is Outcome.OK
    assert len(stub.sent(API + "heartbeat")) == 1  # the unverified connection never sent the request
