"""Audit entries for access changes (who may see what), and the audit log's export for inspectors.

The other audited actions the issue lists have their tests beside their code: viewing a
screenshot (tests/console/test_captures_views.py) or a recording (tests/console/test_recordings.py,
tests/core/test_media.py), status changes, assignment and notes (tests/captures/test_services_workflow.py,
tests/console/test_confide_viewer.py), exports (tests/captures/test_pdf.py, tests/captures/test_exports.py,
tests/console/test_logs_views.py, tests/console/test_insight.py) and Confide reads
(tests/console/test_confide_viewer.py); 2FA set-up and removal in tests/security/test_auth_two_factor.py.
"""

import csv
import io
from datetime import date, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from safeguard.core.access_audit import ACCESS_RIGHTS, acting_as
from safeguard.groups.models import StaffAccess
from safeguard.logs.models import AuditEntry
from tests.factories import AuditEntryFactory, StaffAccessFactory, StaffUserFactory, UserGroupFactory

pytestmark = pytest.mark.django_db


def actions() -> list[str]:
    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


# --- access changes through the admin --------------------------------------------------------------


def test_giving_changing_and_removing_group_access_in_the_admin_is_audited(superuser_client, cast):
    teacher = StaffUserFactory(username="new.teacher")
    before = set(AuditEntry.objects.values_list("pk", flat=True))

    superuser_client.post(
        "/admin/groups/staffaccess/add/",
        {"user": teacher.pk, "group": cast.year9.pk, "can_view_captures": "on"},
    )
    access = StaffAccess.objects.get(user=teacher)
    superuser_client.post(
        f"/admin/groups/staffaccess/{access.pk}/change/",
        {"user": teacher.pk, "group": cast.year9.pk, "can_view_captures": "on", "is_confide_viewer": "on"},
    )
    superuser_client.post(f"/admin/groups/staffaccess/{access.pk}/delete/", {"post": "yes"})

    entries = list(AuditEntry.objects.exclude(pk__in=before).order_by("id"))
    assert [entry.action for entry in entries] == ["access.granted", "access.changed", "access.revoked"]
    assert {entry.actor_name for entry in entries} == {"admin"}
    assert {entry.target_id for entry in entries} == {str(teacher.pk)}
    granted, changed, revoked = entries
    assert granted.after["group"] == "Year 9" and granted.after["can_view_captures"] is True
    assert changed.before["is_confide_viewer"] is False and changed.after["is_confide_viewer"] is True
    assert revoked.before["user"] == "new.teacher" and revoked.after is None


def test_saving_access_unchanged_writes_nothing(superuser_client, cast):
    access = StaffAccess.objects.get(user=cast.teacher9)
    before = AuditEntry.objects.count()

    unchanged = {"user": cast.teacher9.pk, "group": cast.year9.pk}
    unchanged.update({name: "on" for name in ACCESS_RIGHTS if getattr(access, name)})

    response = superuser_client.post(f"/admin/groups/staffaccess/{access.pk}/change/", unchanged)

    assert response.status_code == 302
    assert AuditEntry.objects.count() == before


def test_access_given_on_the_groups_page_is_audited_too(superuser_client, cast):
    # The same rows edited through another page (the group's inline) are caught the same way.
    teacher = StaffUserFactory(username="form.tutor")
    group = UserGroupFactory(name="Form 9B", parent=cast.year9)
    page = superuser_client.get(f"/admin/groups/monitoringgroup/{group.pk}/change/").content.decode()
    assert "staff_access-TOTAL_FORMS" in page
    data = {
        "name": "Form 9B",
        "kind": "user",
        "parent": cast.year9.pk,
        "description": "",
        "staff_access-TOTAL_FORMS": "1",
        "staff_access-INITIAL_FORMS": "0",
        "staff_access-0-user": teacher.pk,
        "staff_access-0-can_view_captures": "on",
        "members-TOTAL_FORMS": "0",
        "members-INITIAL_FORMS": "0",
    }
    for prefix in ("memberships", "membership_set"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})

    response = superuser_client.post(f"/admin/groups/monitoringgroup/{group.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()[:2000]
    entry = AuditEntry.objects.get(action="access.granted", target_id=str(teacher.pk))
    assert entry.actor_name == "admin" and entry.after["group"].endswith("Form 9B")


def test_account_flags_groups_and_permissions_changed_by_someone_are_audited(cast):
    teacher = StaffUserFactory(username="it.tech")
    technicians = Group.objects.create(name="IT technicians")
    permission = Permission.objects.get(codename="change_device")

    with acting_as(cast.admin):
        teacher.is_staff = True
        teacher.save()
        teacher.groups.add(technicians)
        teacher.user_permissions.add(permission)
        technicians.permissions.add(Permission.objects.get(codename="view_device"))
        teacher.groups.remove(technicians)

    entries = list(AuditEntry.objects.order_by("id"))
    assert [entry.action for entry in entries] == [
        "access.account_changed",
        "access.groups_added",
        "access.user_permissions_added",
        "access.permissions_added",
        "access.groups_removed",
    ]
    assert {entry.actor_name for entry in entries} == {"admin"}
    assert entries[0].before == {"is_active": True, "is_staff": False, "is_superuser": False}
    assert entries[0].after["is_staff"] is True
    assert entries[2].after == {"user_permissions": ["groups.change_device"]}
    assert entries[3].target_type == "auth_group"


def test_changes_nobody_made_in_a_request_are_not_recorded(cast):
    # Factories, migrations and the demo seed are not a person's decision about access.
    StaffAccessFactory(user=StaffUserFactory(), group=cast.year9)

    assert not AuditEntry.objects.filter(action__startswith="access.").exists()


def test_a_login_saving_last_login_writes_no_access_row(client):
    from tests.factories import PASSWORD

    StaffUserFactory(username="teacher")

    client.post("/accounts/login/", {"username": "teacher", "password": PASSWORD})

    assert not AuditEntry.objects.filter(action__startswith="access.").exists()


# --- export for inspectors ---------------------------------------------------------------------------


def local(day: date, hour: int) -> datetime:
    return timezone.make_aware(datetime(day.year, day.month, day.day, hour), timezone.get_current_timezone())


@pytest.fixture
def history():
    """Entries on 1, 2 and 3 March, one with a summary a spreadsheet would run as a formula."""
    return {
        "before": AuditEntryFactory(created_at=local(date(2026, 3, 1), 23), summary="too early"),
        "first": AuditEntryFactory(created_at=local(date(2026, 3, 2), 0), summary='=HYPERLINK("x")'),
        "last": AuditEntryFactory(created_at=local(date(2026, 3, 3), 23), summary="last of the range"),
        "after": AuditEntryFactory(created_at=local(date(2026, 3, 4), 0), summary="too late"),
    }


def export(client, start: str, end: str):
    return client.post("/admin/logs/auditentry/export/", {"start": start, "end": end})


def test_the_audit_list_links_to_the_export(superuser_client):
    page = superuser_client.get("/admin/logs/auditentry/").content.decode()

    assert 'href="/admin/logs/auditentry/export/"' in page
    assert superuser_client.get("/admin/logs/auditentry/export/").status_code == 200


def test_the_export_holds_the_range_both_days_included_as_csv(superuser_client, history):
    response = export(superuser_client, "2026-03-02", "2026-03-03")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "safeguard-audit-2026-03-02-to-2026-03-03.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["summary"] for row in rows] == ['\'=HYPERLINK("x")', "last of the range"]
    first = rows[0]
    assert first["action"] == "capture.status_changed"
    assert first["before"] == '{"status": "new"}' and first["after"] == '{"status": "under_review"}'
    assert first["created_at"].startswith("2026-03-02T00:00:00")


def test_the_export_is_itself_audited(superuser_client, history):
    response = export(superuser_client, "2026-03-02", "2026-03-03")
    b"".join(response.streaming_content)

    entry = AuditEntry.objects.get(action="audit.exported")
    assert entry.actor_name == "admin"
    assert entry.target_id == "2026-03-02..2026-03-03"
    assert entry.after == {"from": "2026-03-02", "to": "2026-03-03", "entries": 2}


def test_an_export_of_today_leaves_its_own_row_out_of_the_file(superuser_client):
    today = timezone.localdate()
    AuditEntryFactory(summary="today")

    response = export(superuser_client, today.isoformat(), today.isoformat())
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert [row["summary"] for row in rows] == ["today"]
    assert AuditEntry.objects.get(action="audit.exported").after["entries"] == 1


def test_a_reversed_range_is_refused(superuser_client):
    response = export(superuser_client, "2026-03-03", "2026-03-02")

    assert response.status_code == 400
    assert "before the start" in response.content.decode()
    assert not AuditEntry.objects.filter(action="audit.exported").exists()


def test_staff_without_the_audit_permission_cannot_export(client, history):
    clerk = StaffUserFactory(username="clerk", is_staff=True)
    client.force_login(clerk)

    assert client.get("/admin/logs/auditentry/export/").status_code == 403
    assert export(client, "2026-03-01", "2026-03-04").status_code == 403
    assert not AuditEntry.objects.filter(action="audit.exported").exists()


def test_staff_with_view_permission_may_export(client, history):
    inspector_liaison = StaffUserFactory(username="dpo", is_staff=True)
    inspector_liaison.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    client.force_login(inspector_liaison)

    response = export(client, "2026-03-01", "2026-03-04")

    assert response.status_code == 200
    assert len(list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))) == 1 + 4


def test_console_staff_are_sent_to_the_admin_login(client, cast, history):
    client.force_login(cast.lead)  # sees every group in the console, but is not admin staff

    response = client.get("/admin/logs/auditentry/export/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_export_rows_cover_every_day_of_a_long_range(superuser_client):
    start = timezone.localdate() - timedelta(days=400)
    for offset in (0, 200, 399):
        AuditEntryFactory(created_at=local(start + timedelta(days=offset), 12))

    response = export(superuser_client, start.isoformat(), (start + timedelta(days=399)).isoformat())

    assert len(list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))) == 1 + 3
