"""Forms of the captures pages and the log viewer.

The filter form reads the query string. Every choice it offers comes from what the staff member
may see (safeguard.core.access), so the dropdowns never name a person or computer outside their
groups, and a hand-edited link naming one is refused like an unknown id. A filter that is not
what it claims (a person that is not a UUID, a date that is not a date) is dropped with a
message saying so; the rest of the filters still apply.
"""

import uuid
from datetime import date, datetime, time, timedelta

from django import forms
from django.db.models import Q
from django.utils import timezone

from safeguard.captures.models import CaptureStatus
from safeguard.captures.selectors import LogFilters
from safeguard.captures.services import NOTE_MAX_LENGTH
from safeguard.core import access
from safeguard.logs.models import EventType
from safeguard.logs.selectors import CAPTURE_TYPE
from safeguard.policies.models import KeywordPolicy, Severity

ORDER_CHOICES = [("desc", "Newest first"), ("asc", "Oldest first")]


# Above this many visible people (or computers), their filter is a text box taking a username, a
# name, a hostname or an id instead of a <select> listing every one: at trust scale (20,000 pupils
# and 20,000 computers) the two dropdowns made the log viewer a 3.5 MB page that took 20 s to
# render (bench/logviewer.py, docs/PERFORMANCE.md "Log viewer at trust scale").
SELECT_LIMIT = 500


class FittedSelect(forms.Select):
    """A model choice field's <select>, or a text box when it has more than SELECT_LIMIT choices.

    The rows are read when the widget renders (one query, at most SELECT_LIMIT + 1 rows, then
    used as the options), so a form that is not shown (a CSV export) reads none.
    """

    def __init__(self, *, field: forms.ModelChoiceField, placeholder: str) -> None:
        super().__init__()
        self.field = field
        self.placeholder = placeholder

    def render(self, name, value, attrs=None, renderer=None):
        # Unordered: PostgreSQL stops after SELECT_LIMIT + 1 rows instead of sorting 20,000 names
        # (120 ms at trust scale); a short list is sorted here, as the queryset's ordering says.
        queryset = self.field.queryset
        rows = list(queryset.order_by()[: SELECT_LIMIT + 1])
        if len(rows) > SELECT_LIMIT:
            box = forms.TextInput(attrs={"placeholder": self.placeholder, "autocomplete": "off"})
            return box.render(name, value, attrs, renderer)
        fields = [name.lstrip("-") for name in queryset.query.order_by]
        rows.sort(key=lambda row: [str(getattr(row, field) or "").casefold() for field in fields])
        self.choices = [("", self.field.empty_label)] + [
            (self.field.prepare_value(row), self.field.label_from_instance(row)) for row in rows
        ]
        return super().render(name, value, attrs, renderer)


class LookupChoiceField(forms.ModelChoiceField):
    """A visible person or computer, by its UUID (links) or, typed, by one of `lookup_fields` exactly.

    A text that matches nobody, or more than one, is refused like an unknown id (the filter is
    then ignored with a message). `fit_choices()` swaps the <select> for a text box when the
    choices are too many to list.
    """

    def __init__(self, *args, lookup_fields: tuple[str, ...], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lookup_fields = lookup_fields

    def fit_choices(self, placeholder: str) -> None:
        """Render as a <select> of the choices when there are at most SELECT_LIMIT, else as a text box."""
        self.widget = FittedSelect(field=self, placeholder=placeholder)

    def to_python(self, value):
        text = str(value or "").strip()
        if text in self.empty_values:
            return None
        try:
            uuid.UUID(text)
        except ValueError:
            query = Q()
            for name in self.lookup_fields:
                query |= Q(**{f"{name}__iexact": text})
            found = list(self.queryset.filter(query).order_by("pk")[:2])
            if len(found) != 1:
                raise forms.ValidationError(
                    self.error_messages["invalid_choice"], code="invalid_choice", params={"value": text}
                ) from None
            return found[0]
        return super().to_python(text)


class PersonChoiceField(LookupChoiceField):
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
            lookup_fields=("username", "display_name"),
        )
        self.fields["person"].fit_choices("Username or name")
        self.fields["device"] = LookupChoiceField(
            queryset=access.visible_devices(user).order_by("hostname"),
            to_field_name="uuid",
            required=False,
            empty_label="Any computer",
            label="Computer",
            lookup_fields=("hostname",),
        )
        self.fields["device"].fit_choices("Computer name")
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
