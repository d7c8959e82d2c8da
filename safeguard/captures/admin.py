"""Django admin for captures, their notes and recordings: read-mostly.

A capture's status, assignment and notes change in the console, through services that write the
audit trail; here they can only be looked at. Screenshots and recordings are pictures of a child's
screen: the admin never shows a link to the file, only whether there is one.
"""

from django.contrib import admin

from safeguard.captures.models import Capture, CaptureNote, Recording


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
class CaptureAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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
