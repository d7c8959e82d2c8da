"""Admin forms for keyword policies, agent settings and rules."""

from django import forms
from django.contrib.auth.hashers import make_password
from django.core.validators import validate_email
from django.forms.models import BaseInlineFormSet

from safeguard.groups.models import GroupKind, MonitoringGroup
from safeguard.policies.models import ActionRule, AgentSettings, Keyword, KeywordExclusion, KeywordPolicy, Severity
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
    CSV, PLAIN = "csv", "plain"

    file = forms.FileField(
        label="File",
        help_text=(
            "CSV: columns text, match_kind, severity, enabled (a header row first; only text is required); "
            "keywords already in the policy are updated, new ones added. Plain list: one term per line, lines "
            "starting with # ignored; terms already in the policy are left as they are. Either way UTF-8, at "
            f"most {KEYWORD_CSV_MAX_BYTES // 1024} KiB, and keywords missing from the file are left as they are."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
    )
    list_format = forms.ChoiceField(
        label="Format",
        choices=[(CSV, "CSV with a header row"), (PLAIN, "Plain list, one term per line")],
        initial=CSV,
        required=False,
        help_text="Left out (a script posting the form): CSV, or a plain list for the illegal-content policy.",
    )
    severity = forms.ChoiceField(
        label="Severity of a plain list's terms",
        choices=Severity.choices,
        initial=Severity.HIGH,
        required=False,
        help_text="Plain lists only (CSV rows carry their own). Terms with a space become phrases.",
    )

    def __init__(self, *args, policy: KeywordPolicy | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if policy is not None and policy.is_illegal_content:
            # Licensed illegal-content lists come as bare terms; and every such term is severe.
            self.fields["list_format"].initial = self.PLAIN
            self.fields["severity"].initial = Severity.SEVERE

    def clean_list_format(self) -> str:
        return self.cleaned_data.get("list_format") or self.fields["list_format"].initial

    def clean_severity(self) -> str:
        return self.cleaned_data.get("severity") or Severity.HIGH


class KeywordExclusionForm(forms.ModelForm):
    """An exclusion names its group, its keyword and, always, why."""

    class Meta:
        model = KeywordExclusion
        fields = ["group", "keyword", "reason"]
        widgets = {"reason": forms.Textarea(attrs={"rows": 3})}

    def clean_reason(self) -> str:
        reason = (self.cleaned_data.get("reason") or "").strip()
        if not reason:
            raise forms.ValidationError("Give the reason this keyword is not monitored for the group.")
        return reason


class TextScanForm(forms.Form):
    """The admin's "test text against policies" page: what would match, and why (or why not)."""

    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "spellcheck": "false"}),
        max_length=20_000,
        strip=False,
        help_text="Nothing typed here is stored.",
    )
    policy = forms.ModelChoiceField(
        queryset=KeywordPolicy.objects.filter(enabled=True).order_by("name"),
        required=False,
        empty_label="Every enabled policy",
    )
    group = forms.ModelChoiceField(
        queryset=MonitoringGroup.objects.order_by("kind", "name"),
        required=False,
        empty_label="No group (ignore group settings and exclusions)",
        help_text="Scan with the policies this group's devices and members get, less its excluded keywords.",
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
            "offline_after_minutes",
            "offline_alert_addresses",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Left empty, the current value stays (forms posted before this setting existed still save).
        self.fields["offline_after_minutes"].required = False

    def clean_offline_after_minutes(self) -> int:
        value = self.cleaned_data.get("offline_after_minutes")
        return self.instance.offline_after_minutes if value is None else value

    def clean_offline_alert_addresses(self) -> str:
        lines = [line.strip() for line in self.cleaned_data.get("offline_alert_addresses", "").splitlines()]
        lines = [line for line in lines if line]
        invalid = []
        for line in lines:
            try:
                validate_email(line)
            except forms.ValidationError:
                invalid.append(line)
        if invalid:
            raise forms.ValidationError(f"Not an email address: {', '.join(invalid)}. Write one address per line.")
        return "\n".join(lines)

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
