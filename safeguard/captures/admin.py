"""Django admin for captures, their notes and recordings: read-mostly.

A capture's status, assignment and notes change in the console, through services that write the
audit trail; here they can only be looked at. Screenshots and recordings are pictures of a child's
screen: the admin never shows a link to the file, only whether there is one.
"""

from django.contrib import admin

from safeguard.captures.models import ActionRuleFiring, Capture, CaptureNote, ExportJob, Recording
from safeguard.core import access
from safeguard.core.admin import GroupScopedAdminMixin


class ReadOnlyAdminMixin:
    """Viewable by staff with the view permission; nobody adds, changes or deletes here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CaptureNoteInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CaptureNote
    fields = ["created_at", "author", "text"]
    readonly_fields = fields
    extra = 0


@admin.register(Capture)
class CaptureAdmin(GroupScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "person", "device", "keyword_text", "severity", "status", "policy"]
    list_filter = ["status", "severity", "policy"]
    search_fields = ["person__username", "person__display_name", "keyword_text"]
    date_hierarchy = "occurred_at"
    list_select_related = ["person", "device", "policy"]
    fieldsets = [
        (None, {"fields": ["uuid", "occurred_at", "received_at", "person", "device"]}),
        ("Match", {"fields": ["policy", "keyword_text", "severity", "context", "has_screenshot"]}),
        ("Where", {"fields": ["application", "window_title", "url"]}),
        ("Handling", {"fields": ["status", "assignee"]}),
    ]
    readonly_fields = [
        "uuid",
        "occurred_at",
        "received_at",
        "person",
        "device",
        "policy",
        "keyword_text",
        "severity",
        "context",
        "has_screenshot",
        "application",
        "window_title",
        "url",
        "status",
        "assignee",
    ]
    inlines = [CaptureNoteInline]

    @admin.display(description="screenshot", boolean=True)
    def has_screenshot(self, obj: Capture) -> bool:
        # Only whether it exists: the image is shown in the console, which checks group access.
        return bool(obj.screenshot)


@admin.register(CaptureNote)
class CaptureNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    def get_queryset(self, request):
        notes = super().get_queryset(request)
        if request.user.is_superuser:
            return notes
        # The notes of captures this account sees (safeguard.core.admin.GroupScopedAdminMixin).
        return notes.filter(capture__in=access.scope_by_person_or_device(Capture.objects.all(), request.user))

    list_display = ["created_at", "capture", "author", "excerpt"]
    search_fields = ["text", "capture__person__username", "author__username"]
    list_select_related = ["capture__person", "author"]
    fields = ["capture", "author", "created_at", "text"]
    readonly_fields = fields

    @admin.display(description="note")
    def excerpt(self, obj: CaptureNote) -> str:
        return obj.text if len(obj.text) <= 80 else obj.text[:79] + "…"


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin):
    """Recordings come from agents, so there is no add form; an admin may change who can watch one."""

    def get_queryset(self, request):
        recordings = super().get_queryset(request)
        if request.user.is_superuser:
            return recordings
        # The recordings this account could watch in the console, private ones included only for
        # their owner (access.visible_recordings).
        return recordings.filter(pk__in=access.visible_recordings(request.user).values("pk"))

    list_display = ["started_at", "device", "person", "duration_seconds", "size_bytes", "visibility", "owner"]
    list_filter = ["visibility"]
    search_fields = ["device__hostname", "person__username", "owner__username"]
    date_hierarchy = "started_at"
    list_select_related = ["device", "person", "owner"]
    autocomplete_fields = ["owner"]
    # `file` is left out on purpose: no link to the video from the admin.
    fields = [
        "uuid",
        "started_at",
        "device",
        "person",
        "capture",
        "duration_seconds",
        "size_bytes",
        "visibility",
        "owner",
    ]
    readonly_fields = ["uuid", "started_at", "device", "person", "capture", "duration_seconds", "size_bytes"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting the row would leave the video on disk; retention removes both together.
        return False


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """PDF exports staff asked for. The file is not linked here: only its requester downloads it, in the console."""

    list_display = ["created_at", "requested_by", "kind", "status", "progress", "capture_count", "finished_at"]
    list_filter = ["status", "kind"]
    search_fields = ["requested_by__username"]
    list_select_related = ["requested_by"]
    fields = [
        "uuid",
        "created_at",
        "requested_by",
        "kind",
        "params",
        "status",
        "progress",
        "capture_count",
        "size_bytes",
        "finished_at",
        "error",
    ]
    readonly_fields = fields


@admin.register(ActionRuleFiring)
class ActionRuleFiringAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """When each action rule fired for whom. Deleting a row re-arms the rule for that person."""

    list_display = ["created_at", "rule", "person", "capture_count", "moved_to_group", "notified_at"]
    list_filter = ["rule"]
    search_fields = ["person__username", "person__display_name", "rule__name"]
    list_select_related = ["rule", "person", "moved_to_group"]
    fields = ["created_at", "rule", "person", "capture", "capture_count", "moved_to_group", "notified_at"]
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        return super(ReadOnlyAdminMixin, self).has_delete_permission(request, obj)
