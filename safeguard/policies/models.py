"""Keyword policies, which groups they apply to, agent settings, alert and action rules."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from safeguard.core.models import BaseModel, PublicIdModel


class Category(models.TextChoices):
    SELF_HARM = "self_harm", "Self-harm"
    SUICIDE = "suicide", "Suicide"
    EATING_DISORDERS = "eating_disorders", "Eating disorders"
    BULLYING = "bullying", "Bullying and harassment"
    RADICALISATION = "radicalisation", "Radicalisation and extremism"
    GROOMING = "grooming", "Sexual content and grooming"
    DRUGS = "drugs", "Drugs and alcohol"
    WEAPONS = "weapons", "Weapons and violence"
    ADULT_CONTENT = "adult_content", "Adult content"
    GAMBLING = "gambling", "Gambling"
    ILLEGAL_CONTENT = "illegal_content", "Illegal content"
    OTHER = "other", "Other"


class Severity(models.TextChoices):
    """Ordered from least to most severe; `rank` compares them."""

    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    SEVERE = "severe", "Severe"

    @classmethod
    def rank(cls, value: str) -> int:
        return [choice.value for choice in cls].index(value)

    @classmethod
    def at_least(cls, value: str) -> list[str]:
        """The severities at or above `value`."""
        return [choice.value for choice in cls][cls.rank(value) :]


class MatchKind(models.TextChoices):
    WORD = "word", "Word"
    PHRASE = "phrase", "Phrase"
    ABBREVIATION = "abbreviation", "Abbreviation"


class KeywordSource(models.TextChoices):
    LIBRARY = "library", "Shipped library"
    ADMIN = "admin", "Added by an admin"
    IMPORT = "import", "Imported list"


class KeywordPolicy(PublicIdModel):
    """A named list of keywords in one category."""

    name = models.CharField(max_length=255, unique=True)
    category = models.CharField(max_length=32, choices=Category.choices)
    is_illegal_content = models.BooleanField(
        default=False, help_text="Captures are handled specially: no screenshot or context in emails."
    )
    language = models.CharField(max_length=16, default="en")
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    applies_to_everyone = models.BooleanField(
        default=True,
        help_text="Monitor every device and user with this policy (a freshly enrolled device is covered). "
        "Turn off to apply it only to chosen groups.",
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "keyword policy"
        verbose_name_plural = "keyword policies"

    def __str__(self) -> str:
        return self.name


class Keyword(BaseModel):
    policy = models.ForeignKey(KeywordPolicy, on_delete=models.CASCADE, related_name="keywords")
    text = models.CharField(max_length=200)
    match_kind = models.CharField(max_length=16, choices=MatchKind.choices, default=MatchKind.WORD)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    enabled = models.BooleanField(default=True)
    join_spaced_letters = models.BooleanField(
        default=False,
        help_text="Also match the keyword typed with its letters spaced out or dotted ('s u i c i d e', 'k.i.l.l').",
    )
    requires_nearby = models.JSONField(
        default=list,
        blank=True,
        help_text="Words of which at least one must appear nearby before this keyword fires (cuts false alarms "
        "on ambiguous words such as 'weed' or 'knife'). Empty: always fires.",
    )
    nearby_window = models.PositiveSmallIntegerField(
        default=5, help_text="How many words either side count as nearby for 'requires nearby'."
    )
    source = models.CharField(
        max_length=16,
        choices=KeywordSource.choices,
        default=KeywordSource.ADMIN,
        help_text="Where the keyword came from; reinstalling the shipped library never changes admin tuning.",
    )

    class Meta:
        ordering = ["policy", "text"]
        constraints = [
            models.UniqueConstraint("policy", Lower("text"), name="keyword_text_unique_in_policy"),
            models.CheckConstraint(condition=~Q(text=""), name="keyword_text_not_empty"),
        ]

    def __str__(self) -> str:
        return self.text


class AllowPhrase(BaseModel):
    """A phrase that suppresses a hit of its policy inside it: 'kill time', 'diet coke', 'butter knife'."""

    policy = models.ForeignKey(KeywordPolicy, on_delete=models.CASCADE, related_name="allow_phrases")
    text = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=KeywordSource.choices, default=KeywordSource.ADMIN)

    class Meta:
        ordering = ["policy", "text"]
        verbose_name = "allow-list phrase"
        constraints = [
            models.UniqueConstraint("policy", Lower("text"), name="allow_phrase_text_unique_in_policy"),
            models.CheckConstraint(condition=~Q(text=""), name="allow_phrase_text_not_empty"),
        ]

    def __str__(self) -> str:
        return self.text


class GroupPolicySetting(BaseModel):
    """Applies a keyword policy to a group (its people or devices), or excludes it there."""

    class Mode(models.TextChoices):
        APPLY = "apply", "Apply"
        EXCLUDE = "exclude", "Exclude"

    group = models.ForeignKey("groups.MonitoringGroup", on_delete=models.CASCADE, related_name="policy_settings")
    policy = models.ForeignKey(KeywordPolicy, on_delete=models.CASCADE, related_name="group_settings")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.APPLY)

    class Meta:
        verbose_name = "group policy setting"
        constraints = [models.UniqueConstraint(fields=["group", "policy"], name="group_policy_unique")]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} {self.policy} for {self.group}"


class KeywordExclusion(BaseModel):
    """One keyword switched off for a group (and its subgroups), with the reason a school gave.

    Schools ask for this when one word is ordinary in one setting ("overdose" in a nursing course,
    "shoot" in a photography club). The agent config of a device in the group, or whose current
    user is, leaves the keyword out; the rest of its policy still applies. Creating and deleting
    one is audited (services.keyword_exclusion_create / keyword_exclusion_delete).
    """

    group = models.ForeignKey("groups.MonitoringGroup", on_delete=models.CASCADE, related_name="keyword_exclusions")
    keyword = models.ForeignKey(Keyword, on_delete=models.CASCADE, related_name="exclusions")
    reason = models.TextField(help_text="Why this keyword is not monitored for this group (kept in the audit log).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["group", "keyword"]
        verbose_name = "keyword exclusion"
        constraints = [
            models.UniqueConstraint(fields=["group", "keyword"], name="keyword_exclusion_unique"),
            # Blank or whitespace-only reasons are refused by the form; the database refuses the empty one.
            models.CheckConstraint(condition=~Q(reason=""), name="keyword_exclusion_reason_not_empty"),
        ]

    def __str__(self) -> str:
        return f"“{self.keyword}” excluded for {self.group}"


class AgentSettings(BaseModel):
    """Settings every agent receives with its config. One row (pk=1)."""

    thumbnail_interval_seconds = models.PositiveIntegerField(default=10)
    heartbeat_interval_seconds = models.PositiveIntegerField(default=60)
    config_refresh_seconds = models.PositiveIntegerField(default=300)
    recording_seconds = models.PositiveIntegerField(
        default=30, help_text="Length of the recording of a severe capture."
    )
    confide_desktop_button = models.BooleanField(default=False, help_text="Show a 'Report a concern' desktop button.")
    disable_pin_hash = models.CharField(
        max_length=128, blank=True, help_text="Hash of the staff PIN that pauses monitoring on a device."
    )
    offline_after_minutes = models.PositiveIntegerField(
        default=15,
        validators=[MinValueValidator(1)],
        help_text="A device not heard from for this long is flagged 'Offline since …' in the console.",
    )
    offline_alert_addresses = models.TextField(
        blank=True,
        help_text="Email these addresses (IT staff, one per line) once when a device goes offline. Empty: no email.",
    )

    class Meta:
        verbose_name = "agent settings"
        verbose_name_plural = "agent settings"

    def __str__(self) -> str:
        return "Agent settings"

    @classmethod
    def load(cls) -> "AgentSettings":
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row


class AlertRule(PublicIdModel):
    """Email staff when a capture in a group matches chosen policies at a minimum severity."""

    class Digest(models.TextChoices):
        IMMEDIATE = "immediate", "Immediately"
        HOURLY = "hourly", "Hourly digest"
        DAILY = "daily", "Daily digest"

    name = models.CharField(max_length=255)
    group = models.ForeignKey(
        "groups.MonitoringGroup",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text="Captures of the people in this group and its subgroups (or on the devices of a device group). "
        "Empty: every capture in the school.",
    )
    policies = models.ManyToManyField(KeywordPolicy, blank=True, help_text="Empty means every policy.")
    min_severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.HIGH)
    recipients = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="alert_rules")
    extra_addresses = models.TextField(blank=True, help_text="Further email addresses, one per line.")
    digest = models.CharField(max_length=16, choices=Digest.choices, default=Digest.IMMEDIATE)
    enabled = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="owned_alert_rules",
        help_text="The staff member who set this rule on a personal group.",
    )

    def __str__(self) -> str:
        return self.name


class ActionRule(PublicIdModel):
    """'Actions to perform': after N captures of at least severity S, move the person or notify staff."""

    name = models.CharField(max_length=255)
    group = models.ForeignKey(
        "groups.MonitoringGroup",
        on_delete=models.CASCADE,
        related_name="action_rules",
        help_text="The rule watches people in this group (and its subgroups).",
    )
    min_severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.SEVERE)
    threshold = models.PositiveIntegerField(default=50)
    within_days = models.PositiveIntegerField(null=True, blank=True, help_text="Empty means all time.")
    move_to_group = models.ForeignKey(
        "groups.MonitoringGroup",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"kind": "user"},
    )
    notify_staff = models.BooleanField(default=False, help_text="Email the staff with access to the group.")
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(threshold__gte=1), name="action_rule_threshold_positive")]

    def __str__(self) -> str:
        return self.name


# --- Email alerts, digests and escalation: the rows that make each email go out exactly once -----


class DeliveryStatus(models.TextChoices):
    """Where one email stands. PENDING is a claim: a worker is sending it (or died doing so)."""

    PENDING = "pending", "Being sent"
    SENT = "sent", "Sent"
    QUEUED = "queued", "Waiting for the digest"
    IN_DIGEST = "in_digest", "In a digest being sent"
    FAILED = "failed", "Failed (gave up)"
    DUPLICATE = "duplicate", "Not sent: the address had this capture's email from another rule"


class DigestFrequency(models.TextChoices):
    HOURLY = "hourly", "Hourly"
    DAILY = "daily", "Daily"


class CaptureFollowup(models.Model):
    """Whether a new capture's background work (preview, alerts, action rules) reached the broker.

    A transactional outbox: written with the capture, in its ingest transaction, undispatched;
    `dispatched_at` is set once its tasks are enqueued after the commit. A row whose `dispatched_at`
    stays empty (Redis down, the web process killed after the commit) is dispatched again by a
    beat task (safeguard.policies.followups), so a capture stored while Redis was down still alerts.
    `alerts_decided_at` is set by the alert task once it has decided the capture's emails: a row
    dispatched long ago without it lost its tasks after Redis accepted them, and is dispatched again.
    `attempts` counts dispatch attempts.
    """

    capture = models.OneToOneField(
        "captures.Capture", on_delete=models.CASCADE, primary_key=True, related_name="followup"
    )
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    alerts_decided_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=1)

    class Meta:
        indexes = [
            models.Index(fields=["created_at"], condition=Q(dispatched_at__isnull=True), name="followup_undispatched"),
            models.Index(
                fields=["dispatched_at"], condition=Q(alerts_decided_at__isnull=True), name="followup_undecided"
            ),
        ]

    def __str__(self) -> str:
        return f"Follow-ups of capture {self.capture_id}"


class AlertDigest(PublicIdModel):
    """One digest email to one address for one rule: the captures it lists are its deliveries."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="digests")
    address = models.EmailField(max_length=254)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "claimed_at"], name="alert_digest_status")]

    def __str__(self) -> str:
        return f"Digest of {self.rule} to {self.address}"


class AlertDelivery(PublicIdModel):
    """One capture for one rule to one address. The unique row is the claim, made before sending.

    An immediate mail is claimed PENDING, then marked SENT; a redelivered task finds it and does
    nothing. A capture throttled or meant for a digest waits QUEUED until `digest_due_at`, when
    the digest sweep moves it into an AlertDigest (IN_DIGEST, then SENT with the digest).
    """

    class Mode(models.TextChoices):
        IMMEDIATE = "immediate", "Immediate"
        DIGEST = "digest", "Digest"

    capture = models.ForeignKey("captures.Capture", on_delete=models.CASCADE, related_name="alert_deliveries")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="deliveries")
    # Copied from the capture, for the throttle's "per person" question.
    person = models.ForeignKey("groups.Person", on_delete=models.CASCADE, related_name="+")
    address = models.EmailField(max_length=254, help_text="Lower-cased.")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    throttled = models.BooleanField(
        default=False, help_text="Meant to go at once, but the throttle sent it to a digest."
    )
    decided_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices)
    digest_frequency = models.CharField(max_length=8, choices=DigestFrequency.choices, blank=True)
    digest_due_at = models.DateTimeField(null=True, blank=True)
    digest = models.ForeignKey(AlertDigest, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True, help_text="The task that claimed it.")
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-decided_at"]
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(fields=["capture", "rule", "address"], name="alert_delivery_once"),
        ]
        indexes = [
            models.Index(fields=["rule", "person", "address", "decided_at"], name="alert_delivery_throttle"),
            models.Index(fields=["status", "digest_due_at"], name="alert_delivery_due"),
            models.Index(fields=["status", "claimed_at"], name="alert_delivery_claims"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} → {self.address} (capture {self.capture_id})"


class EscalationSettings(BaseModel):
    """Escalation for a group: if nobody opens or changes a severe capture in time, email the next contact."""

    group = models.OneToOneField("groups.MonitoringGroup", on_delete=models.CASCADE, related_name="escalation")
    minutes = models.PositiveIntegerField(
        default=15,
        validators=[MinValueValidator(1)],
        help_text="How long a capture may stay unopened before the next contact is emailed.",
    )
    max_rounds = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text="How many contacts are emailed at most, one per round (the list starts over when it runs out).",
    )
    min_severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.SEVERE)
    enabled = models.BooleanField(default=True)

    class Meta:
        verbose_name = "escalation"
        verbose_name_plural = "escalations"
        constraints = [
            models.CheckConstraint(condition=Q(minutes__gte=1), name="escalation_minutes_positive"),
            models.CheckConstraint(condition=Q(max_rounds__gte=1), name="escalation_rounds_positive"),
        ]

    def __str__(self) -> str:
        return f"Escalation for {self.group}"


class EscalationContact(BaseModel):
    """One contact in a group's escalation list; round 1 emails the lowest `order`."""

    escalation = models.ForeignKey(EscalationSettings, on_delete=models.CASCADE, related_name="contacts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    order = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["escalation", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["escalation", "user"], name="escalation_contact_once"),
        ]

    def __str__(self) -> str:
        return f"{self.order}. {self.user}"


class EscalationRound(BaseModel):
    """Round N of one capture's escalation in one group: the unique row is the claim, made before sending."""

    capture = models.ForeignKey("captures.Capture", on_delete=models.CASCADE, related_name="escalation_rounds")
    group = models.ForeignKey("groups.MonitoringGroup", on_delete=models.CASCADE, related_name="+")
    round = models.PositiveSmallIntegerField()
    contact = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    address = models.EmailField(max_length=254)
    started_at = models.DateTimeField(help_text="When the round was due and begun; the next is due `minutes` later.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["capture", "group", "round"]
        constraints = [
            models.UniqueConstraint(fields=["capture", "group", "round"], name="escalation_round_once"),
        ]
        indexes = [models.Index(fields=["status", "claimed_at"], name="escalation_round_claims")]

    def __str__(self) -> str:
        return f"Escalation round {self.round} of capture {self.capture_id}"


class CaptureView(models.Model):
    """The first time each staff member opened a capture's page: "opened" for escalation."""

    capture = models.ForeignKey("captures.Capture", on_delete=models.CASCADE, related_name="views")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    first_viewed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["capture", "user"], name="capture_view_once")]

    def __str__(self) -> str:
        return f"{self.user} opened capture {self.capture_id}"


class DeviceOutage(BaseModel):
    """A device that stopped reporting, flagged once per outage (its last report starts it).

    The unique (device, started_at) row is the claim of the one "device offline" email.
    """

    device = models.ForeignKey("groups.Device", on_delete=models.CASCADE, related_name="outages")
    started_at = models.DateTimeField(help_text="The device's last report before it went quiet.")
    detected_at = models.DateTimeField()
    addresses = models.TextField(blank=True, help_text="Who was emailed, one per line.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["device", "started_at"], name="device_outage_once")]
        indexes = [models.Index(fields=["status", "claimed_at"], name="device_outage_claims")]

    def __str__(self) -> str:
        return f"{self.device} offline since {self.started_at:%Y-%m-%d %H:%M}"
