"""Console: a staff member's own email alerts, on their personal groups (/console/alerts/).

Admins set the school's alert rules in the Django admin. Here any staff member may add rules on
their OWN personal groups, emailing themselves only; the page also lists the school's rules that
email them. Every email still passes the access rule (safeguard.policies.alerts): a personal group
holding a pupil its owner may not see sends nothing about that pupil.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from safeguard.console.context import console_context
from safeguard.console.views import console_login_required
from safeguard.core import access
from safeguard.policies import alerts
from safeguard.policies.models import AlertRule, KeywordPolicy, Severity


class PersonalAlertRuleForm(forms.Form):
    name = forms.CharField(max_length=255, help_text="e.g. “My tutor group: high and severe”.")
    group = forms.ModelChoiceField(queryset=None, empty_label=None, help_text="One of your own groups.")
    policies = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked for every policy.",
    )
    min_severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.HIGH, label="At least")
    digest = forms.ChoiceField(choices=AlertRule.Digest.choices, initial=AlertRule.Digest.IMMEDIATE, label="Email me")

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = alerts.personal_groups_of(user=user)
        self.fields["policies"].queryset = KeywordPolicy.objects.filter(enabled=True).order_by("name")


def _page(request: HttpRequest, form: PersonalAlertRuleForm, status: int = 200) -> HttpResponse:
    user = request.user
    context = {
        **console_context(request, area="alerts"),
        "form": form,
        "own_rules": list(alerts.alert_rules_owned_by(user=user)),
        "school_rules": list(alerts.alert_rules_emailing(user=user)),
        "has_groups": form.fields["group"].queryset.exists(),
        "has_email": bool((user.email or "").strip()),
    }
    return render(request, "console/alerts.html", context, status=status)


@console_login_required
@require_http_methods(["GET", "POST"])
def alert_rules(request: HttpRequest) -> HttpResponse:
    """The staff member's alert rules, and a form to add one on a personal group."""
    if request.method == "GET":
        return _page(request, PersonalAlertRuleForm(user=request.user))
    form = PersonalAlertRuleForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        rule = alerts.alert_rule_create_personal(owner=request.user, **form.cleaned_data)
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, error)
        return _page(request, form, status=400)
    messages.success(request, f"Alert rule “{rule.name}” added: you will be emailed about {rule.group.name}.")
    return redirect("console:alerts")


@console_login_required
@require_POST
def alert_rule_delete(request: HttpRequest, rule_uuid) -> HttpResponse:
    """Delete one of the staff member's own rules (someone else's, or the school's, is 404)."""
    rule = access.get_or_404(AlertRule.objects.filter(owner=request.user), uuid=rule_uuid)
    alerts.alert_rule_delete_personal(owner=request.user, rule=rule)
    messages.success(request, f"Alert rule “{rule.name}” deleted.")
    return redirect("console:alerts")
