"""Forms of the captures pages and the log viewer.

The filter form reads the query string. Every choice it offers comes from what the staff member
may see (safeguard.core.access), so the dropdowns never name a person or computer outside their
groups, and a hand-edited link naming one is refused like an unknown id. A filter that is not
what it claims (a person that is not a UUID, a date that is not a date) is dropped with a
message saying so; the rest of the filters still apply.
"""

from datetime import date, datetime, time, timedelta

from django import forms
from django.utils import timezone

from safeguard.captures.models import CaptureStatus
from safeguard.captures.selectors import LogFilters
from safeguard.captures.services import NOTE_MAX_LENGTH
from safeguard.core import access
from safeguard.logs.models import EventType
from safeguard.logs.selectors import CAPTURE_TYPE
from safeguard.policies.models import KeywordPolicy, Severity

ORDER_CHOICES = [("desc", "Newest first"), ("asc", "Oldest first")]


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.display_name} ({obj.username})" if obj.display_name else obj.username


class DateOrDateTimeField(forms.Field):
    """A date (YYYY-MM-DD) or a local date and time (YYYY-MM-DDTHH:MM[:SS]) from the query string."""

    widget = forms.DateInput(attrs={"type": "date"})
    default_error_messages = {"invalid": "Enter a date as YYYY-MM-DD."}

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return None
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed)
        return parsed


def _start_of(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return timezone.make_aware(datetime.combine(value, time.min))


def _end_of(value) -> datetime | None:
    """The exclusive end: a date means the whole of that day."""
    if value is None or isinstance(value, datetime):
        return value
    return timezone.make_aware(datetime.combine(value + timedelta(days=1), time.min))


class LogFilterForm(forms.Form):
    """The filters of /console/captures/ and /console/logs/. Bound to request.GET."""

    FIELD_LABELS = {
        "from": "From",
        "to": "To",
        "person": "Person",
        "device": "Computer",
        "policy": "Policy",
        "severity": "Severity",
        "status": "Status",
        "type": "Event type",
        "order": "Order",
    }

    def __init__(self, data, *, user, with_event_type: bool = False, **kwargs) -> None:
        super().__init__(data, **kwargs)
        self.fields["from"] = DateOrDateTimeField(required=False, label="From")
        self.fields["to"] = DateOrDateTimeField(required=False, label="To (inclusive)")
        self.fields["person"] = PersonChoiceField(
            queryset=access.visible_people(user).order_by("display_name", "username"),
            to_field_name="uuid",
            required=False,
            empty_label="Everyone",
            label="Person",
        )
        self.fields["device"] = forms.ModelChoiceField(
            queryset=access.visible_devices(user).order_by("hostname"),
            to_field_name="uuid",
            required=False,
            empty_label="Any computer",
            label="Computer",
        )
        self.fields["policy"] = forms.ModelChoiceField(
            queryset=KeywordPolicy.objects.order_by("name"),
            to_field_name="uuid",
            required=False,
            empty_label="Any policy",
            label="Policy",
        )
        self.fields["severity"] = forms.ChoiceField(
            choices=[("", "Any severity"), *Severity.choices], required=False, label="Severity"
        )
        self.fields["status"] = forms.ChoiceField(
            choices=[("", "Any status"), *CaptureStatus.choices], required=False, label="Status"
        )
        if with_event_type:
            self.fields["type"] = forms.ChoiceField(
                choices=[("", "Everything"), (CAPTURE_TYPE, "Captures only"), *EventType.choices],
                required=False,
                label="Event type",
            )
        self.fields["order"] = forms.ChoiceField(choices=ORDER_CHOICES, required=False, label="Order")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("from"), cleaned.get("to")
        if start is not None and end is not None and _start_of(start) >= _end_of(end):
            self.add_error("to", "The end is before the start.")
        return cleaned

    def ignored_messages(self) -> list[str]:
        """What was ignored and why, one sentence per bad filter (the page still renders)."""
        self.is_valid()
        return [
            f"Ignored the {self.FIELD_LABELS.get(name, name).lower()} filter: {' '.join(errors)}"
            for name, errors in self.errors.items()
            if name != "__all__"
        ]

    def to_filters(self, *, group_ids: frozenset[int] = frozenset()) -> LogFilters:
        """The valid filters as LogFilters (call after is_valid(); invalid ones are left out)."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return LogFilters(
            start=_start_of(data.get("from")),
            end=_end_of(data.get("to")),
            person=data.get("person"),
            device=data.get("device"),
            group_ids=group_ids,
            policy=data.get("policy"),
            severity=data.get("severity") or "",
            status=data.get("status") or "",
            event_type=data.get("type") or "",
        )


class StatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=[choice for choice in CaptureStatus.choices if choice[0] != CaptureStatus.NEW], label="Status"
    )


class AssignForm(forms.Form):
    def __init__(self, *args, assignees, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"] = forms.ModelChoiceField(
            queryset=assignees, required=False, empty_label="Nobody", label="Assignee"
        )
        self.fields["assignee"].label_from_instance = lambda user: (
            f"{user.get_full_name()} ({user.get_username()})" if user.get_full_name() else user.get_username()
        )


class NoteForm(forms.Form):
    text = forms.CharField(
        label="Add a note", max_length=NOTE_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 4}), strip=True
    )


class MoveForm(forms.Form):
    def __init__(self, *args, groups, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"] = forms.ModelChoiceField(
            queryset=groups, to_field_name="uuid", empty_label="Choose a group…", label="Move the person to"
        )
