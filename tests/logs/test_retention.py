"""Retention (safeguard.logs.retention): periods per kind, rows AND files removed, and a dry run that removes nothing.

Specification: each kind past its period is removed (rows deleted, or a file cleared from a row
that stays); files leave storage only after the deleting transaction commits; open captures and
open Confide reports are never removed; the audit log only past its own period; the work goes in
bounded batches; the dry run (and its admin page) counts exactly what the run then removes.
"""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from safeguard.captures.models import ActionRuleFiring, Capture, CaptureNote, CaptureStatus, ExportJob, Recording
from safeguard.confide.models import ConfideNote, ConfideReport
from safeguard.groups.models import Device
from safeguard.logs import tasks
from safeguard.logs.models import ActivityEvent, AuditEntry, RetentionSettings
from safeguard.logs.retention import retention_apply, retention_plan
from tests.factories import (
    ActionRuleFiringFactory,
    ActivityEventFactory,
    AuditEntryFactory,
    CaptureFactory,
    CaptureNoteFactory,
    ConfideNoteFactory,
    ConfideReportFactory,
    DeviceFactory,
    ExportJobFactory,
    RecordingFactory,
    png_bytes,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def days_ago(days: float):
    return NOW - timedelta(days=days)


def age(obj, *, days: float, field: str = "updated_at") -> None:
    """Set a row's time field in the past (auto_now fields cannot be given on create)."""
    type(obj).objects.filter(pk=obj.pk).update(**{field: days_ago(days)})


def media_files(settings) -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()} if root.exists() else set()


def capture(status: str, *, resolved_days_ago: float, with_recording: bool = False) -> Capture:
    made = CaptureFactory(status=status, screenshot=ContentFile(png_bytes(), name="shot.png"))
    Capture.objects.filter(pk=made.pk).update(
        screenshot_preview=Capture._meta.get_field("screenshot").storage.save(
            f"screenshots/{made.uuid}-preview.webp", ContentFile(b"RIFF....WEBP")
        )
    )
    if with_recording:
        RecordingFactory(capture=made)
    CaptureNoteFactory(capture=made)
    age(made, days=resolved_days_ago)
    made.refresh_from_db()
    return made


@pytest.fixture
def school(settings):
    """One row of every kind just past its default period, and one just inside it."""
    rows = {
        "events": (ActivityEventFactory(occurred_at=days_ago(181)), ActivityEventFactory(occurred_at=days_ago(179))),
        "false_positive": (
            capture(CaptureStatus.RESOLVED_FALSE_POSITIVE, resolved_days_ago=91, with_recording=True),
            capture(CaptureStatus.RESOLVED_FALSE_POSITIVE, resolved_days_ago=89),
        ),
        "resolved": (
            capture(CaptureStatus.RESOLVED_ACTION, resolved_days_ago=731),
            capture(CaptureStatus.RESOLVED_ACTION, resolved_days_ago=729),
        ),
        # Never deleted, however old: nobody has resolved them yet.
        "open": [
            capture(status, resolved_days_ago=3000, with_recording=True)
            for status in (CaptureStatus.NEW, CaptureStatus.UNDER_REVIEW, CaptureStatus.ESCALATED)
        ],
        # Resolved with action a year and a bit ago: the capture stays, its screenshot goes (as does
        # the screenshot of "resolved"'s capture inside its two years).
        "screenshot": (
            capture(CaptureStatus.RESOLVED_ACTION, resolved_days_ago=366),
            capture(CaptureStatus.RESOLVED_ACTION, resolved_days_ago=364),
        ),
        "confide": (ConfideReportFactory(status=ConfideReport.Status.CLOSED), ConfideReportFactory(status="closed")),
        "confide_open": ConfideReportFactory(status=ConfideReport.Status.NEW),
        "audit": (AuditEntryFactory(created_at=days_ago(2191)), AuditEntryFactory(created_at=days_ago(2189))),
        "exports": (
            ExportJobFactory(status="done", file=ContentFile(b"%PDF-1.7 old", name="r.pdf")),
            ExportJobFactory(status="done", file=ContentFile(b"%PDF-1.7 new", name="r.pdf")),
        ),
    }
    # Recordings: one asked for by staff long ago, one recent; one of a capture resolved 100 days ago.
    on_demand_old = RecordingFactory(capture=None, device=DeviceFactory(), person=None, started_at=days_ago(91))
    on_demand_new = RecordingFactory(capture=None, device=DeviceFactory(), person=None, started_at=days_ago(89))
    resolved_100 = capture(CaptureStatus.RESOLVED_ACTION, resolved_days_ago=100, with_recording=True)
    rows["recordings"] = (on_demand_old, on_demand_new, resolved_100)
    # Thumbnails: a computer silent for two days, one that sent a minute ago.
    stale = DeviceFactory(thumbnail=ContentFile(png_bytes(), name="stale.png"), thumbnail_updated_at=days_ago(2))
    live = DeviceFactory(thumbnail=ContentFile(png_bytes(), name="live.png"), thumbnail_updated_at=NOW)
    rows["thumbnails"] = (stale, live)
    for report in rows["confide"]:
        ConfideNoteFactory(report=report)
    age(rows["confide"][0], days=731)
    age(rows["confide"][1], days=729)
    age(rows["confide_open"], days=3000)
    age(rows["exports"][0], days=8, field="created_at")
    age(rows["exports"][1], days=6, field="created_at")
    return rows


EXPECTED = {
    "exports": {"rows": 1, "files": 1},
    "thumbnails": {"rows": 1, "files": 1},
    # the false positive (screenshot, preview, recording) and the resolved one (screenshot, preview)
    "captures": {"rows": 2, "files": 5},
    "recordings": {"rows": 2, "files": 2},  # the old on-demand one, the resolved-100-days-ago one
    # screenshot and preview of the captures resolved with action 366 and 729 days ago
    "screenshots": {"rows": 2, "files": 4},
    "activity_events": {"rows": 1, "files": 0},
    "confide": {"rows": 1, "files": 0},
    "audit_log": {"rows": 1, "files": 0},
}


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (
            ActivityEvent,
            Capture,
            CaptureNote,
            Recording,
            ConfideReport,
            ConfideNote,
            AuditEntry,
            ExportJob,
            ActionRuleFiring,
        )
    }


def test_the_dry_run_counts_what_the_run_removes_and_removes_nothing(school, settings):
    rows_before, files_before = counts(), media_files(settings)
    thumbnails_before = set(Device.objects.exclude(thumbnail="").values_list("pk", flat=True))

    plan = {item.key: {"rows": item.rows, "files": item.files} for item in retention_plan(now=NOW)}

    assert plan == EXPECTED
    assert counts() == rows_before
    assert media_files(settings) == files_before
    assert set(Device.objects.exclude(thumbnail="").values_list("pk", flat=True)) == thumbnails_before


def test_the_run_removes_rows_and_files_past_their_period_and_keeps_the_rest(
    school, settings, django_capture_on_commit_callbacks
):
    files_before = media_files(settings)
    fp_old, fp_new = school["false_positive"]
    resolved_old, resolved_new = school["resolved"]
    gone_files = {
        fp_old.screenshot.name,
        fp_old.screenshot_preview.name,
        fp_old.recording.file.name,
        resolved_old.screenshot.name,
        resolved_old.screenshot_preview.name,
        school["screenshot"][0].screenshot.name,
        school["screenshot"][0].screenshot_preview.name,
        resolved_new.screenshot.name,
        resolved_new.screenshot_preview.name,
        school["recordings"][0].file.name,
        school["recordings"][2].recording.file.name,
        school["thumbnails"][0].thumbnail.name,
        school["exports"][0].file.name,
    }
    assert gone_files <= files_before

    with django_capture_on_commit_callbacks(execute=True):
        report = retention_apply(now=NOW)

    assert report == EXPECTED
    assert media_files(settings) == files_before - gone_files
    # Rows past their period are gone; those inside it, and open captures, stay.
    assert not Capture.objects.filter(pk__in=[fp_old.pk, resolved_old.pk]).exists()
    assert not CaptureNote.objects.filter(capture_id__in=[fp_old.pk, resolved_old.pk]).exists()
    assert Capture.objects.filter(pk__in=[fp_new.pk, resolved_new.pk]).count() == 2
    assert Capture.objects.filter(pk__in=[c.pk for c in school["open"]]).count() == 3
    assert Recording.objects.filter(capture__in=school["open"]).count() == 3
    cleared = Capture.objects.get(pk=school["screenshot"][0].pk)
    assert (cleared.screenshot.name, cleared.screenshot_preview.name) == ("", "")
    assert cleared.updated_at == school["screenshot"][0].updated_at  # clearing restarts no period
    assert Capture.objects.get(pk=school["screenshot"][1].pk).screenshot.name
    assert set(Recording.objects.filter(capture__isnull=True).values_list("pk", flat=True)) == {
        school["recordings"][1].pk
    }
    assert not Recording.objects.filter(capture=school["recordings"][2]).exists()
    assert Capture.objects.filter(pk=school["recordings"][2].pk).exists()  # resolved 100 days ago: kept
    assert list(ActivityEvent.objects.values_list("pk", flat=True)) == [school["events"][1].pk]
    assert set(ConfideReport.objects.values_list("pk", flat=True)) == {
        school["confide"][1].pk,
        school["confide_open"].pk,
    }
    assert ConfideNote.objects.count() == 1
    assert not AuditEntry.objects.filter(pk=school["audit"][0].pk).exists()
    assert AuditEntry.objects.filter(pk=school["audit"][1].pk).exists()
    assert list(ExportJob.objects.values_list("pk", flat=True)) == [school["exports"][1].pk]
    stale, live = (Device.objects.get(pk=device.pk) for device in school["thumbnails"])
    assert (stale.thumbnail.name, bool(live.thumbnail.name)) == ("", True)

    # The run is recorded, and a second run finds nothing more.
    rules = RetentionSettings.load()
    assert rules.last_run_report == EXPECTED
    applied = AuditEntry.objects.get(action="retention.applied")
    assert applied.actor is None and "2 captures" in applied.summary
    with django_capture_on_commit_callbacks(execute=True):
        again = retention_apply(now=NOW)
    assert all(kind == {"rows": 0, "files": 0} for kind in again.values())
    assert all(plan.rows == 0 and plan.files == 0 for plan in retention_plan(now=NOW))


def test_files_are_deleted_only_after_the_rows_are_committed(school, settings, django_capture_on_commit_callbacks):
    files_before = media_files(settings)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        retention_apply(now=NOW)
        # The rows are gone inside the transaction, but no file yet: a rollback would lose nothing.
        assert not Capture.objects.filter(pk=school["false_positive"][0].pk).exists()
        assert media_files(settings) == files_before

    assert callbacks  # the file deletions wait for the commit
    for callback in callbacks:
        callback()
    assert len(files_before - media_files(settings)) == 13


def test_open_captures_and_reports_are_kept_whatever_the_settings(school, django_capture_on_commit_callbacks):
    RetentionSettings.objects.filter(pk=RetentionSettings.load().pk).update(
        captures_false_positive_days=1,
        captures_resolved_days=1,
        screenshots_days=1,
        recordings_days=1,
        confide_closed_days=1,
    )

    with django_capture_on_commit_callbacks(execute=True):
        retention_apply(now=NOW)

    open_captures = Capture.objects.filter(pk__in=[c.pk for c in school["open"]])
    assert open_captures.count() == 3
    assert all(c.screenshot.name for c in open_captures)
    assert Recording.objects.filter(capture__in=open_captures).count() == 3
    assert ConfideReport.objects.filter(pk=school["confide_open"].pk).exists()
    assert set(Capture.objects.values_list("status", flat=True)) == {"new", "under_review", "escalated"}


def test_an_empty_period_keeps_that_kind_for_ever(school, django_capture_on_commit_callbacks):
    RetentionSettings.objects.filter(pk=RetentionSettings.load().pk).update(
        activity_events_days=None, audit_log_days=None
    )

    with django_capture_on_commit_callbacks(execute=True):
        report = retention_apply(now=NOW)

    assert report["activity_events"] == report["audit_log"] == {"rows": 0, "files": 0}
    assert ActivityEvent.objects.count() == 2
    assert AuditEntry.objects.filter(pk__in=[entry.pk for entry in school["audit"]]).count() == 2


def test_the_work_goes_in_bounded_batches_and_the_next_run_carries_on(django_capture_on_commit_callbacks):
    for _ in range(5):
        ActivityEventFactory(occurred_at=days_ago(400))

    with django_capture_on_commit_callbacks(execute=True):
        first = retention_apply(now=NOW, batch_size=2, max_batches=2)
    assert first["activity_events"]["rows"] == 4
    assert ActivityEvent.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        second = retention_apply(now=NOW, batch_size=2, max_batches=2)
    assert second["activity_events"]["rows"] == 1
    assert ActivityEvent.objects.count() == 0


def test_a_capture_reopened_since_is_no_longer_due(school, django_capture_on_commit_callbacks):
    old = school["resolved"][0]
    Capture.objects.filter(pk=old.pk).update(status=CaptureStatus.ESCALATED)

    with django_capture_on_commit_callbacks(execute=True):
        retention_apply(now=NOW)

    assert Capture.objects.filter(pk=old.pk).exists()


def test_deleting_a_capture_keeps_the_action_rule_firing_and_the_audit_trail(django_capture_on_commit_callbacks):
    old = capture(CaptureStatus.RESOLVED_FALSE_POSITIVE, resolved_days_ago=200)
    firing = ActionRuleFiringFactory(person=old.person, capture=old)
    AuditEntryFactory(target_type="capture", target_id=str(old.uuid))

    with django_capture_on_commit_callbacks(execute=True):
        retention_apply(now=NOW)

    firing.refresh_from_db()
    assert firing.capture is None  # the rule still fired once for this person
    assert AuditEntry.objects.filter(target_id=str(old.uuid)).exists()


def test_the_audit_log_must_outlive_what_it_describes():
    rules = RetentionSettings.load()
    rules.audit_log_days = 365
    with pytest.raises(ValidationError, match="at least as long"):
        rules.full_clean()
    rules.audit_log_days = 2190
    rules.full_clean()


def test_the_defaults():
    rules = RetentionSettings.load()
    assert (
        rules.activity_events_days,
        rules.captures_false_positive_days,
        rules.captures_resolved_days,
        rules.screenshots_days,
        rules.recordings_days,
        rules.thumbnails_days,
        rules.confide_closed_days,
        rules.audit_log_days,
        rules.export_files_days,
    ) == (180, 90, 730, 365, 90, 1, 730, 2190, 7)


def test_beat_runs_the_task_daily_and_the_task_applies_retention(django_capture_on_commit_callbacks):
    from celery.schedules import crontab

    entry = django_settings.CELERY_BEAT_SCHEDULE["retention-apply"]
    assert entry["task"] == "safeguard.logs.tasks.retention_apply" == tasks.retention_apply.name
    assert isinstance(entry["schedule"], crontab)
    ActivityEventFactory(occurred_at=days_ago(400))

    with django_capture_on_commit_callbacks(execute=True):
        report = tasks.retention_apply.delay().get()

    assert report["activity_events"] == {"rows": 1, "files": 0}
    assert not ActivityEvent.objects.exists()


# --- the admin ------------------------------------------------------------------------------------


def test_the_admin_dry_run_page_shows_the_counts_and_deletes_nothing(client, cast, school, settings):
    client.force_login(cast.admin)
    rows_before, files_before = counts(), media_files(settings)
    change_url = reverse("admin:logs_retentionsettings_change", args=[RetentionSettings.load().pk])
    assert reverse("admin:logs_retentionsettings_dry_run") in client.get(change_url).content.decode()

    page = client.get(reverse("admin:logs_retentionsettings_dry_run")).content.decode()

    shown = {
        key: {"rows": int(rows), "files": int(files)}
        for key, rows, files in re.findall(
            r'<tr data-kind="(\w+)">.*?<td class="rows">(\d+)</td>\s*<td class="files">(\d+)</td>', page, re.S
        )
    }
    assert shown == EXPECTED
    assert "Nothing has been deleted" in page
    assert counts() == rows_before and media_files(settings) == files_before


def test_the_admin_saves_the_periods(client, cast):
    client.force_login(cast.admin)
    url = reverse("admin:logs_retentionsettings_change", args=[RetentionSettings.load().pk])
    data = {
        "activity_events_days": "90",
        "thumbnails_days": "1",
        "captures_false_positive_days": "30",
        "captures_resolved_days": "365",
        "screenshots_days": "180",
        "recordings_days": "30",
        "confide_closed_days": "365",
        "audit_log_days": "",
        "export_files_days": "3",
    }

    response = client.post(url, data)

    assert response.status_code == 302
    rules = RetentionSettings.load()
    assert (rules.activity_events_days, rules.audit_log_days, rules.export_files_days) == (90, None, 3)
    refused = client.post(url, {**data, "audit_log_days": "100"})
    assert refused.status_code == 200 and "at least as long" in refused.content.decode()


def test_the_dry_run_page_is_for_admins_only(client, cast):
    client.force_login(cast.teacher9)
    response = client.get(reverse("admin:logs_retentionsettings_dry_run"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_management_command_dry_runs_and_applies(django_capture_on_commit_callbacks):
    from io import StringIO

    from django.core.management import call_command

    ActivityEventFactory(occurred_at=days_ago(400))
    out = StringIO()

    call_command("apply_retention", "--dry-run", stdout=out)
    assert "activity_events: 1 rows, 0 files would be deleted" in out.getvalue()
    assert ActivityEvent.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        call_command("apply_retention", stdout=out)
    assert "activity_events: 1 rows, 0 files removed" in out.getvalue()
    assert ActivityEvent.objects.count() == 0
