"""Raw keystrokes never leave the process: not to disk, not to the logs, not to the server.

The real agent (runtime, detector, keyboard and activity monitors, outbox) runs under Xvfb against a real
local HTTP server with DEBUG logging on. A pupil types, with xdotool into a real xterm, a long text holding
unique marker words far from a monitored word, and more text in another window. The capture for the
monitored word reaches the server with its short context; the marker words must appear in no file under the
agent's state folder (outbox database with its WAL, status, cached config), in no log record and in no byte
sent to the server.
"""

import logging
import re
import time

import pytest
from http_stub import Reply, StubServer

from safeguard_agent.config import Enrolment, save_enrolment
from safeguard_agent.runtime import Agent
from safeguard_agent.sync import DEFAULT_SETTINGS
from safeguard_agent.testing import XvfbDisplay, files_under, focus, press_keys, type_text

pytestmark = pytest.mark.integration

API = "/api/v1/agent/"
CONFIG = {
    "version": "v1",
    "policies": [
        {
            "id": "6f1c7a52-8d9e-4f3b-a1c2-0d9e8f7a6b5c",
            "name": "Weapons",
            "category": "weapons",
            "illegal_content": False,
            "keywords": [{"id": 1, "text": "pipe bomb", "match_kind": "phrase", "severity": "high"}],
        }
    ],
    "settings": dict(DEFAULT_SETTINGS),
}
# Words that exist nowhere else: if any of them turns up on disk, in a log or on the wire, keystrokes leaked.
FAR_MARKER = "zanzibarquokka"
OTHER_WINDOW_MARKER = "xylophonewombat"
TYPED_BEFORE = f"my login is {FAR_MARKER} and then lots of ordinary chatter about homework and football practice "
TYPED_MATCH = "so we could build a pipe bomb in science "


def wait_for(condition, timeout: float = 20.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


def encodings(word: str) -> list[bytes]:
    return [word.encode("utf-8"), word.encode("utf-16-le"), word.encode("utf-32-le")]


def test_typed_text_reaches_no_file_log_or_request_except_the_capture_context(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with XvfbDisplay() as display, StubServer() as server:
        server.on("GET", API + "config", Reply(200, CONFIG, {"ETag": '"v1"'}))
        server.on("POST", API + "heartbeat", Reply(200, {"commands": [], "server_time": "x", "groups": []}))
        server.on("POST", API + "events", Reply(200, {"accepted": 1, "duplicates": []}))
        server.on("POST", API + "captures", Reply(201, {}))
        chat = display.open_xterm("Chat")
        notes = display.open_xterm("Notes")
        save_enrolment(tmp_path, Enrolment(server=server.url, device_id="dev-1", token="tok-1"))
        agent = Agent(tmp_path, hostname="LAB1-PC07", monitors=True, evidence=False)
        agent.start()
        try:
            assert agent.keyboard is not None and agent.activity is not None, "the monitors did not start"
            wait_for(lambda: agent.sync.source == "server", message="the policy")

            focus(notes)
            type_text(f"dear diary {OTHER_WINDOW_MARKER} today ")
            press_keys("Return")
            focus(chat)
            type_text(TYPED_BEFORE + TYPED_MATCH)

            captures = wait_for(lambda: server.sent(API + "captures"), message="the capture on the server")
        finally:
            agent.stop(drain_seconds=5)

    metadata = captures[0].multipart()["metadata"][1].decode()
    assert "pipe bomb" in metadata
    assert "build a pipe bomb" in metadata  # the context made it...
    assert FAR_MARKER not in metadata  # ...but not text 80 characters away from the match

    state_files = files_under(tmp_path)
    assert any(path.name.startswith("outbox") for path in state_files), state_files  # the outbox was looked at
    for path in state_files:
        content = path.read_bytes()
        for marker in (FAR_MARKER, OTHER_WINDOW_MARKER):
            assert not any(encoded in content for encoded in encodings(marker)), f"{marker} written to {path}"

    assert caplog.records, "logging was captured"
    log_text = "\n".join(f"{record.getMessage()} {record.args!r} {record.exc_text or ''}" for record in caplog.records)
    for marker in (FAR_MARKER, OTHER_WINDOW_MARKER, "ordinary chatter"):
        assert marker not in log_text
        assert marker not in caplog.text
    # A leak one key at a time ("key 'z'", "char='a'") spells the marker out across records.
    messages = "\n".join(record.getMessage() for record in caplog.records)
    single_characters = "".join(re.findall(r"""['"](.)['"]""", messages))
    assert FAR_MARKER not in single_characters
    keyboard_path = [
        r
        for r in caplog.records
        if r.name.startswith(("safeguard_agent.monitors.keyboard", "safeguard_agent.detection"))
    ]
    assert keyboard_path == []  # typing is silent: the keyboard path has nothing to log when all is well

    for request in server.requests:
        for marker in (FAR_MARKER, OTHER_WINDOW_MARKER):
            assert marker.encode() not in request.body, f"{marker} sent to {request.path}"
