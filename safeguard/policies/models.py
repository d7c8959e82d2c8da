"""Keyword policies, which groups they apply to, agent settings, alert and action rules."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

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
    group = models.ForeignKey("groups.MonitoringGroup", on_delete=models.CASCADE, related_name="alert_rules")
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
