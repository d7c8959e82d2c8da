"""People, devices, groups and who on the staff may see which group."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from safeguard.core.models import BaseModel, PublicIdModel


class Person(PublicIdModel):
    """A monitored identity as the operating system reports it, e.g. ``SCHOOL\\jsmith``.

    Created on first sight by the agent API. Windows account names are case-insensitive,
    so uniqueness is on the lower-cased name.
    """

    username = models.CharField(max_length=255, help_text="As the OS reports it, e.g. SCHOOL\\jsmith.")
    display_name = models.CharField(max_length=255, blank=True)
    staff_user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="monitored_person",
        help_text="The staff account of this person, when they are staff.",
    )
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["username"]
        verbose_name_plural = "people"
        constraints = [
            models.UniqueConstraint(Lower("username"), name="person_username_ci_unique"),
            models.CheckConstraint(condition=~Q(username=""), name="person_username_not_empty"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.username


class Device(PublicIdModel):
    """A computer running the agent."""

    hostname = models.CharField(max_length=255)
    os = models.CharField("operating system", max_length=255, blank=True)
    agent_version = models.CharField(max_length=64, blank=True)
    enrolled_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="A revoked device's tokens stop working.")
    current_person = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="current_devices"
    )
    monitoring_paused_until = models.DateTimeField(null=True, blank=True)
    thumbnail = models.FileField(upload_to="thumbnails/", blank=True)
    thumbnail_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class DeviceToken(BaseModel):
    """A device's API credential. Only its SHA-256 hash is stored."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token for {self.device} ({'revoked' if self.revoked_at else 'active'})"


class EnrolmentCode(BaseModel):
    """A code an IT admin gives a device's installer. Stored hashed; capped uses; expiry."""

    label = models.CharField(max_length=255, blank=True)
    code_hash = models.CharField(max_length=64, unique=True, editable=False)
    code_hint = models.CharField(max_length=8, editable=False, help_text="The code's first characters.")
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    device_group = models.ForeignKey(
        "MonitoringGroup",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        limit_choices_to={"kind": "device"},
        help_text="Devices enrolled with this code join this device group.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(uses__lte=models.F("max_uses")), name="enrolment_code_uses_capped")
        ]

    def __str__(self) -> str:
        return f"{self.code_hint}… {self.label}".strip()


class GroupKind(models.TextChoices):
    USER = "user", "User group"
    DEVICE = "device", "Device group"


class MonitoringGroup(PublicIdModel):
    """A user group or device group in a tree. A personal group has an owner on the staff."""

    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=8, choices=GroupKind.choices, default=GroupKind.USER)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    description = models.TextField(blank=True)
    is_watch_group = models.BooleanField(
        default=False, help_text="A group for pupils who would benefit from additional scrutiny."
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="personal_groups",
        help_text="Set for a staff member's personal group.",
    )

    class Meta:
        ordering = ["kind", "name"]
        verbose_name = "group"
        constraints = [
            models.UniqueConstraint(fields=["kind", "parent", "name"], name="group_name_unique_in_parent"),
            models.UniqueConstraint(
                fields=["kind", "name"], condition=Q(parent__isnull=True), name="group_name_unique_at_root"
            ),
            models.CheckConstraint(condition=~Q(name=""), name="group_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_personal(self) -> bool:
        return self.owner_id is not None


class Membership(BaseModel):
    """A person in a user group or a device in a device group."""

    group = models.ForeignKey(MonitoringGroup, on_delete=models.CASCADE, related_name="memberships")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.CASCADE, related_name="memberships")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="memberships")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(person__isnull=False, device__isnull=True) | Q(person__isnull=True, device__isnull=False)),
                name="membership_person_xor_device",
            ),
            models.UniqueConstraint(fields=["group", "person"], name="membership_person_unique"),
            models.UniqueConstraint(fields=["group", "device"], name="membership_device_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.person or self.device} in {self.group}"


class StaffAccess(BaseModel):
    """Which group a staff account may see, and with which rights. Access covers subgroups."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="group_access")
    group = models.ForeignKey(MonitoringGroup, on_delete=models.CASCADE, related_name="staff_access")
    can_view_captures = models.BooleanField(default=True)
    can_manage_captures = models.BooleanField(default=False, help_text="Change status, assign, add notes, act.")
    can_view_recordings = models.BooleanField(default=False)
    is_confide_viewer = models.BooleanField(
        default=False, help_text="May read Confide reports from this group's people (and anonymous ones)."
    )

    class Meta:
        verbose_name = "staff access"
        verbose_name_plural = "staff access"
        constraints = [models.UniqueConstraint(fields=["user", "group"], name="staff_access_unique")]

    def __str__(self) -> str:
        return f"{self.user} → {self.group}"


class CommandType(models.TextChoices):
    RECORD_SCREEN = "record_screen", "Record screen"


class DeviceCommand(PublicIdModel):
    """Something staff asked a device to do; delivered with the device's next heartbeat."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="commands")
    type = models.CharField(max_length=32, choices=CommandType.choices)
    params = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["device", "delivered_at"], name="command_device_pending")]

    def __str__(self) -> str:
        return f"{self.get_type_display()} on {self.device}"
