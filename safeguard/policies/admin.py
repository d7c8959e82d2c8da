"""Django admin for keyword policies (with CSV import/export), agent settings and rules."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Case, Count, F, FloatField, Q, QuerySet, Value, When
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import slugify

from safeguard.captures.models import CaptureStatus
from safeguard.policies.forms import (
    ActionRuleForm,
    AgentSettingsForm,
    KeywordExclusionForm,
    KeywordForm,
    KeywordFormSet,
    KeywordImportForm,
    TextScanForm,
)
from safeguard.policies.models import (
    ActionRule,
    AgentSettings,
    AlertRule,
    EscalationContact,
    EscalationSettings,
    GroupPolicySetting,
    Keyword,
    KeywordExclusion,
    KeywordPolicy,
)
from safeguard.policies.selectors import keyword_engine_for_test
from safeguard.policies.services import (
    KeywordCsvError,
    KeywordExclusionError,
    illegal_term_masked,
    keyword_exclusion_create,
    keyword_exclusion_delete,
    keyword_export_csv,
    keyword_import_csv,
    keyword_import_plain_file,
)


def may_see_illegal_terms(request: HttpRequest) -> bool:
    """Only staff who may change keyword policies (and so import the licensed list) read its terms in full.

    Everyone else with admin access sees an illegal-content term as its first letter and length
    (`illegal_term_masked`), cannot open it, export it, find it by searching, or pick it in an
    autocomplete; the policy's keyword inline is hidden from them.
    """
    return request.user.has_perm("policies.change_keywordpolicy")


def with_capture_counts(queryset: QuerySet[Keyword]) -> QuerySet[Keyword]:
    """Per keyword: its captures, those resolved as a false positive, and that share (None without captures)."""
    queryset = queryset.annotate(
        capture_total=Count("captures", distinct=True),
        false_positive_total=Count(
            "captures", filter=Q(captures__status=CaptureStatus.RESOLVED_FALSE_POSITIVE), distinct=True
        ),
    )
    return queryset.annotate(
        false_positive_share=Case(
            When(capture_total=0, then=Value(None, output_field=FloatField())),
            default=Cast(F("false_positive_total"), FloatField()) / Cast(F("capture_total"), FloatField()),
            output_field=FloatField(),
        )
    )


class CaptureCountsMixin:
    """Sortable capture / false-positive columns for admins tuning a keyword."""

    @admin.display(description="captures", ordering="capture_total")
    def capture_count(self, obj: Keyword) -> int:
        return getattr(obj, "capture_total", 0)

    @admin.display(description="false positives", ordering="false_positive_total")
    def false_positive_count(self, obj: Keyword) -> int:
        return getattr(obj, "false_positive_total", 0)

    @admin.display(description="false-positive rate", ordering="false_positive_share")
    def false_positive_rate(self, obj: Keyword) -> str:
        share = getattr(obj, "false_positive_share", None)
        return "—" if share is None else f"{share:.0%}"


class KeywordInline(CaptureCountsMixin, admin.TabularInline):
    model = Keyword
    form = KeywordForm
    formset = KeywordFormSet
    fields = [
        "text",
        "match_kind",
        "severity",
        "enabled",
        "capture_count",
        "false_positive_count",
        "false_positive_rate",
    ]
    readonly_fields = ["capture_count", "false_positive_count", "false_positive_rate"]
    extra = 1

    def get_queryset(self, request):
        return with_capture_counts(super().get_queryset(request))

    def has_view_permission(self, request, obj=None):
        if obj is not None and obj.is_illegal_content and not may_see_illegal_terms(request):
            return False  # the licensed list is not shown to staff who may only view policies
        return super().has_view_permission(request, obj)


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
            path("test-text/", self.admin_site.admin_view(self.test_text_view), name="{}_{}_test_text".format(*info)),
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
        if policy.is_illegal_content and not may_see_illegal_terms(request):
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
        if request.method == "POST":
            form = KeywordImportForm(request.POST, request.FILES, policy=policy)
        else:
            form = KeywordImportForm(policy=policy)
        row_errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            plain = form.cleaned_data["list_format"] == KeywordImportForm.PLAIN
            try:
                if plain:
                    result = keyword_import_plain_file(
                        policy=policy,
                        file=form.cleaned_data["file"],
                        severity=form.cleaned_data["severity"],
                        imported_by=request.user,
                    )
                else:
                    result = keyword_import_csv(policy=policy, file=form.cleaned_data["file"], imported_by=request.user)
            except KeywordCsvError as exc:
                row_errors = [str(error) for error in exc.errors]
            else:
                summary = f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged"
                self.message_user(request, f"Keywords imported into {policy}: {summary}.", messages.SUCCESS)
                source = "a plain list" if plain else "CSV"
                self.log_change(request, policy, f"Imported keywords from {source}: {summary}.")
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

    def test_text_view(self, request: HttpRequest) -> HttpResponse:
        """Scan typed text with the policies as the agents would; show every match and every suppressed hit.

        Nothing is stored. POST, so the text stays out of URLs and server logs.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = TextScanForm(request.POST) if request.method == "POST" else TextScanForm()
        results = None
        if request.method == "POST" and form.is_valid():
            text = form.cleaned_data["text"]
            engine = keyword_engine_for_test(policy=form.cleaned_data["policy"], group=form.cleaned_data["group"])
            show_illegal = may_see_illegal_terms(request)
            rows = [_scan_row(text, match, show_illegal) for match in engine.scan(text, include_suppressed=True)]
            results = {
                "matches": [row for row in rows if not row["suppressed_by"]],
                "suppressed": [row for row in rows if row["suppressed_by"]],
                "keyword_count": engine.keyword_count,
            }
        context = {
            **self.admin_site.each_context(request),
            "title": "Test text against policies",
            "subtitle": None,
            "opts": self.opts,
            "form": form,
            "results": results,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/policies/keywordpolicy/test_text.html", context)


_CONTEXT_CHARS = 40


def _scan_row(text: str, match, show_illegal: bool) -> dict:
    """One match for the test page: the original span with some text either side (the template escapes all)."""
    hidden = match.illegal_content and not show_illegal
    before_start = max(0, match.start - _CONTEXT_CHARS)
    after_end = min(len(text), match.end + _CONTEXT_CHARS)
    return {
        "keyword": illegal_term_masked(text=match.keyword) if hidden else match.keyword,
        "policy": match.policy,
        "category": match.category,
        "severity": match.severity,
        "start": match.start,
        "end": match.end,
        "before": ("…" if before_start else "") + text[before_start : match.start],
        "matched": text[match.start : match.end],
        "after": text[match.end : after_end] + ("…" if after_end < len(text) else ""),
        "steps": list(match.steps) or ["exactly as written"],
        # The explanation names the keyword; for a hidden term the steps say how without saying what.
        "explanation": None if hidden else match.explanation,
        "suppressed_by": match.suppressed_by,
    }


@admin.register(Keyword)
class KeywordAdmin(CaptureCountsMixin, admin.ModelAdmin):
    """Every keyword with its captures and false positives, to find the ones that need tuning."""

    ordering = ["policy__name", "text"]
    list_display = [
        "text",
        "policy",
        "match_kind",
        "severity",
        "enabled",
        "capture_count",
        "false_positive_count",
        "false_positive_rate",
    ]
    list_filter = ["policy", "severity", "match_kind", "enabled", "source"]
    search_fields = ["text", "policy__name"]
    list_select_related = ["policy"]
    fields = [
        "policy",
        "text",
        "match_kind",
        "severity",
        "enabled",
        "join_spaced_letters",
        "requires_nearby",
        "nearby_window",
        "source",
    ]
    readonly_fields = ["source"]
    autocomplete_fields = ["policy"]

    def get_queryset(self, request):
        return with_capture_counts(super().get_queryset(request))

    def get_list_display(self, request):
        # A column callable sees only the row, so the viewer's right is baked into it per request.
        return [
            _keyword_column(may_see_illegal_terms(request), lambda keyword: keyword, "text"),
            *self.list_display[1:],
        ]

    def has_view_permission(self, request, obj=None):
        if obj is not None and obj.policy.is_illegal_content and not may_see_illegal_terms(request):
            return False
        return super().has_view_permission(request, obj)

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if not may_see_illegal_terms(request) and (search_term or _is_autocomplete(request)):
            # Searching or picking would confirm a term is on the licensed list, or list it in full.
            queryset = queryset.exclude(policy__is_illegal_content=True)
        return queryset, may_have_duplicates


def _keyword_column(show_illegal: bool, keyword_of, ordering: str):
    """A list column showing a keyword, masked when it is an illegal-content term the viewer may not read."""

    @admin.display(description="keyword", ordering=ordering)
    def column(obj) -> str:
        keyword = keyword_of(obj)
        if keyword.policy.is_illegal_content and not show_illegal:
            return illegal_term_masked(text=keyword.text, keyword_id=keyword.pk)
        return keyword.text

    return column


def _is_autocomplete(request: HttpRequest) -> bool:
    return getattr(request.resolver_match, "url_name", None) == "autocomplete"


@admin.register(KeywordExclusion)
class KeywordExclusionAdmin(admin.ModelAdmin):
    """A keyword switched off for one group, with the reason. Created and deleted only (both audited)."""

    form = KeywordExclusionForm
    list_display = ["keyword", "policy", "group", "reason", "created_by", "created_at"]
    list_filter = ["group", "keyword__policy", "group__kind", "created_at"]
    search_fields = ["group__name", "keyword__policy__name", "reason"]
    list_select_related = ["group", "keyword__policy", "created_by"]
    autocomplete_fields = ["group", "keyword"]
    readonly_fields = ["created_by", "created_at"]

    def get_fields(self, request, obj=None):
        return ["group", "keyword", "reason"] if obj is None else ["group", "keyword", "reason", *self.readonly_fields]

    def has_view_permission(self, request, obj=None):
        if obj is not None and obj.keyword.policy.is_illegal_content and not may_see_illegal_terms(request):
            return False
        return super().has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return False  # an exclusion is changed by deleting it and adding another, so the audit log tells all

    def get_list_display(self, request):
        column = _keyword_column(may_see_illegal_terms(request), lambda exclusion: exclusion.keyword, "keyword__text")
        return [column, *self.list_display[1:]]

    @admin.display(description="policy", ordering="keyword__policy__name")
    def policy(self, obj: KeywordExclusion) -> str:
        return obj.keyword.policy.name

    def save_model(self, request, obj, form, change):
        # Only adding reaches here (no change permission): the service writes the row and its audit entry.
        try:
            created = keyword_exclusion_create(
                group=obj.group, keyword=obj.keyword, reason=obj.reason, created_by=request.user
            )
        except KeywordExclusionError as exc:
            raise PermissionDenied(str(exc)) from exc
        obj.pk = created.pk
        obj.created_by = created.created_by
        obj.created_at = created.created_at

    def delete_model(self, request, obj):
        keyword_exclusion_delete(exclusion=obj, deleted_by=request.user)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for exclusion in queryset.select_related("group", "keyword__policy"):
                keyword_exclusion_delete(exclusion=exclusion, deleted_by=request.user)


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
        ("Offline devices", {"fields": ["offline_after_minutes", "offline_alert_addresses"]}),
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


class EscalationContactInline(admin.TabularInline):
    model = EscalationContact
    fields = ["order", "user"]
    autocomplete_fields = ["user"]
    extra = 1
    verbose_name_plural = "contacts, emailed one per round in this order"


@admin.register(EscalationSettings)
class EscalationSettingsAdmin(admin.ModelAdmin):
    """A group's escalation: severe captures nobody opens are emailed to the next contact (policies.escalation)."""

    list_display = ["group", "min_severity", "minutes", "max_rounds", "enabled"]
    list_filter = ["enabled", "min_severity"]
    search_fields = ["group__name"]
    autocomplete_fields = ["group"]
    list_select_related = ["group"]
    inlines = [EscalationContactInline]


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
