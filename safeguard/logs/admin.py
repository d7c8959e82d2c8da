"""Django admin for activity events and the audit log: both read-only.

Audit entries are evidence of who did what; no one, not even a superuser, may add, change or
delete one here (the model refuses changes too).
"""

from django.contrib import admin
from django.utils.html import format_html_join

from safeguard.logs.models import ActivityEvent, AuditEntry


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ActivityEvent)
class ActivityEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "actor_name", "action", "target_type", "target_id", "summary"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor_name", "action", "target_id", "summary"]
    date_hierarchy = "created_at"
    fields = ["created_at", "actor", "actor_name", "action", "target_type", "target_id", "summary", "before", "after"]
    readonly_fields = fields
