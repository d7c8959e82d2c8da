"""Django admin for activity events and the audit log: both read-only.

Audit entries are evidence of who did what; no one, not even a superuser, may add, change or
delete one here (the model refuses changes too).
"""

from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html_join

from safeguard.core.admin import GroupScopedAdminMixin
from safeguard.logs.models import ActivityEvent, AuditEntry, RetentionSettings


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ActivityEvent)
class ActivityEventAdmin(GroupScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "type", "person", "device", "summary"]
    list_filter = ["type"]
    search_fields = ["person__username", "device__hostname"]
    date_hierarchy = "occurred_at"
    list_select_related = ["person", "device"]
    fields = ["uuid", "type", "occurred_at", "received_at", "person", "device", "details"]
    readonly_fields = fields

    @admin.display(description="details")
    def summary(self, obj: ActivityEvent) -> str:
        data = obj.data if isinstance(obj.data, dict) else {}
        text = " · ".join(str(value) for value in data.values() if value not in (None, ""))
        return text if len(text) <= 100 else text[:99] + "…"

    @admin.display(description="details")
    def details(self, obj: ActivityEvent):
        data = obj.data if isinstance(obj.data, dict) else {}
        return format_html_join("", "<div><strong>{}</strong>: {}</div>", sorted(data.items())) or "—"


class AuditExportForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (included)", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("start") and cleaned.get("end") and cleaned["start"] > cleaned["end"]:
            self.add_error("end", "The end is before the start.")
        return cleaned


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    change_list_template = "admin/logs/auditentry/change_list.html"
    list_display = ["created_at", "actor_name", "action", "target_type", "target_id", "summary"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor_name", "action", "target_id", "summary"]
    date_hierarchy = "created_at"
    fields = ["created_at", "actor", "actor_name", "action", "target_type", "target_id", "summary", "before", "after"]
    readonly_fields = fields

    def get_urls(self):
        export = path("export/", self.admin_site.admin_view(self.export_view), name="logs_auditentry_export")
        return [export, *super().get_urls()]

    def export_view(self, request):
        """Export for inspectors: the entries of a date range as CSV (safeguard.logs.audit_export)."""
        from django.core.exceptions import PermissionDenied
        from django.http import StreamingHttpResponse

        from safeguard.logs.audit_export import audit_export_csv

        if not self.has_view_permission(request):
            raise PermissionDenied
        form = AuditExportForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
            response = StreamingHttpResponse(
                audit_export_csv(actor=request.user, start=start, end=end), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = f'attachment; filename="safeguard-audit-{start}-to-{end}.csv"'
            return response
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Export the audit log for inspectors",
            "form": form,
        }
        return TemplateResponse(
            request, "admin/logs/auditentry/export.html", context, status=400 if form.errors else 200
        )


@admin.register(RetentionSettings)
class RetentionSettingsAdmin(admin.ModelAdmin):
    """The retention periods: one row, changed here; applied daily (safeguard.logs.retention).

    "Preview the next run" (the dry run) shows, per kind, how many rows and files the next run
    would remove; it deletes nothing.
    """

    change_form_template = "admin/logs/retentionsettings/change_form.html"
    list_display = ["__str__", "activity_events_days", "captures_resolved_days", "audit_log_days", "last_run_at"]
    readonly_fields = ["last_run_at", "last_run_report"]
    fieldsets = [
        ("Activity", {"fields": ["activity_events_days", "thumbnails_days"]}),
        (
            "Captures (open captures are never deleted)",
            {
                "fields": [
                    "captures_false_positive_days",
                    "captures_resolved_days",
                    "screenshots_days",
                    "recordings_days",
                ]
            },
        ),
        ("Confide (open reports are never deleted)", {"fields": ["confide_closed_days"]}),
        ("Audit log and exports", {"fields": ["audit_log_days", "export_files_days"]}),
        ("Last run", {"fields": ["last_run_at", "last_run_report"]}),
    ]

    def has_add_permission(self, request):
        return False  # the one row is made on first use (RetentionSettings.load)

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        RetentionSettings.load()  # so the list always shows the row to edit
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        dry_run = path("dry-run/", self.admin_site.admin_view(self.dry_run_view), name="logs_retentionsettings_dry_run")
        return [dry_run, *super().get_urls()]

    def dry_run_view(self, request):
        from django.core.exceptions import PermissionDenied

        from safeguard.logs.retention import retention_plan

        if not self.has_view_permission(request):
            raise PermissionDenied
        rules = RetentionSettings.load()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Retention: what the next run would remove",
            "rules": rules,
            "plans": retention_plan(rules=rules),
        }
        return TemplateResponse(request, "admin/logs/retentionsettings/dry_run.html", context)
