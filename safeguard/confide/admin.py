"""Django admin for Confide reports, their notes and requests for assistance.

Who sent a report is never editable here, and an anonymous report shows "anonymous" wherever a
person or device would appear: there is nothing else to show, as none is stored.

The admin follows the console's access rule, not Django's model permissions alone: Confide reports
and their notes are for staff holding the Confide right (safeguard.confide.selectors), so an IT
account with "view Confide report" permission but no Confide right gets 403, and a Confide viewer
sees only the reports the console would show them. Requests for help are shown to staff who see
the pupil. Superusers see everything, as everywhere in the admin: a named report from a pupil
in no group would otherwise be found by nobody.
"""

from django.contrib import admin

from safeguard.confide import selectors
from safeguard.confide.models import AssistanceRequest, ConfideNote, ConfideReport
from safeguard.core import access

ANONYMOUS = "anonymous"


class ConfideRightRequired:
    """Every admin permission on these models also needs the Confide right (one rule: access.py)."""

    def _has_confide_right(self, request) -> bool:
        return request.user.is_superuser or access.has_right(request.user, "confide")

    def has_module_permission(self, request):
        return self._has_confide_right(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return self._has_confide_right(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return self._has_confide_right(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return self._has_confide_right(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._has_confide_right(request) and super().has_delete_permission(request, obj)


class ConfideNoteInline(ConfideRightRequired, admin.TabularInline):
    """Notes can be added; existing ones are shown as written."""

    model = ConfideNote
    fields = ["text", "author", "created_at"]
    readonly_fields = ["author", "created_at"]
    extra = 0

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConfideReport)
class ConfideReportAdmin(ConfideRightRequired, admin.ModelAdmin):
    list_display = ["reported_at", "reporter", "about", "status", "handler"]
    list_filter = ["status", "about", "is_anonymous"]
    search_fields = ["person__username", "person__display_name"]
    date_hierarchy = "reported_at"
    list_select_related = ["person", "handler"]
    autocomplete_fields = ["handler"]
    fieldsets = [
        ("Report", {"fields": ["uuid", "reported_at", "about", "reporter", "reporter_device", "message"]}),
        ("Handling", {"fields": ["status", "handler"]}),
    ]
    readonly_fields = ["uuid", "reported_at", "about", "reporter", "reporter_device", "message"]
    inlines = [ConfideNoteInline]

    def get_queryset(self, request):
        reports = super().get_queryset(request)
        if request.user.is_superuser:
            return reports
        # The reports this account could read in the console; another one is "not found".
        return reports.filter(pk__in=selectors.confide_report_list_for_staff(user=request.user).values("pk"))

    @admin.display(description="from")
    def reporter(self, obj: ConfideReport) -> str:
        if obj.is_anonymous:
            return ANONYMOUS
        return f"{obj.person} ({obj.person.username})" if obj.person_id else "—"

    @admin.display(description="device")
    def reporter_device(self, obj: ConfideReport) -> str:
        if obj.is_anonymous:
            return ANONYMOUS
        return obj.device.hostname if obj.device_id else "—"

    def has_add_permission(self, request):
        return False  # reports come from pupils' devices

    def has_delete_permission(self, request, obj=None):
        return False  # a safeguarding record

    def save_formset(self, request, form, formset, change):
        for note in formset.save(commit=False):
            if note.pk is None:
                note.author = request.user
            note.save()


@admin.register(ConfideNote)
class ConfideNoteAdmin(ConfideRightRequired, admin.ModelAdmin):
    list_display = ["created_at", "report", "author", "excerpt"]
    list_select_related = ["report", "author"]
    autocomplete_fields = ["report"]
    fields = ["report", "text", "author", "created_at"]
    readonly_fields = ["author", "created_at"]

    def get_queryset(self, request):
        notes = super().get_queryset(request)
        if request.user.is_superuser:
            return notes
        return notes.filter(report__in=selectors.confide_report_list_for_staff(user=request.user).values("pk"))

    @admin.display(description="note")
    def excerpt(self, obj: ConfideNote) -> str:
        return obj.text if len(obj.text) <= 80 else obj.text[:79] + "…"

    def has_change_permission(self, request, obj=None):
        return False  # a note, once written, stays as written

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if not change:
            obj.author = request.user
        super().save_model(request, obj, form, change)


@admin.register(AssistanceRequest)
class AssistanceRequestAdmin(admin.ModelAdmin):
    """Requests come from pupils' devices and are acknowledged in the console: read-only here."""

    list_display = ["requested_at", "person", "device", "acknowledged_at", "acknowledged_by"]
    list_filter = [("acknowledged_at", admin.EmptyFieldListFilter)]
    search_fields = ["person__username", "person__display_name", "device__hostname"]
    date_hierarchy = "requested_at"
    list_select_related = ["person", "device", "acknowledged_by"]
    fields = ["uuid", "requested_at", "person", "device", "message", "acknowledged_at", "acknowledged_by"]
    readonly_fields = fields

    def get_queryset(self, request):
        requests = super().get_queryset(request)
        if request.user.is_superuser:
            return requests
        # As in the console's notifications: requests from pupils this account sees.
        visible = selectors.assistance_request_open_for_staff(user=request.user, include_acknowledged=True)
        return requests.filter(pk__in=visible.values("pk"))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
