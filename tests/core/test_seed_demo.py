"""`manage.py seed_demo`: a plausible demo school that a second run leaves exactly as it was."""

import io
import re
import stat

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from PIL import Image

from safeguard.captures.models import Capture, CaptureNote, CaptureStatus
from safeguard.confide.models import AssistanceRequest, ConfideReport
from safeguard.core.access import scope_by_person_or_device, visible_group_ids, visible_people
from safeguard.core.demo import DEMO_PASSWORD, PUPILS, seed_demo
from safeguard.groups.models import Device, EnrolmentCode, GroupKind, MonitoringGroup, Person, StaffAccess
from safeguard.groups.services import device_enrol
from safeguard.logs.api import DATA_SERIALIZERS
from safeguard.logs.models import ActivityEvent, EventType
from safeguard.policies.library import engine_for_policies
from safeguard.policies.models import AgentSettings, Keyword, Severity


@pytest.fixture
def seeded(db, settings, tmp_path):
    """The demo school, seeded once through the command; the var dir is the test's own."""
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    models = [model for model in apps.get_models() if model.__module__.startswith("safeguard.")]
    models.append(get_user_model())
    return {model._meta.label: model.objects.count() for model in models}


def test_seeding_twice_changes_nothing(seeded):
    first = row_counts()
    second_output = io.StringIO()
    call_command("seed_demo", stdout=second_output)
    assert row_counts() == first
    assert "nothing to add" in second_output.getvalue()
    assert seed_demo().created == {}


def test_the_command_prints_the_logins_and_a_working_enrolment_code(seeded, settings):
    assert "admin" in seeded and "lead" in seeded and "teacher" in seeded and DEMO_PASSWORD in seeded
    code = re.search(r"Demo enrolment code .*: ([A-Z0-9]{4}(?:-[A-Z0-9]{4}){3})", seeded).group(1)
    kept = settings.VAR_DIR / "demo-enrolment-code"
    assert kept.read_text().strip() == code
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    again = io.StringIO()
    call_command("seed_demo", stdout=again)
    assert code in again.getvalue()  # shown again from the var dir; not a second code
    assert EnrolmentCode.objects.count() == 1
    device, token = device_enrol(code=code, hostname="HS-IT1-PC06", os="Windows 11", agent_version="0.1.0")
    assert token
    assert device.memberships.get().group.name == "IT Suite 1"


def test_the_school_has_year_groups_a_watch_group_staff_and_rooms(seeded):
    user_groups = set(MonitoringGroup.objects.filter(kind=GroupKind.USER).values_list("name", flat=True))
    assert {"Year 7", "Year 8", "Year 9", "Year 10", "Year 11", "Watch Group", "Staff"} <= user_groups
    assert MonitoringGroup.objects.get(name="Watch Group").is_watch_group
    assert MonitoringGroup.objects.get(name="Watch Group").memberships.exists()
    device_groups = set(MonitoringGroup.objects.filter(kind=GroupKind.DEVICE).values_list("name", flat=True))
    assert {"IT Suite 1", "Library"} <= device_groups
    pupils = Person.objects.filter(staff_user__isnull=True)
    assert pupils.count() == len(PUPILS) >= 25
    for pupil in pupils:
        assert re.fullmatch(r"HILLSIDE\\[a-z]+", pupil.username), pupil.username
        assert pupil.display_name
        assert pupil.memberships.filter(group__name__startswith="Year ").count() == 1
    assert Device.objects.count() == 8
    for device in Device.objects.all():
        assert device.memberships.filter(group__kind=GroupKind.DEVICE).exists()
        assert device.thumbnail and Image.open(device.thumbnail.open()).size == (320, 200)
    assert AgentSettings.objects.filter(pk=1).exists()
    assert Keyword.objects.exists()  # the default keyword library is installed


def test_the_three_demo_logins_work_through_the_login_form(seeded):
    for username in ["admin", "lead", "teacher"]:
        client = Client(enforce_csrf_checks=True)
        page = client.get("/accounts/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
        response = client.post(
            "/accounts/login/",
            {"username": username, "password": DEMO_PASSWORD, "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302, username
        assert response["Location"] == "/console/"
        assert client.get("/console/").status_code == 200
    wrong = Client().post("/accounts/login/", {"username": "lead", "password": "not-the-password"})
    assert wrong.status_code == 200  # the form again, with its error
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff


def test_the_lead_sees_every_group_and_the_teacher_year_9_only(seeded):
    lead_access = StaffAccess.objects.filter(user__username="lead")
    assert lead_access.count() == MonitoringGroup.objects.count()
    for access in lead_access:
        assert access.can_view_captures and access.can_manage_captures and access.can_view_recordings
        assert access.is_confide_viewer
    teacher_access = StaffAccess.objects.get(user__username="teacher")  # exactly one row
    assert teacher_access.group.name == "Year 9"
    assert teacher_access.can_view_captures and teacher_access.can_manage_captures
    assert not teacher_access.is_confide_viewer
    assert not StaffAccess.objects.filter(user__username="admin").exists()  # the superuser needs none

    # Through the access rule the console uses: the teacher's pupils and captures are Year 9's only.
    teacher, lead = (get_user_model().objects.get(username=name) for name in ["teacher", "lead"])
    year9 = set(Person.objects.filter(memberships__group__name="Year 9").values_list("pk", flat=True))
    assert set(visible_people(teacher).values_list("pk", flat=True)) == year9
    teacher_captures = scope_by_person_or_device(Capture.objects.all(), teacher)
    assert teacher_captures.exists()
    assert {capture.person_id for capture in teacher_captures} <= year9
    assert not visible_group_ids(teacher, "confide")
    assert scope_by_person_or_device(Capture.objects.all(), lead).count() == Capture.objects.count()


def test_every_capture_has_a_screenshot_that_decodes(seeded):
    captures = list(Capture.objects.select_related("person", "device", "keyword"))
    assert 15 <= len(captures) <= 30
    for capture in captures:
        with capture.screenshot.open("rb") as handle:
            image = Image.open(handle)
            image.load()
        assert image.format == "PNG"
        assert image.size == (1280, 800)
        with capture.screenshot_preview.open("rb") as handle:
            Image.open(handle).load()
        # The watermark's white text sits top-right, over the wallpaper above the window.
        corner = image.convert("L").crop((image.width - 420, 10, image.width - 10, 110))
        assert sum(corner.histogram()[201:]) > 300
        assert capture.keyword is not None and capture.keyword.text.lower() == capture.keyword_text.lower()
        assert capture.keyword_text.lower() in capture.context.lower()
        assert capture.uuid.version == 5  # a stable id, as an agent gives one
    assert {capture.severity for capture in captures} == set(Severity.values)
    assert {capture.status for capture in captures} == set(CaptureStatus.values)
    assert CaptureNote.objects.exists()


def test_the_keyword_engine_finds_each_captures_keyword_in_what_was_typed(seeded):
    """The demo shows captures an agent would really make: the shipped engine matches each one."""
    engine = engine_for_policies()
    for capture in Capture.objects.all():
        found = {(match.keyword, match.severity) for match in engine.scan(capture.context)}
        assert (capture.keyword_text, capture.severity) in found, (capture.context, found)


def test_confide_reports_anonymous_without_identity_and_named(seeded):
    anonymous = ConfideReport.objects.get(is_anonymous=True)
    assert anonymous.person is None and anonymous.device is None
    assert (anonymous.reported_at.minute, anonymous.reported_at.second, anonymous.reported_at.microsecond) == (0, 0, 0)
    named = ConfideReport.objects.get(is_anonymous=False)
    assert named.person is not None and named.device is not None
    assert AssistanceRequest.objects.count() == 1


def test_activity_covers_every_kind_of_event_in_the_shape_the_agent_api_accepts(seeded):
    events = ActivityEvent.objects.all()
    assert events.count() > 500
    assert set(events.values_list("type", flat=True)) == set(EventType.values)
    for event in events:
        serializer = DATA_SERIALIZERS[event.type](data=event.data)
        assert serializer.is_valid(), (event.type, event.data, serializer.errors)
    assert events.values("device").distinct().count() == Device.objects.count()
    for person in Person.objects.filter(events__isnull=False).distinct():
        assert person.last_seen_at == person.events.latest("occurred_at").occurred_at
