"""Policy sync: ETag, the last good copy on disk, and monitoring from boot while the server is away."""

import json
import socket

import pytest
from http_stub import Reply, StubServer

from safeguard_agent.client import ApiClient, Outcome
from safeguard_agent.sync import DEFAULT_SETTINGS, PolicySync

API = "/api/v1/agent/"
POLICY_ID = "6f1c7a52-8d9e-4f3b-a1c2-0d9e8f7a6b5c"


def config(version: str = "v1", keyword: str = "kms", **settings) -> dict:
    return {
        "version": version,
        "policies": [
            {
                "id": POLICY_ID,
                "name": "Self-harm",
                "category": "self_harm",
                "illegal_content": False,
                "keywords": [{"id": 1, "text": keyword, "match_kind": "word", "severity": "severe"}],
            }
        ],
        "settings": {**DEFAULT_SETTINGS, "console_url": "https://s.example/console/", **settings},
    }


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def server():
    with StubServer() as stub:
        yield stub


def test_a_fetched_config_builds_the_engine_and_is_kept_on_disk(server, tmp_path):
    server.on("GET", API + "config", Reply(200, config(recording_seconds=3), {"ETag": '"v1"'}))
    sync = PolicySync(ApiClient(server.url, "tok"), tmp_path)

    assert sync.refresh().outcome is Outcome.OK

    assert [m.keyword for m in sync.engine.scan("i want to kms now")] == ["kms"]
    assert sync.version == "v1" and sync.etag == '"v1"'
    assert sync.settings["recording_seconds"] == 3
    assert sync.policy_id_for("Self-harm") == POLICY_ID
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["etag"] == '"v1"' and stored["config"]["version"] == "v1"
    assert sync.last_sync is not None


def test_the_etag_is_sent_and_304_keeps_the_config(server, tmp_path):
    server.on(
        "GET",
        API + "config",
        Reply(200, config(), {"ETag": '"v1"'}),
        Reply(304, None, {"ETag": '"v1"'}),
    )
    sync = PolicySync(ApiClient(server.url, "tok"), tmp_path)
    sync.refresh()
    first_sync = sync.last_sync

    assert sync.refresh().outcome is Outcome.NOT_MODIFIED

    assert "If-None-Match" not in server.requests[0].headers
    assert server.requests[1].headers["If-None-Match"] == '"v1"'
    assert sync.version == "v1"
    assert sync.last_sync >= first_sync


def test_at_boot_with_the_server_away_the_last_good_copy_is_used(server, tmp_path):
    server.on("GET", API + "config", Reply(200, config(keyword="self harm"), {"ETag": '"v1"'}))
    PolicySync(ApiClient(server.url, "tok"), tmp_path).refresh()

    rebooted = PolicySync(ApiClient(closed_port(), "tok"), tmp_path)
    assert rebooted.load_cached() is True
    assert rebooted.refresh().outcome is Outcome.NETWORK

    assert rebooted.source == "disk"
    assert [m.keyword for m in rebooted.engine.scan("thinking about self harm")] == ["self harm"]


def test_before_any_config_the_shipped_library_monitors(tmp_path):
    sync = PolicySync(ApiClient(closed_port(), "tok"), tmp_path)
    assert sync.load_cached() is False
    assert sync.source == "library"
    assert sync.engine.scan("i want to kill myself")
    assert sync.settings == DEFAULT_SETTINGS
    assert sync.policy_ids() == {}


def test_a_config_the_engine_cannot_use_is_ignored_and_the_old_one_stays(server, tmp_path):
    broken = config(version="v2")
    broken["policies"][0]["keywords"][0]["severity"] = "apocalyptic"
    server.on(
        "GET",
        API + "config",
        Reply(200, config(), {"ETag": '"v1"'}),
        Reply(200, broken, {"ETag": '"v2"'}),
        Reply(200, {"policies": "not a list"}, {"ETag": '"v3"'}),
    )
    sync = PolicySync(ApiClient(server.url, "tok"), tmp_path)
    sync.refresh()
    sync.refresh()
    sync.refresh()

    assert sync.version == "v1" and sync.etag == '"v1"'
    assert json.loads((tmp_path / "config.json").read_text())["etag"] == '"v1"'
    assert sync.engine.scan("kms")


def test_a_damaged_stored_copy_falls_back_to_the_library(tmp_path):
    (tmp_path / "config.json").write_text('{"etag": "x", "config": {"policies": 5}}')
    sync = PolicySync(ApiClient(closed_port(), "tok"), tmp_path)
    assert sync.load_cached() is False
    assert sync.source == "library"


def test_a_304_is_not_trusted_without_a_config_of_our_own(server, tmp_path):
    """With only the library loaded there is no ETag to send, so the server must send the config."""
    server.on("GET", API + "config", Reply(200, config(), {"ETag": '"v1"'}))
    sync = PolicySync(ApiClient(server.url, "tok"), tmp_path)
    sync.load_cached()
    sync.etag = '"stale"'
    sync.refresh()
    assert "If-None-Match" not in server.requests[0].headers
    assert sync.source == "server"


def test_the_engine_follows_a_new_config_and_listeners_hear_of_it(server, tmp_path):
    server.on(
        "GET",
        API + "config",
        Reply(200, config(version="v1", keyword="kms"), {"ETag": '"v1"'}),
        Reply(200, config(version="v2", keyword="unalive"), {"ETag": '"v2"'}),
    )
    seen = []
    sync = PolicySync(ApiClient(server.url, "tok"), tmp_path, on_change=lambda s: seen.append(s.version))
    provider = sync.engine_provider
    sync.refresh()
    assert provider().scan("kms")
    sync.refresh()
    assert not provider().scan("kms")
    assert provider().scan("i want to unalive")
    assert seen == ["v1", "v2"]
