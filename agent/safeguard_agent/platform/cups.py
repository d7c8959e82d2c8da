"""The CUPS print queue on Linux (and macOS): an IPP Get-Jobs request, with `lpstat` as the fallback.

Why IPP and not only `lpstat -o`: lpstat's job list has the job id, owner, size and date but neither the
document's name nor its page count, and `-W not-completed` misses any job that finishes between two polls
(a job to a fast printer completes in well under a second). One IPP Get-Jobs request with
`which-jobs=all` returns finished jobs too, with `job-name` (the document) and the impression counts. It
needs nothing but the standard library: IPP is a small binary encoding POSTed over HTTP to the CUPS socket.

Where the scheduler is: $CUPS_SERVER (a socket path or host[:port]), else ServerName in ~/.cups/client.conf
or /etc/cups/client.conf, else the local socket /run/cups/cups.sock, else localhost:631 — the order libcups
uses. If IPP fails (a CUPS too old, a refused request), `lpstat -W all -o` is parsed instead (no document
names, no pages); no lpstat either means no print logging, and an empty list.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from safeguard_agent.platform.base import PrintJob

log = logging.getLogger(__name__)

_TIMEOUT = 5.0
_GET_JOBS = 0x000A
_JOB_STATE_FINISHED = 7  # 7 canceled, 8 aborted, 9 completed; 3-6 pending/held/processing/stopped
_REQUESTED = (
    "job-id",
    "job-name",
    "job-printer-uri",
    "job-originating-user-name",
    "job-state",
    "job-impressions",
    "job-impressions-completed",
    "job-media-sheets-completed",
)

# IPP value tags (RFC 8010 §3.5)
_TAG_OPERATION = 0x01
_TAG_JOB = 0x02
_TAG_END = 0x03
_TAG_INTEGER = 0x21
_TAG_BOOLEAN = 0x22
_TAG_ENUM = 0x23
_TAG_TEXT_LANG = 0x35
_TAG_NAME_LANG = 0x36
_TAG_NAME = 0x42
_TAG_KEYWORD = 0x44
_TAG_URI = 0x45
_TAG_CHARSET = 0x47
_TAG_LANGUAGE = 0x48


class IppError(Exception):
    """The scheduler could not be reached or answered something we cannot read."""


# ----------------------------------------------------------------------------------------- where is CUPS
def cups_server() -> str:
    """The scheduler's address: a Unix socket path (starts with "/") or "host:port"."""
    configured = os.environ.get("CUPS_SERVER", "").strip()
    if not configured:
        for config in (Path.home() / ".cups" / "client.conf", Path("/etc/cups/client.conf")):
            configured = _server_name_in(config)
            if configured:
                break
    if configured:
        configured = configured.split("/version=", 1)[0]
        if configured.startswith("/"):
            return configured
        return configured if ":" in configured else f"{configured}:631"
    for candidate in ("/run/cups/cups.sock", "/var/run/cups/cups.sock"):
        if os.path.exists(candidate):
            return candidate
    return "localhost:631"


def _server_name_in(config: Path) -> str:
    try:
        lines = config.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for line in lines:
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].lower() == "servername":
            return parts[1].strip()
    return ""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def _connection(server: str, timeout: float) -> http.client.HTTPConnection:
    if server.startswith("/"):
        return _UnixHTTPConnection(server, timeout)
    host, _, port = server.rpartition(":")
    return http.client.HTTPConnection(host or server, int(port or 631), timeout=timeout)


# ---------------------------------------------------------------------------------------------- encoding
def _attribute(tag: int, name: str, values: Iterable[bytes]) -> bytes:
    out = b""
    for index, value in enumerate(values):
        encoded_name = name.encode() if index == 0 else b""
        out += struct.pack(">BH", tag, len(encoded_name)) + encoded_name + struct.pack(">H", len(value)) + value
    return out


def get_jobs_request(*, user: str, which: str = "all", request_id: int = 1) -> bytes:
    """An IPP/2.0 Get-Jobs request for every printer of the scheduler."""
    body = struct.pack(">BBHI", 2, 0, _GET_JOBS, request_id)
    body += bytes([_TAG_OPERATION])
    body += _attribute(_TAG_CHARSET, "attributes-charset", [b"utf-8"])
    body += _attribute(_TAG_LANGUAGE, "attributes-natural-language", [b"en"])
    body += _attribute(_TAG_URI, "printer-uri", [b"ipp://localhost/"])
    if user:
        body += _attribute(_TAG_NAME, "requesting-user-name", [user.encode()])
    body += _attribute(_TAG_KEYWORD, "which-jobs", [which.encode()])
    body += _attribute(_TAG_KEYWORD, "requested-attributes", [name.encode() for name in _REQUESTED])
    return body + bytes([_TAG_END])


def parse_response(data: bytes) -> tuple[int, list[dict[str, list[object]]]]:
    """(status code, the job groups) of an IPP response; each group maps a name to its values."""
    if len(data) < 9:
        raise IppError("IPP response too short")
    status = struct.unpack(">H", data[2:4])[0]
    position = 8
    groups: list[dict[str, list[object]]] = []
    current: dict[str, list[object]] | None = None
    last_name = ""
    while position < len(data):
        tag = data[position]
        position += 1
        if tag == _TAG_END:
            break
        if tag < 0x10:  # a delimiter: a new attribute group starts
            current = {} if tag == _TAG_JOB else None
            if current is not None:
                groups.append(current)
            continue
        try:
            (name_length,) = struct.unpack(">H", data[position : position + 2])
            name = data[position + 2 : position + 2 + name_length].decode("utf-8", "replace")
            position += 2 + name_length
            (value_length,) = struct.unpack(">H", data[position : position + 2])
            raw = data[position + 2 : position + 2 + value_length]
            position += 2 + value_length
        except struct.error as error:
            raise IppError("truncated IPP attribute") from error
        if name:
            last_name = name
        if current is not None:
            current.setdefault(last_name, []).append(_value(tag, raw))
    return status, groups


def _value(tag: int, raw: bytes) -> object:
    if tag in (_TAG_INTEGER, _TAG_ENUM) and len(raw) == 4:
        return struct.unpack(">i", raw)[0]
    if tag == _TAG_BOOLEAN and len(raw) == 1:
        return bool(raw[0])
    if tag in (_TAG_TEXT_LANG, _TAG_NAME_LANG) and len(raw) >= 4:
        language_length = struct.unpack(">H", raw[:2])[0]
        text_start = 2 + language_length + 2
        return raw[text_start:].decode("utf-8", "replace")
    if 0x40 <= tag <= 0x4F:
        return raw.decode("utf-8", "replace")
    return raw


# ------------------------------------------------------------------------------------------------- jobs
def _first(group: dict[str, list[object]], name: str, default: object = None) -> object:
    values = group.get(name)
    return values[0] if values else default


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _job_from_group(group: dict[str, list[object]]) -> PrintJob | None:
    job_id = _first(group, "job-id")
    if not isinstance(job_id, int):
        return None
    uri = str(_first(group, "job-printer-uri", "") or "")
    printer = unquote(urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]) if uri else ""
    state = _first(group, "job-state", 0)
    finished = isinstance(state, int) and state >= _JOB_STATE_FINISHED
    pages = (
        _positive(_first(group, "job-impressions-completed"))
        or _positive(_first(group, "job-impressions"))
        or _positive(_first(group, "job-media-sheets-completed"))
    )
    return PrintJob(
        id=f"{printer}-{job_id}",
        document=str(_first(group, "job-name", "") or ""),
        printer=printer,
        pages=pages,
        user=str(_first(group, "job-originating-user-name", "") or ""),
        finished=finished,
    )


def ipp_print_jobs(*, user: str, server: str | None = None, timeout: float = _TIMEOUT) -> list[PrintJob]:
    """Every job the scheduler still knows (pending and finished), in the scheduler's order."""
    connection = _connection(server or cups_server(), timeout)
    try:
        connection.request("POST", "/", body=get_jobs_request(user=user), headers={"Content-Type": "application/ipp"})
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as error:
        raise IppError(f"CUPS at {server or cups_server()} did not answer: {error}") from error
    finally:
        connection.close()
    if response.status != 200:
        raise IppError(f"CUPS answered HTTP {response.status}")
    status, groups = parse_response(data)
    if status >= 0x0400:  # client-error-* / server-error-*; 0x0406 not-found means "no jobs"
        if status == 0x0406:
            return []
        raise IppError(f"CUPS refused Get-Jobs (IPP status 0x{status:04x})")
    return [job for job in map(_job_from_group, groups) if job is not None]


def lpstat_print_jobs(*, timeout: float = _TIMEOUT) -> list[PrintJob]:
    """The fallback: `lpstat -W all -o` (id, owner, size, date; no document name, no pages)."""
    lpstat = shutil.which("lpstat")
    if lpstat is None:
        return []
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv
            [lpstat, "-W", "all", "-o"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("lpstat failed: %s", error)
        return []
    return parse_lpstat(result.stdout)


def parse_lpstat(output: str) -> list[PrintJob]:
    """Parse `lpstat -o` lines: "Office_Laser-42   jsmith   10240   Sat 28 Nov 2026 14:23:48"."""
    jobs = []
    for line in output.splitlines():
        if not line or line[0].isspace():
            continue  # continuation lines of `lpstat -l`
        parts = line.split()
        if len(parts) < 2 or "-" not in parts[0]:
            continue
        printer, _, number = parts[0].rpartition("-")
        if not number.isdigit():
            continue
        # finished=True: lpstat will never tell us more about the job, so there is nothing to wait for.
        jobs.append(PrintJob(id=parts[0], document="", printer=printer, user=parts[1], finished=True))
    return jobs


def cups_print_jobs(*, user: str) -> list[PrintJob]:
    """IPP first, lpstat when IPP does not work; [] when neither does (no CUPS on this machine)."""
    try:
        return ipp_print_jobs(user=user)
    except IppError as error:
        log.debug("IPP Get-Jobs failed (%s); falling back to lpstat", error)
    return lpstat_print_jobs()
