"""Admin forms for keyword policies, agent settings and rules."""

from django import forms
from django.contrib.auth.hashers import make_password
from django.forms.models import BaseInlineFormSet

from safeguard.groups.models import GroupKind
from safeguard.policies.models import ActionRule, AgentSettings, Keyword
from safeguard.policies.services import KEYWORD_CSV_MAX_BYTES


class KeywordForm(forms.ModelForm):
    class Meta:
        model = Keyword
        fields = ["text", "match_kind", "severity", "enabled"]

    def clean_text(self) -> str:
        text = self.cleaned_data["text"].strip()
        if not text:
            raise forms.ValidationError("Enter the keyword.")
        if any(ord(ch) < 32 for ch in text):
            raise forms.ValidationError("A keyword cannot contain line breaks or control characters.")
        return text


class KeywordFormSet(BaseInlineFormSet):
    """Keywords are unique in a policy regardless of case; the database would refuse a clash with a 500."""

    def clean(self) -> None:
        super().clean()
        seen: dict[str, str] = {}
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data or self._should_delete_form(form):
                continue
            text = form.cleaned_data.get("text")
            if not text:
                continue
            if text.lower() in seen:
                form.add_error("text", f"“{text}” is in this policy twice (as “{seen[text.lower()]}”).")
            else:
                seen[text.lower()] = text


class KeywordImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text=(
            "Columns text, match_kind, severity, enabled (a header row first; only text is required). "
            f"UTF-8, at most {KEYWORD_CSV_MAX_BYTES // 1024} KiB. Keywords already in the policy are updated, "
            "new ones added, and keywords missing from the file are left as they are."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )


class AgentSettingsForm(forms.ModelForm):
    """The disable PIN is typed here and stored only as a password hash, never shown back."""

    new_pin = forms.RegexField(
        regex=r"^\d{4,12}$",
        required=False,
        label="New disable PIN",
        help_text="4 to 12 digits. Staff type it on a device to pause monitoring. Leave empty to keep the current PIN.",
        error_messages={"invalid": "The PIN must be 4 to 12 digits."},
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "inputmode": "numeric"}),
    )
    clear_pin = forms.BooleanField(
        required=False, label="Remove the disable PIN", help_text="Monitoring can then not be paused on devices."
    )

    class Meta:
        model = AgentSettings
        fields = [
            "thumbnail_interval_seconds",
            "heartbeat_interval_seconds",
            "config_refresh_seconds",
            "recording_seconds",
            "confide_desktop_button",
        ]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("new_pin") and cleaned.get("clear_pin"):
            raise forms.ValidationError("Either set a new PIN or remove it, not both.")
        for name in ("thumbnail_interval_seconds", "heartbeat_interval_seconds", "config_refresh_seconds"):
            if cleaned.get(name) == 0:
                self.add_error(name, "Must be at least 1 second.")
        return cleaned

    def save(self, commit: bool = True) -> AgentSettings:
        settings_row = super().save(commit=False)
        if self.cleaned_data.get("new_pin"):
            settings_row.disable_pin_hash = make_password(self.cleaned_data["new_pin"])
        elif self.cleaned_data.get("clear_pin"):
            settings_row.disable_pin_hash = ""
        if commit:
            settings_row.save()
        return settings_row


class ActionRuleForm(forms.ModelForm):
    class Meta:
        model = ActionRule
        fields = [
            "name",
            "group",
            "min_severity",
            "threshold",
            "within_days",
            "move_to_group",
            "notify_staff",
            "enabled",
        ]

    def clean(self):
        cleaned = super().clean()
        group, move_to = cleaned.get("group"), cleaned.get("move_to_group")
        if group is not None and group.kind != GroupKind.USER:
            self.add_error("group", "An action rule watches people: choose a user group.")
        if move_to is not None and group is not None and move_to.pk == group.pk:
            self.add_error("move_to_group", "Moving people into the group they are already in does nothing.")
        if move_to is None and not cleaned.get("notify_staff"):
            raise forms.ValidationError("Choose a group to move people to, or notify staff (or both).")
        if cleaned.get("within_days") == 0:
            self.add_error("within_days", "Leave empty for all time, or enter at least 1 day.")
        return cleaned
