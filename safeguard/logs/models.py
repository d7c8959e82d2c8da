"""Activity events from devices, and the append-only audit log of what staff did."""

from django.conf import settings
from django.db import models


class EventType(models.TextChoices):
    WINDOW = "window", "Window"
    WEBSITE = "website", "Website"
    APPLICATION = "application", "Application"
    PRINT = "print", "Printed document"
    FILE_DELETED = "file_deleted", "File deleted"
    LOGON = "logon", "Logon"
    LOGOFF = "logoff", "Logoff"


class ActivityEvent(models.Model):
    """One thing that happened on a device. `data` holds the type's fields (validated by the API)."""

    uuid = models.UUIDField(unique=True, editable=False, help_text="Given by the agent.")
    type = models.CharField(max_length=16, choices=EventType.choices)
    device = models.ForeignKey("groups.Device", on_delete=models.CASCADE, related_name="events")
    person = models.ForeignKey("groups.Person", on_delete=models.CASCADE, related_name="events")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["person", "-occurred_at"], name="event_person_time"),
            models.Index(fields=["device", "-occurred_at"], name="event_device_time"),
            models.Index(fields=["type", "-occurred_at"], name="event_type_time"),
            # The log viewer's timeline pages by (occurred_at, id) over everything a staff member sees.
            models.Index(fields=["-occurred_at", "-id"], name="event_time_keyset"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} on {self.device_id} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete an audit entry."""


class AuditEntry(models.Model):
    """Who did what to which object, when. Rows are written once and never changed."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=255, blank=True, help_text="Kept if the account is later deleted.")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    summary = models.CharField(max_length=500, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["target_type", "target_id", "created_at"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.target_type} {self.target_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit entries are append-only.")


def _days(default: int | None, label: str, help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(
        label, null=True, blank=True, default=default, help_text=help_text + " Empty: keep for ever."
    )


class RetentionSettings(models.Model):
    """How long each kind of record is kept; applied daily (safeguard.logs.retention). One row (pk=1).

    The defaults and why they were chosen are in docs/operations.md ("Retention"). Open captures
    (new, under review, escalated) and open Confide reports are never deleted automatically: an
    unresolved concern must not vanish because nobody got to it.
    """

    activity_events_days = _days(
        180, "activity events", "Days to keep windows, websites, applications, prints and deleted-file events."
    )
    captures_false_positive_days = _days(
        90, "captures resolved as false positive", "Days after its last change (its resolution) to keep such a capture."
    )
    captures_resolved_days = _days(
        730, "captures resolved with action", "Days after its last change (its resolution) to keep such a capture."
    )
    screenshots_days = _days(
        365, "screenshots", "Days after a resolved capture's last change to keep its screenshot (the capture stays)."
    )
    recordings_days = _days(
        90,
        "recordings",
        "Days to keep screen recordings: of resolved captures, after the capture's last change; "
        "recordings staff asked for, after they were made.",
    )
    thumbnails_days = _days(1, "live thumbnails", "Days to keep the last thumbnail of a computer that stopped sending.")
    confide_closed_days = _days(730, "closed Confide reports", "Days after its last change to keep a closed report.")
    audit_log_days = _days(
        2190, "audit log", "Days to keep audit entries; at least as long as the captures and reports they describe."
    )
    export_files_days = _days(7, "PDF exports", "Days to keep a PDF export (the job and its file) for download.")
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_run_report = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        verbose_name = "retention settings"
        verbose_name_plural = "retention settings"

    def __str__(self) -> str:
        return "Retention settings"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.audit_log_days is None:
            return
        described = {
            "captures_resolved_days": self.captures_resolved_days,
            "captures_false_positive_days": self.captures_false_positive_days,
            "confide_closed_days": self.confide_closed_days,
        }
        if any(days is None or days > self.audit_log_days for days in described.values()):
            raise ValidationError(
                {
                    "audit_log_days": "Keep the audit log at least as long as the captures and Confide reports "
                    "it describes (or leave it empty to keep it for ever)."
                }
            )

    @classmethod
    def load(cls) -> "RetentionSettings":
        row, _ = cls.objects.get_or_create(pk=1)
        return row
