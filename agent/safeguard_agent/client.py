"""The REST client for the server's agent API (`/api/v1/agent/...`).

Every call returns an `ApiResult` whose `outcome` says what the caller should do, so the outbox
and the loops never look at raw status codes or catch `requests` exceptions:

* OK / NOT_MODIFIED  the server took it (2xx) or the config is unchanged (304);
* REJECTED           a 4xx other than 401/408/429: this request will never succeed as it is;
                     `error`/`fields` hold the server's explanation (the API's one error shape);
* UNAUTHORIZED       401: the device token is unknown or revoked: keep everything, re-enrol;
* RETRY              5xx, 408 or 429: the server is unwell or busy: back off and try again;
* NETWORK            no answer at all (refused, DNS, TLS, timeout): back off and try again.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from safeguard_agent import __version__

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/agent/"
# (connect, read) seconds: connecting to a school server on the LAN is quick or it is not there.
DEFAULT_TIMEOUT = (5.0, 30.0)
UPLOAD_TIMEOUT = (5.0, 120.0)  # a 30-second recording over a slow link


class Outcome(enum.Enum):
    OK = "ok"
    NOT_MODIFIED = "not_modified"
    REJECTED = "rejected"
    UNAUTHORIZED = "unauthorized"
    RETRY = "retry"
    NETWORK = "network"


RETRYABLE_CLIENT_STATUSES = {408, 429}


@dataclass
class ApiResult:
    outcome: Outcome
    status: int | None = None
    body: Any = None
    error: str = ""
    fields: dict[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.OK, Outcome.NOT_MODIFIED)

    def describe(self) -> str:
        """One line for the log: status and the server's reason."""
        if self.outcome is Outcome.NETWORK:
            return f"no answer from the server ({self.error})"
        text = f"HTTP {self.status}"
        if self.error:
            text += f": {self.error}"
        if self.fields:
            text += " " + json.dumps(self.fields, ensure_ascii=False, sort_keys=True)
        return text


def classify(status: int) -> Outcome:
    if status == 304:
        return Outcome.NOT_MODIFIED
    if 200 <= status < 300:
        return Outcome.OK
    if status == 401:
        return Outcome.UNAUTHORIZED
    if status in RETRYABLE_CLIENT_STATUSES or status >= 500:
        return Outcome.RETRY
    if 400 <= status < 500:
        return Outcome.REJECTED
    return Outcome.RETRY  # 1xx/3xx we did not ask for: treat as a transient server oddity


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from our server; the caller's own back-off applies


def _image_type(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\x89PNG"):
        return "png", "image/png"
    if data.startswith(b"\xff\xd8"):
        return "jpg", "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp"
    return "bin", "application/octet-stream"


class ApiClient:
    """Talks to one Safeguard server as one device (`Authorization: Device <token>`).

    Thread-safe for the agent's use: each loop calls it from its own thread, and requests'
    Session pools connections (a Session is safe to share for plain requests like these).
    """

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        upload_timeout: tuple[float, float] = UPLOAD_TIMEOUT,
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"safeguard-agent/{__version__}"

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        return self.server + API_PREFIX + path.lstrip("/")

    # -- transport -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] | None = None,
        authenticate: bool = True,
    ) -> ApiResult:
        all_headers = dict(headers or {})
        if authenticate and self.token:
            all_headers["Authorization"] = f"Device {self.token}"
        try:
            response = self.session.request(
                method,
                self.url(path),
                json=json_body,
                data=data,
                files=files,
                headers=all_headers,
                timeout=timeout or self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            return ApiResult(Outcome.NETWORK, error=f"{type(error).__name__}: {error}")
        return self._result(response)

    def _result(self, response: requests.Response) -> ApiResult:
        outcome = classify(response.status_code)
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        error, fields = "", {}
        if not (200 <= response.status_code < 400):
            if isinstance(body, dict):
                error = str(body.get("error") or body.get("detail") or "")
                raw_fields = body.get("fields")
                if isinstance(raw_fields, dict):
                    fields = {
                        str(k): [str(r) for r in (v if isinstance(v, list) else [v])] for k, v in raw_fields.items()
                    }
            if not error:
                error = (response.text or response.reason or "").strip()[:300]
        return ApiResult(
            outcome,
            status=response.status_code,
            body=body,
            error=error,
            fields=fields,
            headers=response.headers,
            retry_after=_retry_after(response.headers),
        )

    # -- the endpoints ---------------------------------------------------------------------------

    def enrol(self, *, code: str, hostname: str, os_name: str, agent_version: str = __version__) -> ApiResult:
        """Trade an enrolment code for a device id and token (`body["device_id"]`, `body["token"]`)."""
        body = {"code": code, "hostname": hostname, "os": os_name, "agent_version": agent_version}
        return self.request("POST", "enrol", json_body=body, authenticate=False)

    def config(self, *, etag: str | None = None) -> ApiResult:
        headers = {"If-None-Match": etag} if etag else {}
        return self.request("GET", "config", headers=headers)

    def events(self, events: list[dict[str, Any]]) -> ApiResult:
        return self.request("POST", "events", json_body={"events": events})

    def capture(self, metadata: dict[str, Any], screenshot: bytes) -> ApiResult:
        extension, content_type = _image_type(screenshot)
        files = {
            "metadata": (None, json.dumps(metadata), "application/json"),
            "screenshot": (f"screenshot.{extension}", screenshot, content_type),
        }
        return self.request("POST", "captures", files=files, timeout=self.upload_timeout)

    def recording(
        self,
        *,
        capture_id: str,
        recording: bytes,
        started_at: str | None = None,
        duration_seconds: float | None = None,
    ) -> ApiResult:
        data = _recording_fields(started_at, duration_seconds)
        files = {"recording": ("recording.mp4", recording, "video/mp4")}
        return self.request(
            "POST", f"captures/{capture_id}/recording", data=data, files=files, timeout=self.upload_timeout
        )

    def on_demand_recording(
        self,
        *,
        command_id: str,
        recording: bytes,
        started_at: str | None = None,
        duration_seconds: float | None = None,
    ) -> ApiResult:
        """A recording staff asked for with a `record_screen` command (no capture)."""
        data = {"command_id": command_id, **_recording_fields(started_at, duration_seconds)}
        files = {"recording": ("recording.mp4", recording, "video/mp4")}
        return self.request("POST", "recordings", data=data, files=files, timeout=self.upload_timeout)

    def thumbnail(self, image: bytes) -> ApiResult:
        extension, content_type = _image_type(image)
        return self.request("POST", "thumbnail", files={"image": (f"thumbnail.{extension}", image, content_type)})

    def heartbeat(self, payload: dict[str, Any]) -> ApiResult:
        return self.request("POST", "heartbeat", json_body=payload)

    def confide(self, payload: dict[str, Any]) -> ApiResult:
        return self.request("POST", "confide", json_body=payload)

    def assistance(self, payload: dict[str, Any]) -> ApiResult:
        return self.request("POST", "assistance", json_body=payload)

    def pause(self, *, pin: str, minutes: int, user: str | None = None) -> ApiResult:
        """Ask the server to check a staff PIN and record a pause (`body["monitoring_paused_until"]`)."""
        body: dict[str, Any] = {"pin": pin, "minutes": minutes}
        if user:
            body["user"] = user
        return self.request("POST", "pause", json_body=body)


def _recording_fields(started_at: str | None, duration_seconds: float | None) -> dict[str, str]:
    data: dict[str, str] = {}
    if started_at:
        data["started_at"] = started_at
    if duration_seconds is not None:
        data["duration_seconds"] = f"{duration_seconds:.3f}"
    return data
