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
