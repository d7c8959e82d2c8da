"""The agent API contract, exercised the way an outside client would: plain HTTP, standard library only.

Nothing here imports the server's code beyond setting up an enrolment code: if the contract
(paths, fields, status codes, the error shape) changes, this test notices.
"""

import io
import json
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from PIL import Image

from tests.factories import KeywordFactory

pytestmark = pytest.mark.django_db(transaction=True)


class Http:
    def __init__(self, base: str):
        self.base = base
        self.token: str | None = None

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        if self.token:
            request.add_header("Authorization", f"Device {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback test server)
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method: str, path: str, payload=None, headers: dict | None = None, raw: bytes | None = None):
        body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
        status, response_headers, content = self.call(
            method, path, body, {"Content-Type": "application/json", **(headers or {})}
        )
        return status, response_headers, (json.loads(content) if content else None)

    def multipart(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]):
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, (filename, data, content_type) in files.items():
            header = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            )
            parts.append(header.encode() + data + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        status, _, content = self.call(
            "POST", path, b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        return status, (json.loads(content) if content else None)


def now_iso(offset: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + offset).isoformat()


def window_event(index: int) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "window",
        "occurred_at": now_iso(timedelta(seconds=-index)),
        "user": "HILLSIDE\\contract",
        "data": {"title": f"Document {index} - Word", "application": "winword.exe"},
    }


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), "white").save(buffer, "PNG")
    return buffer.getvalue()


def test_a_client_written_from_the_contract_alone(live_server, capsys):
    KeywordFactory(text="unalive", severity="severe")
    call_command("create_enrolment_code", "--uses", "1")
    code = capsys.readouterr().out.strip().splitlines()[-1]
    http = Http(live_server.url)

    status, _, enrolled = http.json(
        "POST", "/api/v1/agent/enrol", {"code": code, "hostname": "LAB-PC01", "os": "Linux", "agent_version": "1.0"}
    )
    assert status == 201, enrolled
    assert set(enrolled) >= {"device_id", "token"}
    http.token = enrolled["token"]

    status, headers, config = http.json("GET", "/api/v1/agent/config")
    assert status == 200
    etag = headers["ETag"]
    assert any(k["text"] == "unalive" for p in config["policies"] for k in p["keywords"])
    status, _, body = http.json("GET", "/api/v1/agent/config", headers={"If-None-Match": etag})
    assert status == 304 and body is None

    batch = {"events": [window_event(i) for i in range(500)]}
    status, _, first = http.json("POST", "/api/v1/agent/events", batch)
    assert status == 200 and first == {"accepted": 500, "duplicates": []}
    status, _, second = http.json("POST", "/api/v1/agent/events", batch)
    assert status == 200 and second["accepted"] == 0
    assert sorted(second["duplicates"]) == sorted(event["id"] for event in batch["events"])

    metadata = {
        "id": str(uuid.uuid4()),
        "occurred_at": now_iso(),
        "user": "HILLSIDE\\contract",
        "keyword": "unalive",
        "severity": "severe",
        "context": "i want to unalive myself",
        "application": "notepad",
        "window_title": "Untitled - Notepad",
        "url": "",
    }
    status, created = http.multipart(
        "/api/v1/agent/captures", {"metadata": json.dumps(metadata)}, {"screenshot": ("s.png", png(), "image/png")}
    )
    assert status == 201, created

    # Clear 400s, each naming the field at fault.
    invalid_batch = {"events": [window_event(0), {**window_event(1), "occurred_at": "yesterday"}]}
    status, _, error = http.json("POST", "/api/v1/agent/events", invalid_batch)
    assert status == 400 and "events.1.occurred_at" in error["fields"], error

    unknown_type = {"events": [{**window_event(0), "type": "keylog"}]}
    status, _, error = http.json("POST", "/api/v1/agent/events", unknown_type)
    assert status == 400 and "events.0.type" in error["fields"], error

    status, _, error = http.json("POST", "/api/v1/agent/events", raw=b'{"events": [')
    assert status == 400 and error["error"] and error["fields"], error

    status, error = http.multipart(
        "/api/v1/agent/captures",
        {"metadata": json.dumps({**metadata, "id": str(uuid.uuid4())})},
        {"screenshot": ("s.png", b"GIF89a not really a png", "image/png")},
    )
    assert status == 400 and "screenshot" in error["fields"], error
