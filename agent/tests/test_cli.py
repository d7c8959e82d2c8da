"""`safeguard-agent enrol / run / status` as a user runs them: subprocesses against a live HTTP server."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
from http_stub import Reply, StubServer

from safeguard_agent.outbox import Outbox
from safeguard_agent.sync import DEFAULT_SETTINGS

API = "/api/v1/agent/"
DEVICE_ID = "0b7e3c52-5d6f-4e1a-9c2b-3a4d5e6f7a8b"
CONFIG = {"version": "cafe01", "policies": [], "settings": DEFAULT_SETTINGS}


def agent(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "safeguard_agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def server():
    with StubServer() as stub:
        stub.on("POST", API + "enrol", Reply(201, {"device_id": DEVICE_ID, "token": "fresh-token"}))
        stub.on("GET", API + "config", Reply(200, CONFIG, {"ETag": '"cafe01"'}))
        stub.on("POST", API + "heartbeat", Reply(200, {"commands": [], "groups": []}))
        stub.on("POST", API + "events", Reply(200, {"accepted": 1, "duplicates": []}))
        yield stub


def test_enrol_stores_the_token_for_the_agent_only_and_fetches_the_policies(server, tmp_path):
    home = tmp_path / "state"
    result = agent(
        "enrol",
        "--server",
        server.url + "/",
        "--code",
        "abcd-efgh",
        "--hostname",
        "LAB1-PC07",
        "--config-dir",
        str(home),
    )

    assert result.returncode == 0, result.stderr
    assert f"as device {DEVICE_ID}" in result.stdout
    assert "Downloaded the keyword policies." in result.stdout
    body = server.sent(API + "enrol")[0].json()
    assert (body["code"], body["hostname"]) == ("abcd-efgh", "LAB1-PC07")
    assert body["os"] and body["agent_version"]
    stored = json.loads((home / "agent.json").read_text())
    assert stored["server"] == server.url and stored["token"] == "fresh-token"
    assert stat.S_IMODE((home / "agent.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert server.sent(API + "config")[0].headers["Authorization"] == "Device fresh-token"
    assert json.loads((home / "config.json").read_text())["config"]["version"] == "cafe01"
    assert "fresh-token" not in result.stdout + result.stderr


def test_a_refused_code_says_why_and_stores_nothing(server, tmp_path):
    server.on(
        "POST",
        API + "enrol",
        Reply(400, {"error": "Enrolment code is unknown, expired, revoked or used up.", "fields": {"code": ["x"]}}),
    )
    result = agent("enrol", "--server", server.url, "--code", "nope", "--config-dir", str(tmp_path))
    assert result.returncode == 1
    assert "Enrolment code is unknown, expired, revoked or used up." in result.stderr
    assert not (tmp_path / "agent.json").exists()


def test_an_unreachable_server_or_a_bad_address_fails_clearly(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = agent("enrol", "--server", f"http://127.0.0.1:{port}", "--code", "c", "--config-dir", str(tmp_path))
    assert result.returncode == 1
    assert "no answer from the server" in result.stderr
    result = agent("enrol", "--server", "safeguard.example", "--code", "c", "--config-dir", str(tmp_path))
    assert result.returncode == 2
    assert "must start with https://" in result.stderr


def test_status_prints_server_device_last_contact_policy_version_and_outbox_depth(server, tmp_path):
    assert agent("enrol", "--server", server.url, "--code", "c", "--config-dir", str(tmp_path)).returncode == 0
    outbox = Outbox(tmp_path / "outbox.db")
    for n in range(3):
        outbox.put("event", {"n": n})
    outbox.close()

    result = agent("status", "--config-dir", str(tmp_path))

    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert lines["Server"].strip() == server.url
    assert lines["Device id"].strip() == DEVICE_ID
    assert lines["Last contact"].strip() != "never"
    assert lines["Policy version"].strip() == "cafe01"
    assert lines["Outbox depth"].strip() == "3"
    report = json.loads(agent("status", "--json", "--config-dir", str(tmp_path)).stdout)
    assert (report["device_id"], report["outbox_depth"], report["policy_version"]) == (DEVICE_ID, 3, "cafe01")


def test_the_state_folder_comes_from_safeguard_agent_home_without_config_dir(server, tmp_path):
    env = {"SAFEGUARD_AGENT_HOME": str(tmp_path / "home")}
    assert agent("enrol", "--server", server.url, "--code", "c", env=env).returncode == 0
    assert (tmp_path / "home" / "agent.json").exists()
    assert DEVICE_ID in agent("status", env=env).stdout


def test_status_and_run_refuse_an_unenrolled_computer(tmp_path):
    for command in (["status"], ["run", "--headless"]):
        result = agent(*command, "--config-dir", str(tmp_path / "empty"))
        assert result.returncode == 2
        assert "not enrolled" in result.stderr


def test_run_headless_without_a_display_reports_and_stops_cleanly_on_sigterm(server, tmp_path):
    assert agent("enrol", "--server", server.url, "--code", "c", "--config-dir", str(tmp_path)).returncode == 0
    env = {key: value for key, value in os.environ.items() if key != "DISPLAY"}
    process = subprocess.Popen(
        [sys.executable, "-m", "safeguard_agent.cli", "run", "--headless", "--config-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    while not server.sent(API + "heartbeat") and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    events = [r.json().get("event") for r in server.sent(API + "heartbeat")]
    assert events[0] == "started" and events[-1] == "stopping"
    assert "No monitoring of windows and typing on this session" in stderr
    assert "Safeguard agent stopped" in stderr
    assert (tmp_path / "agent.log").exists()
