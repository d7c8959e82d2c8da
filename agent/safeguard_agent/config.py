"""Where the agent keeps its state, and the small files in it.

The state folder holds:

* `agent.json`   the enrolment: server address, device id and the device token (mode 0600, and on
                 Windows a folder ACL of SYSTEM, Administrators and the agent's account: only the
                 agent's own account may read it, since the token speaks for the device);
* `status.json`  what `safeguard-agent status` prints: last contact, last sync, policy version,
                 the pause in force (mode 0600 too, for simplicity);
* `config.json`  the last good policy config from the server (see sync.py);
* `outbox.db`    the durable outbox (see outbox.py).

Its place: `--config-dir` > the SAFEGUARD_AGENT_HOME variable > the OS's per-machine folder
(`/var/lib/safeguard-agent` when running as root on Linux, else `~/.local/state/safeguard-agent`;
`%PROGRAMDATA%\\Safeguard` on Windows).

Every file is replaced atomically (write a temporary file, fsync, rename, fsync the folder), so a
crash or power cut leaves the old or the new version, never half of one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENV_HOME = "SAFEGUARD_AGENT_HOME"
ENROLMENT_FILE = "agent.json"
STATUS_FILE = "status.json"
CONFIG_FILE = "config.json"
OUTBOX_FILE = "outbox.db"
LOG_FILE = "agent.log"


class NotEnrolled(Exception):
    """The agent has no enrolment in its state folder: run `safeguard-agent enrol` first."""


def default_state_dir() -> Path:
    """The OS's per-machine folder for the agent's state."""
    if sys.platform == "win32":
        base = os.environ.get("PROGRAMDATA") or r"C:\ProgramData"
        return Path(base) / "Safeguard"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/safeguard-agent")
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "safeguard-agent"


def state_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The state folder: `--config-dir`, else SAFEGUARD_AGENT_HOME, else the OS default."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    return default_state_dir()


# Well-known Windows SIDs, valid whatever the system's language: LocalSystem and Administrators.
_SID_SYSTEM = "*S-1-5-18"
_SID_ADMINISTRATORS = "*S-1-5-32-544"


def ensure_state_dir(path: Path) -> Path:
    """Create the folder, readable by the agent's account only, and return it.

    POSIX: mode 0700. Windows has no modes, and a folder under ProgramData inherits "Users: read",
    so every pupil could read the device token: the folder's inherited entries are removed and only
    LocalSystem, Administrators and the agent's own account get access; files created in it
    (the token's temporary file included) inherit that from the start.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        os.chmod(path, 0o700)
    elif sys.platform == "win32":
        restrict_windows_folder(path)
    return path


def restrict_windows_folder(path: Path, run: Callable[..., Any] = subprocess.run) -> None:
    """Replace the folder's ACL with full control for SYSTEM, Administrators and this account only.

    Uses Windows' own `icacls` (present on every supported Windows). `run` is the boundary the
    tests fake on Linux, where icacls does not exist.
    """
    account = _windows_account()
    grants = [f"{sid}:(OI)(CI)F" for sid in (_SID_SYSTEM, _SID_ADMINISTRATORS)]
    if account:
        grants.append(f"{account}:(OI)(CI)F")
    command = ["icacls", str(path), "/inheritance:r", "/grant:r", *grants]
    result = run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        # Refuse to go on: an enrolment written into a folder every pupil can read leaks the token.
        raise PermissionError(f"could not restrict {path} to the agent's account: {result.stderr or result.stdout}")


def _windows_account() -> str | None:
    """DOMAIN\\name of the account the agent runs as (a service as SYSTEM is covered by its SID)."""
    name = os.environ.get("USERNAME")
    if not name or name.endswith("$"):
        return None  # the machine account: LocalSystem's SID already grants it
    domain = os.environ.get("USERDOMAIN")
    return f"{domain}\\{name}" if domain else name


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open a directory for fsync; MoveFileEx is durable enough there.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` durably: a crash leaves the old content or the new, never a mix.

    The temporary file is created with `mode` from the start (no window where another account
    could read a token), fsynced, renamed over the target, and the folder is fsynced so the
    rename itself survives a power cut.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if os.name == "posix":
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def write_json(path: Path, value: Any, *, mode: int = 0o600) -> None:
    write_atomic(path, json.dumps(value, indent=2, sort_keys=True).encode("utf-8"), mode=mode)


def read_json(path: Path) -> Any | None:
    """The file's JSON, or None when it is missing or unreadable (a damaged file is not fatal)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class Enrolment:
    """What enrolment gave this device: where to report, who it is, and its credential."""

    server: str
    device_id: str
    token: str
    enrolled_at: str = ""

    @property
    def api_base(self) -> str:
        return self.server.rstrip("/") + "/api/v1/agent/"


def save_enrolment(directory: Path, enrolment: Enrolment) -> Path:
    ensure_state_dir(directory)
    path = directory / ENROLMENT_FILE
    write_json(path, asdict(enrolment), mode=0o600)
    return path


def load_enrolment(directory: Path) -> Enrolment:
    """The stored enrolment; raises NotEnrolled when there is none (or it is damaged)."""
    data = read_json(directory / ENROLMENT_FILE)
    if not isinstance(data, dict) or not all(
        isinstance(data.get(key), str) for key in ("server", "device_id", "token")
    ):
        raise NotEnrolled(f"This computer is not enrolled (no valid {directory / ENROLMENT_FILE}).")
    return Enrolment(
        server=data["server"],
        device_id=data["device_id"],
        token=data["token"],
        enrolled_at=str(data.get("enrolled_at", "")),
    )


@dataclass
class Status:
    """The agent's running record, for `safeguard-agent status` and the Properties window."""

    last_contact: str | None = None  # the last time the server answered anything (ISO 8601)
    last_sync: str | None = None  # the last time the config was fetched or confirmed unchanged
    policy_version: str | None = None
    paused_until: str | None = None  # a staff-PIN pause in force (survives a restart)
    extra: dict[str, Any] = field(default_factory=dict)


def load_status(directory: Path) -> Status:
    data = read_json(directory / STATUS_FILE)
    if not isinstance(data, dict):
        return Status()
    known = {key: data.get(key) for key in ("last_contact", "last_sync", "policy_version", "paused_until")}
    return Status(**known, extra=data.get("extra") or {})


def save_status(directory: Path, status: Status) -> None:
    ensure_state_dir(directory)
    write_json(directory / STATUS_FILE, asdict(status))
