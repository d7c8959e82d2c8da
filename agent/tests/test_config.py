"""The agent's state folder: where it is, and files only the agent's account can read."""

import os
import stat
import sys

import pytest

from safeguard_agent.config import (
    Enrolment,
    NotEnrolled,
    Status,
    default_state_dir,
    ensure_state_dir,
    load_enrolment,
    load_status,
    read_json,
    save_enrolment,
    save_status,
    state_dir,
    write_atomic,
)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_config_dir_beats_the_environment_which_beats_the_os_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFEGUARD_AGENT_HOME", str(tmp_path / "from-env"))
    assert state_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert state_dir(None) == tmp_path / "from-env"
    monkeypatch.delenv("SAFEGUARD_AGENT_HOME")
    assert state_dir(None) == default_state_dir()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX defaults")
def test_the_os_default_is_per_machine_for_root_and_per_user_otherwise(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_state_dir().as_posix() == "/var/lib/safeguard-agent"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_state_dir() == tmp_path / "state" / "safeguard-agent"


def test_the_token_file_is_readable_by_the_agents_account_only(tmp_path):
    directory = ensure_state_dir(tmp_path / "state")
    path = save_enrolment(directory, Enrolment(server="https://s.example", device_id="d1", token="secret"))
    assert mode(directory) == 0o700
    assert mode(path) == 0o600
    assert load_enrolment(directory) == Enrolment(server="https://s.example", device_id="d1", token="secret")


def test_an_atomic_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "f.json"
    target.write_text("old")
    write_atomic(target, b"new", mode=0o640)
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_missing_or_damaged_enrolment_means_not_enrolled(tmp_path):
    with pytest.raises(NotEnrolled):
        load_enrolment(tmp_path)
    (tmp_path / "agent.json").write_text('{"server": "https://s", "device_id": 5}')
    with pytest.raises(NotEnrolled):
        load_enrolment(tmp_path)
    (tmp_path / "agent.json").write_text("{half a file")
    with pytest.raises(NotEnrolled):
        load_enrolment(tmp_path)


def test_status_round_trips_and_a_damaged_one_is_empty(tmp_path):
    save_status(tmp_path, Status(last_contact="2026-01-01T00:00:00+00:00", policy_version="abc"))
    loaded = load_status(tmp_path)
    assert (loaded.last_contact, loaded.policy_version, loaded.last_sync) == ("2026-01-01T00:00:00+00:00", "abc", None)
    (tmp_path / "status.json").write_text("not json")
    assert load_status(tmp_path) == Status()
    assert read_json(tmp_path / "missing.json") is None


# -- Windows: the folder's ACL. icacls is a Windows binary this Linux machine cannot run, so these
# tests fake `run` at that boundary and check the exact command and the refusal on failure.


class FakeIcacls:
    def __init__(self, returncode: int = 0, stderr: str = ""):
        self.returncode = returncode
        self.stderr = stderr
        self.commands: list[list[str]] = []

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        assert kwargs.get("check") is False and kwargs.get("capture_output") is True
        return type("Completed", (), {"returncode": self.returncode, "stderr": self.stderr, "stdout": ""})()


def test_on_windows_the_folder_loses_inherited_access_and_grants_only_system_admins_and_the_agent(
    tmp_path, monkeypatch
):
    from safeguard_agent.config import restrict_windows_folder

    monkeypatch.setenv("USERNAME", "sg-agent")
    monkeypatch.setenv("USERDOMAIN", "HILLSIDE")
    icacls = FakeIcacls()

    restrict_windows_folder(tmp_path, run=icacls)

    assert icacls.commands == [
        [
            "icacls",
            str(tmp_path),
            "/inheritance:r",  # drop ProgramData's inherited "Users: read"
            "/grant:r",
            "*S-1-5-18:(OI)(CI)F",
            "*S-1-5-32-544:(OI)(CI)F",
            "HILLSIDE\\sg-agent:(OI)(CI)F",
        ]
    ]


def test_on_windows_a_service_running_as_the_machine_account_is_covered_by_the_system_sid(tmp_path, monkeypatch):
    from safeguard_agent.config import restrict_windows_folder

    monkeypatch.setenv("USERNAME", "PC-LAB1-07$")
    monkeypatch.setenv("USERDOMAIN", "HILLSIDE")
    icacls = FakeIcacls()

    restrict_windows_folder(tmp_path, run=icacls)

    assert icacls.commands[0][4:] == ["*S-1-5-18:(OI)(CI)F", "*S-1-5-32-544:(OI)(CI)F"]


def test_on_windows_a_folder_that_cannot_be_restricted_is_refused_rather_than_used(tmp_path, monkeypatch):
    from safeguard_agent.config import restrict_windows_folder

    monkeypatch.setenv("USERNAME", "sg-agent")
    icacls = FakeIcacls(returncode=5, stderr="Access is denied.")

    with pytest.raises(PermissionError, match="Access is denied"):
        restrict_windows_folder(tmp_path, run=icacls)


def test_ensure_state_dir_restricts_the_folder_on_windows(tmp_path, monkeypatch):
    from safeguard_agent import config

    calls = []
    monkeypatch.setattr(config.os, "name", "nt")
    monkeypatch.setattr(config.sys, "platform", "win32")
    monkeypatch.setattr(config, "restrict_windows_folder", calls.append)

    config.ensure_state_dir(tmp_path / "Safeguard")

    assert calls == [tmp_path / "Safeguard"]
