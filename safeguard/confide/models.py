"""Confide reports from pupils (optionally anonymous) and requests for assistance."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from safeguard.core.models import BaseModel


class ConfideReport(BaseModel):
    """A pupil's concern. An anonymous report stores no person and no device, and its time only to the hour."""

    class About(models.TextChoices):
        ME = "me", "About me"
        SOMEONE_ELSE = "someone_else", "About someone else"

    class Status(models.TextChoices):
        NEW = "new", "New"
        IN_PROGRESS = "in_progress", "In progress"
        CLOSED = "closed", "Closed"

    uuid = models.UUIDField(unique=True, editable=False, help_text="Given by the agent.")
    message = models.TextField()
    about = models.CharField(max_length=16, choices=About.choices)
    is_anonymous = models.BooleanField(default=False)
    person = models.ForeignKey("groups.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    device = models.ForeignKey("groups.Device", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reported_at = models.DateTimeField(help_text="For anonymous reports, truncated to the hour.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    handler = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-reported_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_anonymous=False) | Q(person__isnull=True, device__isnull=True),
                name="confide_anonymous_has_no_identity",
            )
        ]

    def __str__(self) -> str:
        return f"Confide report {self.uuid}"


class ConfideNote(BaseModel):
    report = models.ForeignKey(ConfideReport, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    text = models.TextField()

    class Meta:
        ordering = ["created_at"]


class AssistanceRequest(BaseModel):
    """A pupil asked for help from the tray menu."""

    uuid = models.UUIDField(unique=True, editable=False, help_text="Given by the agent.")
    person = models.ForeignKey("groups.Person", on_delete=models.CASCADE, related_name="assistance_requests")
    device = models.ForeignKey("groups.Device", on_delete=models.CASCADE, related_name="assistance_requests")
    message = models.TextField(blank=True)
    requested_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Assistance for {self.person} on {self.device}"
