"""Django admin for keyword policies (with CSV import/export), agent settings and rules."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import slugify

from safeguard.policies.forms import ActionRuleForm, AgentSettingsForm, KeywordForm, KeywordFormSet, KeywordImportForm
from safeguard.policies.models import ActionRule, AgentSettings, AlertRule, GroupPolicySetting, Keyword, KeywordPolicy
from safeguard.policies.services import KeywordCsvError, keyword_export_csv, keyword_import_csv


class KeywordInline(admin.TabularInline):
    model = Keyword
    form = KeywordForm
    formset = KeywordFormSet
    fields = ["text", "match_kind", "severity", "enabled"]
    extra = 1


class PolicyGroupSettingInline(admin.TabularInline):
    model = GroupPolicySetting
    fields = ["group", "mode"]
    autocomplete_fields = ["group"]
    extra = 0
    verbose_name_plural = "groups this policy is applied to or excluded from"


@admin.register(KeywordPolicy)
class KeywordPolicyAdmin(admin.ModelAdmin):
    ordering = ["name"]  # Meta.ordering is dropped once the keyword count is annotated
    list_display = ["name", "category", "is_illegal_content", "enabled", "applies_to_everyone", "keyword_count"]
    list_filter = ["category", "is_illegal_content", "enabled", "applies_to_everyone"]
    search_fields = ["name", "keywords__text"]
    readonly_fields = ["uuid", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "category", "language", "description"]}),
        ("Monitoring", {"fields": ["enabled", "applies_to_everyone", "is_illegal_content"]}),
        ("Record", {"fields": ["uuid", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    inlines = [KeywordInline, PolicyGroupSettingInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(keyword_total=Count("keywords", distinct=True))

    @admin.display(description="keywords", ordering="keyword_total")
    def keyword_count(self, obj: KeywordPolicy) -> int:
        return obj.keyword_total

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/keywords/export/",
                self.admin_site.admin_view(self.export_keywords_view),
                name="{}_{}_export_keywords".format(*info),
            ),
            path(
                "<path:object_id>/keywords/import/",
                self.admin_site.admin_view(self.import_keywords_view),
                name="{}_{}_import_keywords".format(*info),
            ),
            *super().get_urls(),
        ]

    def _policy_or_404(self, request: HttpRequest, object_id: str) -> KeywordPolicy:
        policy = self.get_object(request, unquote(object_id))
        if policy is None:
            raise Http404("No such keyword policy.")
        return policy

    def export_keywords_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The policy's keywords as a CSV download (text,match_kind,severity,enabled)."""
        policy = self._policy_or_404(request, object_id)
        if not self.has_view_permission(request, policy):
            raise PermissionDenied
        # The byte-order mark makes Excel read the file as UTF-8; the importer ignores it.
        response = HttpResponse("\ufeff" + keyword_export_csv(policy=policy), content_type="text/csv; charset=utf-8")
        filename = f"{slugify(policy.name) or 'policy'}-keywords.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def import_keywords_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Upload a CSV of keywords: every row is checked, and either all are imported or none."""
        policy = self._policy_or_404(request, object_id)
        if not self.has_change_permission(request, policy):
            raise PermissionDenied
        form = KeywordImportForm(request.POST, request.FILES) if request.method == "POST" else KeywordImportForm()
        row_errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            try:
                result = keyword_import_csv(policy=policy, file=form.cleaned_data["file"], imported_by=request.user)
            except KeywordCsvError as exc:
                row_errors = [str(error) for error in exc.errors]
            else:
                summary = f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged"
                self.message_user(request, f"Keywords imported into {policy}: {summary}.", messages.SUCCESS)
                self.log_change(request, policy, f"Imported keywords from CSV: {summary}.")
                info = self.opts.app_label, self.opts.model_name
                return HttpResponseRedirect(reverse("admin:{}_{}_change".format(*info), args=[policy.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import keywords into {policy}",
            "subtitle": None,
            "opts": self.opts,
            "original": policy,
            "policy": policy,
            "form": form,
            "row_errors": row_errors,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/policies/keywordpolicy/import_keywords.html", context)


@admin.register(GroupPolicySetting)
class GroupPolicySettingAdmin(admin.ModelAdmin):
    list_display = ["group", "policy", "mode"]
    list_filter = ["mode", "group__kind", "policy"]
    search_fields = ["group__name", "policy__name"]
    autocomplete_fields = ["group", "policy"]
    list_select_related = ["group", "policy"]


@admin.register(AgentSettings)
class AgentSettingsAdmin(admin.ModelAdmin):
    """One row of settings for every agent: no second row, no deleting it; the list opens the row."""

    form = AgentSettingsForm
    fieldsets = [
        (
            "Agents",
            {
                "fields": [
                    "thumbnail_interval_seconds",
                    "heartbeat_interval_seconds",
                    "config_refresh_seconds",
                    "recording_seconds",
                ]
            },
        ),
        ("Confide", {"fields": ["confide_desktop_button"]}),
        ("Disable PIN", {"fields": ["pin_status", "new_pin", "clear_pin"]}),
    ]
    readonly_fields = ["pin_status"]

    @admin.display(description="current PIN")
    def pin_status(self, obj: AgentSettings) -> str:
        return "Set (stored as a hash)" if obj.disable_pin_hash else "Not set: monitoring cannot be paused"

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not AgentSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        row = AgentSettings.load()
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(reverse("admin:{}_{}_change".format(*info), args=[row.pk]))


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "group", "min_severity", "digest", "enabled", "owner"]
    list_filter = ["enabled", "digest", "min_severity"]
    search_fields = ["name", "group__name"]
    autocomplete_fields = ["group", "owner"]
    filter_horizontal = ["recipients", "policies"]
    list_select_related = ["group", "owner"]
    readonly_fields = ["uuid"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "recipients":
            kwargs["queryset"] = get_user_model().objects.filter(is_active=True).order_by("username")
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(ActionRule)
class ActionRuleAdmin(admin.ModelAdmin):
    form = ActionRuleForm
    list_display = [
        "name",
        "group",
        "min_severity",
        "threshold",
        "within_days",
        "move_to_group",
        "notify_staff",
        "enabled",
    ]
    list_filter = ["enabled", "min_severity", "notify_staff"]
    search_fields = ["name", "group__name"]
    autocomplete_fields = ["group", "move_to_group"]
    list_select_related = ["group", "move_to_group"]
