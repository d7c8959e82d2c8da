"""The REST client for the server's agent API (`/api/v1/agent/...`).

Every call returns an `ApiResult` whose `outcome` says what the caller should do, so the outbox
and the loops never look at raw status codes or catch transport exceptions:

* OK / NOT_MODIFIED  the server took it (2xx) or the config is unchanged (304);
* REJECTED           a 4xx other than 401/408/429: this request will never succeed as it is;
                     `error`/`fields` hold the server's explanation (the API's one error shape);
* UNAUTHORIZED       401: the device token is unknown or revoked: keep everything, re-enrol;
* RETRY              5xx, 408 or 429: the server is unwell or busy: back off and try again;
* NETWORK            no answer at all (refused, DNS, TLS, timeout): back off and try again.

The transport is the standard library's `http.client` with a few kept-alive connections, not
`requests`: the agent makes a handful of plain calls, and requests with urllib3, idna, certifi and
charset-normalizer cost about 9 MB of a pupil's computer's memory (measured: the agent's RSS target is
80 MB). TLS is verified against the operating system's certificate store (`ssl.create_default_context`),
where a school's own CA is installed. Proxies come from the usual environment variables (and the
registry on Windows), as with requests.
"""

from __future__ import annotations

import enum
import http.client
import json
import logging
import os
import select
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

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
MAX_IDLE_CONNECTIONS = 4  # the sender, heartbeat, config and capture threads each may hold one
# A kept-alive connection the server closed while idle fails like this on reuse, before any answer.
_STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Headers(dict):
    """Response headers, looked up without regard to case (`headers.get("etag")`)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__((str(name).lower(), value) for name, value in items)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


@dataclass
class _Response:
    status: int
    reason: str
    headers: Headers
    content: bytes


def multipart_body(data: Mapping[str, str] | None, files: Mapping[str, tuple]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type. `files`: name -> (file name or None, content,
    content type); a part without a file name is a plain form field (the captures' JSON metadata)."""
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    parts = [(name, None, value, None) for name, value in (data or {}).items()]
    parts += [(name, *spec) for name, spec in files.items()]
    for name, filename, content, content_type in parts:
        disposition = f'form-data; name="{quote(name)}"'
        if filename is not None:
            disposition += f'; filename="{quote(filename)}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        chunks += [head.encode(), b"\r\n", content.encode() if isinstance(content, str) else bytes(content), b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL for the server from the environment (and the registry on Windows), or None.

    urllib.request (1.7 MB) is imported only where a proxy may be configured."""
    if os.name != "nt" and not any(name.lower().endswith("_proxy") for name in os.environ):
        return None
    from urllib.request import getproxies, proxy_bypass

    proxy = getproxies().get(scheme)
    if not proxy or proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


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

    Thread-safe for the agent's use: each loop calls it from its own thread; a call takes an idle
    kept-alive connection (or opens one) and gives it back when the answer has been read.
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
        self.user_agent = f"safeguard-agent/{__version__}"
        self._idle: list[tuple[str, http.client.HTTPConnection]] = []  # (server it talks to, connection)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, connection in idle:
            connection.close()

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
        all_headers = {"User-Agent": self.user_agent, "Accept": "application/json", **(headers or {})}
        if authenticate and self.token:
            all_headers["Authorization"] = f"Device {self.token}"
        body: bytes | None = None
        if files:
            body, all_headers["Content-Type"] = multipart_body(data, files)
        elif data is not None:
            body, all_headers["Content-Type"] = urlencode(data).encode(), "application/x-www-form-urlencoded"
        elif json_body is not None:
            body, all_headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        try:
            response = self._send(method, self.url(path), body, all_headers, timeout or self.timeout)
        except (OSError, http.client.HTTPException, ValueError) as error:
            return ApiResult(Outcome.NETWORK, error=f"{type(error).__name__}: {error}")
        return self._result(response)

    # -- connections -----------------------------------------------------------------------------

    def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: tuple[float, float]
    ) -> _Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        origin = f"{parts.scheme}://{parts.netloc}"
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        proxy = _proxy_for(parts.scheme, parts.hostname)
        if proxy is not None and parts.scheme == "http":
            target = url  # a plain-HTTP proxy takes the whole URL
        reused = self._take(origin)
        while True:
            connection = reused or self._connect(parts, proxy, timeout[0])
            try:
                connection.sock.settimeout(timeout[1])  # type: ignore[union-attr]
                connection.request(method, target, body=body, headers=headers)
                answer = connection.getresponse()
                content = answer.read()
            except _STALE_CONNECTION_ERRORS:
                connection.close()
                if reused is None:
                    raise
                reused = None  # the server closed it while idle: once more on a new connection
                continue
            except BaseException:
                connection.close()
                raise
            response = _Response(answer.status, answer.reason, Headers(answer.getheaders()), content)
            if answer.will_close:
                connection.close()
            else:
                self._give_back(origin, connection)
            return response

    def _connect(self, parts: Any, proxy: str | None, connect_timeout: float) -> http.client.HTTPConnection:
        host, port = parts.hostname, parts.port
        connection: http.client.HTTPConnection
        if proxy is None:
            if parts.scheme == "https":
                connection = http.client.HTTPSConnection(host, port, timeout=connect_timeout)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        else:
            via = urlsplit(proxy)
            if parts.scheme == "https":
                connection = http.client.HTTPSConnection(via.hostname, via.port or 8080, timeout=connect_timeout)
                connection.set_tunnel(host, port or 443)
            else:
                connection = http.client.HTTPConnection(via.hostname, via.port or 8080, timeout=connect_timeout)
        connection.connect()  # with the connect timeout; the read timeout is set on the socket after
        return connection

    def _take(self, origin: str) -> http.client.HTTPConnection | None:
        """An idle connection to `origin` that the server has not closed, or None."""
        with self._lock:
            while True:
                index = next((i for i, (where, _) in enumerate(self._idle) if where == origin), None)
                if index is None:
                    return None
                _, connection = self._idle.pop(index)
                sock = connection.sock
                # An idle connection has nothing to read: if it is readable, the server closed it.
                if sock is not None and not select.select([sock], [], [], 0)[0]:
                    return connection
                connection.close()

    def _give_back(self, origin: str, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append((origin, connection))
                return
        connection.close()

    def _result(self, response: _Response) -> ApiResult:
        outcome = classify(response.status)
        body: Any = None
        if response.content:
            try:
                body = json.loads(response.content)
            except ValueError:
                body = None
        error, fields = "", {}
        if not (200 <= response.status < 400):
            if isinstance(body, dict):
                error = str(body.get("error") or body.get("detail") or "")
                raw_fields = body.get("fields")
                if isinstance(raw_fields, dict):
                    fields = {
                        str(k): [str(r) for r in (v if isinstance(v, list) else [v])] for k, v in raw_fields.items()
                    }
            if not error:
                text = response.content.decode("utf-8", "replace")
                error = (text or response.reason or "").strip()[:300]
        return ApiResult(
            outcome,
            status=response.status,
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
