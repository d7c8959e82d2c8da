"""Admin forms for groups, memberships and enrolment codes."""

from datetime import timedelta

from django import forms
from django.contrib.admin.widgets import AutocompleteSelectMultiple
from django.forms.models import InlineForeignKeyField
from django.utils import timezone

from safeguard.groups.models import Device, EnrolmentCode, GroupKind, Membership, MonitoringGroup, Person


class MonitoringGroupForm(forms.ModelForm):
    """A group's parent is a group of the same kind, and never the group itself or one below it."""

    class Meta:
        model = MonitoringGroup
        fields = ["name", "kind", "parent", "description", "is_watch_group", "owner"]

    def clean(self):
        cleaned = super().clean()
        parent, kind = cleaned.get("parent"), cleaned.get("kind")
        changing_kind = self.instance.pk and kind and kind != self.instance.kind
        if changing_kind and (self.instance.memberships.exists() or self.instance.children.exists()):
            self.add_error("kind", "This group has members or subgroups: move them out before changing its kind.")
        if parent is None:
            return cleaned
        if kind and parent.kind != kind:
            self.add_error(
                "parent", f"{parent} is a {parent.get_kind_display().lower()}: a parent must be of the same kind."
            )
        ancestor, seen = parent, set()
        while self.instance.pk and ancestor is not None and ancestor.pk not in seen:
            if ancestor.pk == self.instance.pk:
                self.add_error("parent", "A group cannot be inside itself or one of its own subgroups.")
                break
            seen.add(ancestor.pk)
            ancestor = ancestor.parent
        return cleaned


class MembershipForm(forms.ModelForm):
    """A membership names a person in a user group, or a device in a device group: never both."""

    class Meta:
        model = Membership
        fields = ["group", "person", "device"]

    def clean(self):
        cleaned = super().clean()
        group = cleaned.get("group") or getattr(self.instance, "group", None)
        person, device = cleaned.get("person"), cleaned.get("device")
        if group is None:
            return cleaned
        if group.kind == GroupKind.USER:
            if device is not None:
                self._error("device", f"{group} is a user group: it holds people, not devices.")
            elif person is None:
                self._error("person", "Choose the person to add.")
        else:
            if person is not None:
                self._error("person", f"{group} is a device group: it holds devices, not people.")
            elif device is None:
                self._error("device", "Choose the device to add.")
        return cleaned

    def _error(self, field: str, message: str) -> None:
        """Attach the error to `field`, or to the group when `field` is the inline's hidden parent."""
        for name in (field, "group"):
            if name in self.fields and not isinstance(self.fields[name], InlineForeignKeyField):
                self.add_error(name, message)
                return
        self.add_error(None, message)


USERNAMES_HELP = "As the computer reports them, e.g. SCHOOL\\jsmith. A username not seen before becomes a new person."


class GroupBulkAddForm(forms.Form):
    """Many members at once: names pasted one per line, and/or people (or devices) picked from a list."""

    names = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "cols": 60, "spellcheck": "false", "autocomplete": "off"}),
    )
    people = forms.ModelMultipleChoiceField(queryset=Person.objects.all(), required=False)
    devices = forms.ModelMultipleChoiceField(queryset=Device.objects.filter(revoked_at__isnull=True), required=False)

    def __init__(self, *args, group: MonitoringGroup, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group
        if group.kind == GroupKind.USER:
            del self.fields["devices"]
            self.fields["names"].label = "Usernames, one per line"
            self.fields["names"].help_text = USERNAMES_HELP
            self._autocomplete("people", "person", "Or pick people", admin_site)
        else:
            del self.fields["people"]
            self.fields["names"].label = "Hostnames, one per line"
            self.fields["names"].help_text = "Each must name one enrolled device."
            self._autocomplete("devices", "device", "Or pick devices", admin_site)

    def _autocomplete(self, name: str, membership_field: str, label: str, admin_site) -> None:
        """Search-as-you-type for the members' list, like the membership admin's own fields."""
        field = self.fields[name]
        field.label = label
        field.widget = AutocompleteSelectMultiple(Membership._meta.get_field(membership_field), admin_site)
        field.widget.choices = field.choices  # a replaced widget does not get the field's choices itself

    def clean(self):
        cleaned = super().clean()
        picked = cleaned.get("people") or cleaned.get("devices")
        if not (cleaned.get("names") or "").strip() and not picked:
            raise forms.ValidationError("Paste at least one name or pick at least one member.")
        return cleaned

    def lines(self) -> list[str]:
        return (self.cleaned_data.get("names") or "").splitlines()


class EnrolmentCodeForm(forms.ModelForm):
    """The fields an admin sets; the code itself is generated on save and shown once."""

    class Meta:
        model = EnrolmentCode
        fields = ["label", "max_uses", "expires_at", "device_group"]
        help_texts = {
            "label": "Where or for what the code is used, e.g. 'ICT suite rollout'.",
            "max_uses": "How many devices may enrol with this code.",
            "expires_at": "After this time the code no longer works. Leave empty for no expiry.",
        }

    # A new code expires in a week unless the admin says otherwise: a code copied into a rollout
    # script or an email should not keep working for ever.
    DEFAULT_EXPIRY = timedelta(days=7)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.initial.setdefault("expires_at", timezone.localtime().replace(microsecond=0) + self.DEFAULT_EXPIRY)

    def clean_max_uses(self) -> int:
        max_uses = self.cleaned_data["max_uses"]
        if max_uses < 1:
            raise forms.ValidationError("A code must allow at least one use.")
        if self.instance.pk and max_uses < self.instance.uses:
            raise forms.ValidationError(f"The code has already been used {self.instance.uses} times.")
        return max_uses

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and not self.instance.pk and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at
