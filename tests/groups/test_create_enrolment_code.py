"""`manage.py create_enrolment_code`: issues a code, prints it last, stores only its hash."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from safeguard.core.tokens import hash_secret
from safeguard.groups.models import EnrolmentCode, Membership
from tests.factories import DeviceGroupFactory, UserGroupFactory

CODE_PATTERN = r"^[A-HJ-NP-Z2-9]{4}(-[A-HJ-NP-Z2-9]{4}){3}$"


def run(*args: str) -> tuple[str, EnrolmentCode]:
    out = StringIO()
    call_command("create_enrolment_code", *args, stdout=out)
    code = out.getvalue().strip().splitlines()[-1]
    return code, EnrolmentCode.objects.get(code_hash=hash_secret(code))


def enrol(code: str):
    body = {"code": code, "hostname": "LAB1-PC01", "os": "Windows 11", "agent_version": "1.0.0"}
    return APIClient().post("/api/v1/agent/enrol", body, format="json")


@pytest.mark.django_db
def test_defaults_give_a_single_use_code_with_no_expiry():
    code, record = run()
    assert re.match(CODE_PATTERN, code)
    assert (record.max_uses, record.uses, record.expires_at, record.device_group) == (1, 0, None, None)
    assert record.code_hint == code[:4]
    assert code not in record.code_hash
    assert enrol(code).status_code == 201
    assert enrol(code).status_code == 400


@pytest.mark.django_db
def test_uses_label_and_expiry_in_days():
    before = timezone.now()
    code, record = run("--uses", "30", "--expires-in-days", "7", "--label", "Library PCs")
    assert record.max_uses == 30
    assert record.label == "Library PCs"
    assert before + timedelta(days=7) <= record.expires_at <= timezone.now() + timedelta(days=7)


@pytest.mark.django_db
def test_expiry_as_an_iso_time():
    when = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    _, record = run("--expires", when.isoformat())
    assert record.expires_at == when


@pytest.mark.django_db
def test_a_naive_expiry_is_read_as_local_time():
    when = timezone.localtime(timezone.now() + timedelta(days=2)).replace(microsecond=0, tzinfo=None)
    _, record = run("--expires", when.isoformat())
    assert timezone.localtime(record.expires_at).replace(tzinfo=None) == when


@pytest.mark.django_db
def test_devices_enrolled_with_a_group_code_join_the_device_group():
    room = DeviceGroupFactory(name="Science Lab")
    code, record = run("--device-group", "Science Lab")
    assert record.device_group == room
    device_id = enrol(code).json()["device_id"]
    assert Membership.objects.filter(group=room, device__uuid=device_id).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        ["--uses", "0"],
        ["--uses", "many"],
        ["--expires-in-days", "0"],
        ["--expires", "next tuesday"],
        ["--expires", "2001-01-01T00:00:00+00:00"],
        ["--expires", "2999-01-01T00:00", "--expires-in-days", "3"],
        ["--device-group", "No Such Room"],
    ],
)
def test_bad_options_create_nothing(args):
    with pytest.raises((CommandError, SystemExit)):
        call_command("create_enrolment_code", *args, stdout=StringIO(), stderr=StringIO())
    assert not EnrolmentCode.objects.exists()


@pytest.mark.django_db
def test_a_user_group_is_not_a_device_group():
    UserGroupFactory(name="Year 9")
    with pytest.raises(CommandError, match="no device group"):
        call_command("create_enrolment_code", "--device-group", "Year 9", stdout=StringIO())


@pytest.mark.django_db
def test_an_ambiguous_device_group_name_is_refused():
    building = DeviceGroupFactory(name="North")
    other = DeviceGroupFactory(name="South")
    DeviceGroupFactory(name="Lab", parent=building)
    DeviceGroupFactory(name="Lab", parent=other)
    with pytest.raises(CommandError, match="2 device groups"):
        call_command("create_enrolment_code", "--device-group", "Lab", stdout=StringIO())
    assert not EnrolmentCode.objects.exists()


def test_the_code_is_the_last_line_of_a_real_run(tmp_path):
    """As an installer script would use it: `manage.py create_enrolment_code ... | tail -n 1`.

    The child process gets its own SQLite database, so it never touches the test database.
    """
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}", "SAFEGUARD_VAR_DIR": str(tmp_path)}
    subprocess.run([sys.executable, str(manage), "migrate", "--noinput", "-v", "0"], check=True, env=env)
    done = subprocess.run(
        [sys.executable, str(manage), "create_enrolment_code", "--uses", "2", "--label", "script"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) > 1  # an explanation first, then the code
    assert re.match(CODE_PATTERN, lines[-1]), done.stdout
