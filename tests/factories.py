"""factory_boy factories for every model the tests build. Use these, not copied fixtures."""

import io
import uuid
from unittest import mock

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from safeguard.captures.models import Capture, CaptureNote, CaptureStatus, Recording
from safeguard.confide.models import AssistanceRequest, ConfideNote, ConfideReport
from safeguard.groups.models import (
    CommandType,
    Device,
    DeviceCommand,
    GroupKind,
    Membership,
    MonitoringGroup,
    Person,
    StaffAccess,
)
from safeguard.groups.services import device_token_issue
from safeguard.logs.models import ActivityEvent, AuditEntry, EventType
from safeguard.policies.models import (
    ActionRule,
    AlertRule,
    Category,
    EscalationContact,
    EscalationSettings,
    GroupPolicySetting,
    Keyword,
    KeywordPolicy,
    MatchKind,
    Severity,
)

PASSWORD = "correct-horse-battery"


def png_bytes(width: int = 64, height: int = 48, colour: str = "navy") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


class StaffUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@school.test")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    username = factory.Sequence(lambda n: f"SCHOOL\\pupil{n}")
    display_name = factory.Sequence(lambda n: f"Pupil {n}")
    first_seen_at = factory.LazyFunction(timezone.now)


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    hostname = factory.Sequence(lambda n: f"LAB1-PC{n:02d}")
    os = "Windows 11"
    agent_version = "1.0.0"
    enrolled_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyFunction(timezone.now)


class UserGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MonitoringGroup

    name = factory.Sequence(lambda n: f"Form {n}")
    kind = GroupKind.USER


class DeviceGroupFactory(UserGroupFactory):
    name = factory.Sequence(lambda n: f"Room {n}")
    kind = GroupKind.DEVICE


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    group = factory.SubFactory(UserGroupFactory)
    person = factory.SubFactory(PersonFactory)


class StaffAccessFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffAccess

    user = factory.SubFactory(StaffUserFactory)
    group = factory.SubFactory(UserGroupFactory)
    can_view_captures = True
    can_manage_captures = True
    can_view_recordings = True


class KeywordPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KeywordPolicy

    name = factory.Sequence(lambda n: f"Policy {n}")
    category = Category.SELF_HARM


class KeywordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Keyword

    policy = factory.SubFactory(KeywordPolicyFactory)
    text = factory.Sequence(lambda n: f"keyword{n}")
    match_kind = MatchKind.WORD
    severity = Severity.HIGH


class CaptureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Capture

    uuid = factory.LazyFunction(uuid.uuid4)
    person = factory.SubFactory(PersonFactory)
    device = factory.SubFactory(DeviceFactory)
    keyword = factory.SubFactory(KeywordFactory)
    policy = factory.SelfAttribute("keyword.policy")
    keyword_text = factory.SelfAttribute("keyword.text")
    severity = factory.SelfAttribute("keyword.severity")
    context = factory.LazyAttribute(lambda o: f"... typed {o.keyword_text} here ...")
    application = "chrome.exe"
    window_title = "Search - Google Chrome"
    occurred_at = factory.LazyFunction(timezone.now)
    status = CaptureStatus.NEW
    screenshot = factory.LazyFunction(lambda: ContentFile(png_bytes(), name="shot.png"))


class RecordingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Recording

    capture = factory.SubFactory(CaptureFactory)
    device = factory.SelfAttribute("capture.device")
    person = factory.SelfAttribute("capture.person")
    started_at = factory.LazyFunction(timezone.now)
    duration_seconds = 30.0
    file = factory.LazyFunction(lambda: ContentFile(b"\x00\x00\x00\x18ftypmp42", name="rec.mp4"))


class ActivityEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ActivityEvent

    uuid = factory.LazyFunction(uuid.uuid4)
    type = EventType.WINDOW
    device = factory.SubFactory(DeviceFactory)
    person = factory.SubFactory(PersonFactory)
    occurred_at = factory.LazyFunction(timezone.now)
    data = factory.LazyFunction(lambda: {"title": "Untitled - Notepad", "application": "notepad.exe"})


class ConfideReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConfideReport

    uuid = factory.LazyFunction(uuid.uuid4)
    message = "Someone in my class is being picked on."
    about = ConfideReport.About.SOMEONE_ELSE
    is_anonymous = False
    person = factory.SubFactory(PersonFactory)
    device = factory.SubFactory(DeviceFactory)
    reported_at = factory.LazyFunction(timezone.now)


class AssistanceRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AssistanceRequest

    uuid = factory.LazyFunction(uuid.uuid4)
    person = factory.SubFactory(PersonFactory)
    device = factory.SubFactory(DeviceFactory)
    message = "Can someone help me?"
    requested_at = factory.LazyFunction(timezone.now)


class GroupPolicySettingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GroupPolicySetting

    group = factory.SubFactory(UserGroupFactory)
    policy = factory.SubFactory(KeywordPolicyFactory, applies_to_everyone=False)
    mode = GroupPolicySetting.Mode.APPLY


class DeviceCommandFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceCommand

    device = factory.SubFactory(DeviceFactory)
    type = CommandType.RECORD_SCREEN
    params = factory.LazyFunction(lambda: {"seconds": 30})


def enrolled_device(**kwargs) -> tuple[Device, str]:
    """A device with a working token: returns (device, token)."""
    device = DeviceFactory(**kwargs)
    return device, device_token_issue(device=device)


class CaptureNoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CaptureNote

    capture = factory.SubFactory(CaptureFactory)
    author = factory.SubFactory(StaffUserFactory)
    text = "Spoke with the pupil; no further action."


class ConfideNoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConfideNote

    report = factory.SubFactory(ConfideReportFactory)
    author = factory.SubFactory(StaffUserFactory)
    text = "Passed to the head of year."


class AlertRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AlertRule

    name = factory.Sequence(lambda n: f"Alert rule {n}")
    group = factory.SubFactory(UserGroupFactory)
    min_severity = Severity.HIGH


class EscalationSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EscalationSettings

    group = factory.SubFactory(UserGroupFactory)
    minutes = 15
    max_rounds = 3
    min_severity = Severity.SEVERE


class EscalationContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EscalationContact

    escalation = factory.SubFactory(EscalationSettingsFactory)
    user = factory.SubFactory(StaffUserFactory)
    order = factory.Sequence(lambda n: n + 1)


class ActionRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ActionRule

    name = factory.Sequence(lambda n: f"Action rule {n}")
    group = factory.SubFactory(UserGroupFactory)
    min_severity = Severity.SEVERE
    threshold = 50
    move_to_group = factory.SubFactory(UserGroupFactory, is_watch_group=True)


class AuditEntryFactory(factory.django.DjangoModelFactory):
    """An audit row as a service would write it (services use safeguard.logs.services.audit_record)."""

    class Meta:
        model = AuditEntry

    actor = factory.SubFactory(StaffUserFactory)
    actor_name = factory.LazyAttribute(lambda o: o.actor.username if o.actor else "system")
    action = "capture.status_changed"
    target_type = "capture"
    target_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    summary = "Status changed from New to Under review"
    before = factory.LazyFunction(lambda: {"status": "new"})
    after = factory.LazyFunction(lambda: {"status": "under_review"})

    @classmethod
    def _create(cls, model_class, *args, created_at=None, **kwargs):
        # created_at is set on insert, and on PostgreSQL a trigger refuses changing an audit row
        # afterwards (logs migration 0005): an entry from the past is written with the clock set back.
        if created_at is None:
            return super()._create(model_class, *args, **kwargs)
        with mock.patch("django.utils.timezone.now", return_value=created_at):
            return super()._create(model_class, *args, **kwargs)


class ExportJobFactory(factory.django.DjangoModelFactory):
    """A PDF export job as the console's "Export PDF" button makes it (safeguard.captures.exports)."""

    class Meta:
        model = "captures.ExportJob"

    requested_by = factory.SubFactory(StaffUserFactory)
    params = factory.LazyFunction(lambda: {"order": "desc"})


class ActionRuleFiringFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "captures.ActionRuleFiring"

    rule = factory.SubFactory(ActionRuleFactory)
    person = factory.SubFactory(PersonFactory)
    capture_count = factory.SelfAttribute("rule.threshold")


class KeywordExclusionFactory(factory.django.DjangoModelFactory):
    """A keyword switched off for one group, with its reason (made directly: the service audits)."""

    class Meta:
        model = "policies.KeywordExclusion"

    group = factory.SubFactory(UserGroupFactory)
    keyword = factory.SubFactory(KeywordFactory)
    reason = "Used in the nursing course"
