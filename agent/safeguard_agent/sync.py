"""Policy sync: the keyword policies and agent settings from `GET /api/v1/agent/config`.

The config is fetched with its ETag (`If-None-Match`), so an unchanged config costs a 304 and no
rebuild. The last good copy is kept on disk (`config.json` in the state folder) and loaded at
boot, so monitoring works from the first second even when the server is away. A copy is "good"
when the keyword engine builds from it: a config the engine refuses is logged and ignored, and
the previous one stays in force.

Before the very first successful fetch (enrolment fetches one, so this is rare) the agent uses
the keyword library shipped with it, so a computer is never unmonitored for want of a server;
its captures name no policy id and the server finds the policy from the keyword's text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safeguard_agent.client import ApiClient, ApiResult, Outcome
from safeguard_agent.config import CONFIG_FILE, read_json, write_json
from safeguard_agent.keywords.engine import KeywordEngine
from safeguard_agent.keywords.library import config_specs, library_specs, load_library

log = logging.getLogger(__name__)

DEFAULT_SETTINGS: dict[str, Any] = {
    "thumbnail_interval_seconds": 10,
    "heartbeat_interval_seconds": 60,
    "config_refresh_seconds": 300,
    "recording_seconds": 30,
    "confide_desktop_button": False,
    "console_url": "",
}


def validate_config(config: Any) -> dict[str, Any]:
    """The config if it has the shape the server documents; ValueError naming what is wrong."""
    if not isinstance(config, dict):
        raise ValueError("config is not a JSON object")
    if not isinstance(config.get("policies"), list):
        raise ValueError('config has no "policies" list')
    if not isinstance(config.get("settings", {}), dict):
        raise ValueError('config "settings" is not an object')
    for policy in config["policies"]:
        if not isinstance(policy, dict) or not isinstance(policy.get("keywords", []), list):
            raise ValueError("a policy is not an object with a keywords list")
    return config


def engine_from_config(config: dict[str, Any]) -> KeywordEngine:
    return KeywordEngine.build(*config_specs(config))


def _without_keywords(config: dict[str, Any]) -> dict[str, Any]:
    """The config to keep in memory once its engine is built: policies without their keyword lists.

    The engine holds what matching needs; the parsed lists (about 3 MB of dicts for 5,000 keywords) are
    read again only from disk, so they need not stay resident."""
    policies = [
        {key: value for key, value in policy.items() if key not in ("keywords", "allow_phrases")}
        for policy in config["policies"]
    ]
    return {**config, "policies": policies}


class PolicySync:
    """Holds the config in force and its keyword engine; `refresh()` asks the server for a newer one."""

    def __init__(
        self,
        client: ApiClient | None,
        directory: Path,
        *,
        on_change: Callable[[PolicySync], None] | None = None,
        fallback_library: str | None = "default",
    ) -> None:
        self.client = client
        self.directory = directory
        self.on_change = on_change
        self.fallback_library = fallback_library
        self._lock = threading.Lock()
        self.config: dict[str, Any] | None = None
        self.etag: str | None = None
        self.version: str | None = None
        self.source = "none"  # "server", "disk" or "library"
        self.last_sync: datetime | None = None
        self._engine: KeywordEngine | None = None
        self._policy_ids: dict[str, str] = {}

    @property
    def path(self) -> Path:
        return self.directory / CONFIG_FILE

    # -- what the rest of the agent reads -----------------------------------------------------------

    @property
    def engine(self) -> KeywordEngine:
        """The keyword engine of the config in force (an empty engine before any config loads)."""
        engine = self._engine
        if engine is None:
            engine = self._engine = KeywordEngine.build([])
        return engine

    def engine_provider(self) -> KeywordEngine:
        """For the detector: called on each use, so a refreshed config takes effect at once."""
        return self.engine

    @property
    def settings(self) -> dict[str, Any]:
        settings = dict(DEFAULT_SETTINGS)
        if self.config:
            settings.update({k: v for k, v in self.config.get("settings", {}).items() if v is not None})
        return settings

    def setting(self, name: str) -> Any:
        return self.settings[name]

    def policy_ids(self) -> dict[str, str]:
        """Policy name -> UUID of the config in force (for the detector's DetectedMatch.policy_id)."""
        return self._policy_ids

    def policy_id_for(self, policy_name: str) -> str | None:
        """The UUID of a policy named in a match (None for the shipped library's policies)."""
        return self._policy_ids.get(policy_name)

    # -- loading --------------------------------------------------------------------------------------

    def _install(self, config: dict[str, Any], *, etag: str | None, source: str) -> None:
        engine = engine_from_config(config)  # raises on a config the engine cannot use
        with self._lock:
            self.config = _without_keywords(config)
            self.etag = etag
            self.version = config.get("version")
            self.source = source
            self._engine = engine
            self._policy_ids = {
                p["name"]: str(p["id"])
                for p in config["policies"]
                if isinstance(p, dict) and p.get("id") and p.get("name")
            }
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                log.exception("Error while applying a new config")

    def load_cached(self) -> bool:
        """Load the last good copy from disk; else the shipped library. True if a server copy loaded."""
        stored = read_json(self.path)
        if isinstance(stored, dict) and "config" in stored:
            try:
                self._install(validate_config(stored["config"]), etag=stored.get("etag"), source="disk")
                saved = stored.get("saved_at")
                self.last_sync = datetime.fromisoformat(saved) if saved else None
                log.info("Loaded the last good config from %s (version %s).", self.path, self.version)
                return True
            except (ValueError, KeyError, TypeError) as error:
                log.error("The stored config %s is unusable (%s); ignoring it.", self.path, error)
        if self.fallback_library:
            engine = KeywordEngine.build(*library_specs(load_library(self.fallback_library)))
            with self._lock:
                self._engine = engine
                self.source = "library"
            log.warning(
                "No config from the server yet: monitoring with the shipped '%s' keyword library until one arrives.",
                self.fallback_library,
            )
        return False

    def store(self, config: dict[str, Any], etag: str | None) -> None:
        write_json(
            self.path,
            {"etag": etag, "config": config, "saved_at": datetime.now(UTC).isoformat()},
            mode=0o600,
        )

    def refresh(self) -> ApiResult:
        """Fetch the config if it changed (ETag). Keeps the current one on any failure."""
        if self.client is None:
            raise RuntimeError("no client to fetch the config with")
        # Only send the ETag when we really have that config: otherwise a 304 would leave us without one.
        etag = self.etag if self.source in ("server", "disk") else None
        result = self.client.config(etag=etag)
        now = datetime.now(UTC)
        if result.outcome is Outcome.NOT_MODIFIED:
            self.last_sync = now
            return result
        if result.outcome is not Outcome.OK:
            log.warning("Could not refresh the config: %s; keeping version %s.", result.describe(), self.version)
            return result
        try:
            config = validate_config(result.body)
            new_etag = result.headers.get("ETag")
            self._install(config, etag=new_etag, source="server")
        except (ValueError, KeyError, TypeError) as error:
            log.error("The server sent a config the agent cannot use (%s); keeping version %s.", error, self.version)
            return result
        self.store(config, new_etag)
        self.last_sync = now
        log.info("Config version %s in force (%d policies).", self.version, len(config["policies"]))
        return result
