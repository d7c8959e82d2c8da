"""Captures (a keyword matched on a device), their notes and screen recordings."""

import uuid

from django.conf import settings
from django.db import models

from safeguard.core.models import BaseModel
from safeguard.policies.models import Severity


class CaptureStatus(models.TextChoices):
    NEW = "new", "New"
    UNDER_REVIEW = "under_review", "Under review"
    ESCALATED = "escalated", "Escalated"
    RESOLVED_ACTION = "resolved_action", "Resolved: action taken"
    RESOLVED_FALSE_POSITIVE = "resolved_false_positive", "Resolved: false positive"


def screenshot_path(capture: "Capture", filename: str) -> str:
    # Never the client's filename: the path comes from our own identifiers.
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "png"
    return f"screenshots/{capture.occurred_at:%Y/%m/%d}/{capture.uuid}.{extension}"


def screenshot_preview_path(capture: "Capture", filename: str) -> str:
    return f"screenshots/{capture.occurred_at:%Y/%m/%d}/{capture.uuid}-preview.webp"


class Capture(BaseModel):
    """A keyword policy matched on a device. The agent gives it its UUID, so resends are harmless."""

    uuid = models.UUIDField(unique=True, editable=False, help_text="Given by the agent.")
    person = models.ForeignKey("groups.Person", on_delete=models.PROTECT, related_name="captures")
    device = models.ForeignKey("groups.Device", on_delete=models.PROTECT, related_name="captures")
    policy = models.ForeignKey("policies.KeywordPolicy", null=True, on_delete=models.SET_NULL, related_name="captures")
    keyword = models.ForeignKey(
        "policies.Keyword", null=True, blank=True, on_delete=models.SET_NULL, related_name="captures"
    )
    keyword_text = models.CharField(max_length=200)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    context = models.CharField(max_length=400, blank=True, help_text="Short text around the match.")
    application = models.CharField(max_length=255, blank=True)
    window_title = models.CharField(max_length=1024, blank=True)
    url = models.CharField(max_length=2048, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    screenshot = models.FileField(upload_to=screenshot_path, blank=True)
    screenshot_preview = models.FileField(upload_to=screenshot_preview_path, blank=True)
    status = models.CharField(max_length=32, choices=CaptureStatus.choices, default=CaptureStatus.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_captures"
    )

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["person", "-occurred_at"], name="capture_person_time"),
            models.Index(fields=["device", "-occurred_at"], name="capture_device_time"),
            models.Index(fields=["status", "-occurred_at"], name="capture_status_time"),
            models.Index(fields=["-occurred_at", "-id"], name="capture_time_keyset"),
        ]

    def __str__(self) -> str:
        return f"{self.keyword_text} ({self.get_severity_display()}) by {self.person}"

    @property
    def is_reviewed(self) -> bool:
        return self.status != CaptureStatus.NEW


class CaptureNote(BaseModel):
    capture = models.ForeignKey(Capture, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    text = models.TextField()

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Note on {self.capture_id} by {self.author}"


def recording_path(recording: "Recording", filename: str) -> str:
    return f"recordings/{recording.created_at or recording.started_at:%Y/%m/%d}/{recording.uuid}.mp4"


class Recording(BaseModel):
    """A screen recording: from a severe capture, or asked for by staff."""

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public (staff with access to the group)"
        PRIVATE = "private", "Private (only its owner)"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    capture = models.OneToOneField(Capture, null=True, blank=True, on_delete=models.CASCADE, related_name="recording")
    device = models.ForeignKey("groups.Device", on_delete=models.PROTECT, related_name="recordings")
    person = models.ForeignKey(
        "groups.Person", null=True, blank=True, on_delete=models.PROTECT, related_name="recordings"
    )
    file = models.FileField(upload_to=recording_path)
    started_at = models.DateTimeField()
    duration_seconds = models.FloatField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PUBLIC)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="recordings",
        help_text="The staff member who asked for it; a private recording is theirs alone.",
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Recording on {self.device} at {self.started_at:%Y-%m-%d %H:%M}"


class ActionRuleFiring(BaseModel):
    """An action rule fired for a person: written once, so the rule acts exactly once per person.

    The unique (rule, person) row is the claim: whichever evaluation inserts it performs the
    move and the notice; any other (a concurrent capture, a redelivered task) finds it and does
    nothing. Deleting the row re-arms the rule for that person.
    """

    rule = models.ForeignKey("policies.ActionRule", on_delete=models.CASCADE, related_name="firings")
    person = models.ForeignKey("groups.Person", on_delete=models.CASCADE, related_name="action_rule_firings")
    capture = models.ForeignKey(
        Capture,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The capture whose evaluation reached the threshold.",
    )
    capture_count = models.PositiveIntegerField(help_text="Matching captures counted when the rule fired.")
    moved_to_group = models.ForeignKey(
        "groups.MonitoringGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notified_at = models.DateTimeField(null=True, blank=True, help_text="When the staff notice was sent.")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "action rule firing"
        constraints = [models.UniqueConstraint(fields=["rule", "person"], name="action_rule_fires_once_per_person")]

    def __str__(self) -> str:
        return f"{self.rule} fired for {self.person}"


def export_path(job: "ExportJob", filename: str) -> str:
    # Named from the job's UUID, never from anything a user typed.
    return f"exports/{job.created_at:%Y/%m/%d}/{job.uuid}.pdf"


class ExportJob(BaseModel):
    """A PDF export built in the background, with its progress; only its requester may download it."""

    class Kind(models.TextChoices):
        LOGS_REPORT = "logs_report", "Log viewer report"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="export_jobs"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.LOGS_REPORT)
    params = models.JSONField(
        default=dict, blank=True, help_text="The filters, re-applied with the requester's access."
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0 to 100.")
    file = models.FileField(upload_to=export_path, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    capture_count = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "export job"
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="export_job_progress_at_most_100")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.requested_by} ({self.get_status_display()})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
