"""The admin site's titles, and the two-factor devices. Each app registers its own models in its admin.py."""

from django.contrib import admin
from django_otp.plugins.otp_totp.models import TOTPDevice

from safeguard.core import access

admin.site.site_header = "Safeguard administration"
admin.site.site_title = "Safeguard administration"
admin.site.index_title = "Configuration"


# Two-factor devices (safeguard.core.twofactor). django-otp's own admin lets an admin type in a
# key or read a device's key and QR code, which would let whoever administers the server log in
# as anyone whose password they learn. Here a device can only be seen and deleted: deleting is
# the reset for a lost phone (audited, safeguard.core.access_audit), and the owner sets up the new
# one themselves at their next login.
admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class TwoFactorDeviceAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    search_fields = ["user__username", "user__email", "user__first_name", "user__last_name"]
    list_select_related = ["user"]
    fields = ["user", "name", "confirmed", "created_at", "last_used_at", "throttling_failure_count"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class GroupScopedAdminMixin:
    """Rows with `person` and `device` (captures, activity events) shown in the admin only as the
    access rule shows them in the console (safeguard.core.access): a staff account given Django's
    view permission sees the rows of its groups, not the whole school. Superusers see everything.
    A row outside scope is "not found" (the admin's redirect to its index)."""

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if request.user.is_superuser:
            return rows
        return access.scope_by_person_or_device(rows, request.user)
