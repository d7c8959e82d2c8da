"""Django admin for people, devices, groups, enrolment codes and staff access.

Actions here call the services in safeguard.groups.services; secrets (device tokens, enrolment
codes) are shown once in a message after they are made and never again: only hashes are stored.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from safeguard.groups.forms import EnrolmentCodeForm, GroupBulkAddForm, MembershipForm, MonitoringGroupForm
from safeguard.groups.models import (
    Device,
    DeviceCommand,
    DeviceToken,
    EnrolmentCode,
    GroupKind,
    Membership,
    MonitoringGroup,
    Person,
    StaffAccess,
)
from safeguard.groups.services import (
    device_revoke,
    device_token_rotate,
    enrolment_code_create,
    enrolment_code_revoke,
    membership_bulk_add,
)
from safeguard.logs.services import audit_record

User = get_user_model()

# How many ancestors the group list loads with one join; deeper trees cost a query per extra level.
_PATH_DEPTH = 4


def group_path(group: MonitoringGroup) -> str:
    """'Whole school › Year 9 › 9A': the group's place in the tree (guards against a cycle)."""
    names, seen, node = [], set(), group
    while node is not None and node.pk not in seen:
        seen.add(node.pk)
        names.append(node.name)
        node = node.parent
    return " › ".join(reversed(names))


def save_formset_recording_adder(request: HttpRequest, formset) -> None:
    """Save an inline formset, recording the admin as `added_by` on each new membership."""
    for instance in formset.save(commit=False):
        if isinstance(instance, Membership) and instance.pk is None:
            instance.added_by = request.user
        instance.save()
    for deleted in formset.deleted_objects:
        deleted.delete()
    formset.save_m2m()


class IsSetFilter(admin.SimpleListFilter):
    """A yes/no filter on whether a nullable field is set; subclasses name the field and the two choices."""

    field = ""
    set_label = ""
    unset_label = ""

    def lookups(self, request, model_admin):
        return [("yes", self.set_label), ("no", self.unset_label)]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(**{f"{self.field}__isnull": self.value() == "no"})
        return queryset


class RevokedFilter(IsSetFilter):
    title = parameter_name = "revoked"
    field = "revoked_at"
    set_label, unset_label = "Revoked", "Active"


class PersonalGroupFilter(IsSetFilter):
    title = parameter_name = "personal"
    field = "owner"
    set_label, unset_label = "Personal groups", "School groups"


class MemberOfGroupFilter(admin.SimpleListFilter):
    """People or devices directly in one group; the choices are groups of the listed kind."""

    title = "group"
    parameter_name = "group"
    kind = GroupKind.USER
    member_field = "memberships__group"

    def lookups(self, request, model_admin):
        groups = MonitoringGroup.objects.filter(kind=self.kind).select_related("__".join(["parent"] * _PATH_DEPTH))
        return sorted(((str(group.pk), group_path(group)) for group in groups), key=lambda item: item[1].lower())

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.member_field: self.value()}).distinct()
        return queryset


class DeviceGroupFilter(MemberOfGroupFilter):
    kind = GroupKind.DEVICE


class MembershipInline(admin.TabularInline):
    """The group's members. A user group shows people, a device group devices."""

    model = Membership
    form = MembershipForm
    fk_name = "group"
    extra = 0
    autocomplete_fields = ["person", "device"]
    readonly_fields = ["added_by", "created_at"]
    verbose_name_plural = "members"

    def get_fields(self, request, obj=None):
        if obj is not None and obj.kind == GroupKind.USER:
            return ["person", "added_by", "created_at"]
        if obj is not None and obj.kind == GroupKind.DEVICE:
            return ["device", "added_by", "created_at"]
        return ["person", "device", "added_by", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("person", "device", "added_by")


class GroupStaffAccessInline(admin.TabularInline):
    model = StaffAccess
    fk_name = "group"
    extra = 0
    autocomplete_fields = ["user"]
    verbose_name_plural = "staff who may see this group"


@admin.register(MonitoringGroup)
class MonitoringGroupAdmin(admin.ModelAdmin):
    form = MonitoringGroupForm
    ordering = ["kind", "name"]  # Meta.ordering is dropped once the member count is annotated
    list_display = ["name", "tree_path", "kind", "is_watch_group", "personal_owner", "member_count"]
    list_filter = ["kind", "is_watch_group", PersonalGroupFilter]
    search_fields = ["name"]
    autocomplete_fields = ["parent", "owner"]
    readonly_fields = ["uuid", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "parent", "description"]}),
        ("Monitoring", {"fields": ["is_watch_group", "owner"]}),
        ("Record", {"fields": ["uuid", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    inlines = [MembershipInline, GroupStaffAccessInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("owner", "__".join(["parent"] * _PATH_DEPTH))
            .annotate(member_total=Count("memberships", distinct=True))
        )

    @admin.display(description="place in the tree")
    def tree_path(self, obj: MonitoringGroup) -> str:
        return group_path(obj)

    @admin.display(description="personal group of", ordering="owner__username")
    def personal_owner(self, obj: MonitoringGroup) -> str:
        return obj.owner.get_username() if obj.owner_id else "—"

    @admin.display(description="members", ordering="member_total")
    def member_count(self, obj: MonitoringGroup) -> int:
        return obj.member_total

    def save_formset(self, request, form, formset, change):
        save_formset_recording_adder(request, formset)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/bulk-add/",
                self.admin_site.admin_view(self.bulk_add_view),
                name="{}_{}_bulk_add".format(*info),
            ),
            *super().get_urls(),
        ]

    def bulk_add_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Paste usernames or hostnames one per line, or pick members: all are added, or none."""
        group = self.get_object(request, unquote(object_id))
        if group is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, group):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else None
        form = GroupBulkAddForm(data, group=group, admin_site=self.admin_site)
        if request.method == "POST" and form.is_valid():
            lines = form.lines()
            try:
                result = membership_bulk_add(
                    group=group,
                    usernames=lines if group.kind == GroupKind.USER else (),
                    hostnames=lines if group.kind == GroupKind.DEVICE else (),
                    people=form.cleaned_data.get("people") or (),
                    devices=form.cleaned_data.get("devices") or (),
                    added_by=request.user,
                )
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            else:
                summary = f"{result.added} added, {result.already} already in the group"
                if group.kind == GroupKind.USER:
                    summary += f", {result.people_created} new people created"
                self.message_user(request, f"{group}: {summary}.", messages.SUCCESS)
                if result.added:
                    self.log_change(request, group, f"Bulk add: {summary}.")
                info = self.opts.app_label, self.opts.model_name
                return HttpResponseRedirect(reverse("admin:{}_{}_change".format(*info), args=[group.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Add members to {group}",
            "subtitle": None,
            "opts": self.opts,
            "original": group,
            "group": group,
            "form": form,
            "media": self.media + form.media,
            "has_view_permission": self.has_view_permission(request, group),
        }
        return TemplateResponse(request, "admin/groups/monitoringgroup/bulk_add.html", context)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ["group", "kind", "person", "device", "added_by", "created_at"]
    list_filter = ["group__kind"]
    search_fields = ["group__name", "person__username", "person__display_name", "device__hostname"]
    autocomplete_fields = ["group", "person", "device"]
    list_select_related = ["group", "person", "device", "added_by"]

    @admin.display(description="kind", ordering="group__kind")
    def kind(self, obj: Membership) -> str:
        return obj.group.get_kind_display()

    def save_model(self, request, obj, form, change):
        if not change:
            obj.added_by = request.user
        super().save_model(request, obj, form, change)


class PersonMembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    fk_name = "person"
    fields = ["group", "added_by", "created_at"]
    readonly_fields = ["added_by", "created_at"]
    autocomplete_fields = ["group"]
    extra = 0
    verbose_name_plural = "groups"


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["username", "display_name", "group_names", "staff_user", "last_seen_at"]
    list_filter = [MemberOfGroupFilter]
    search_fields = ["username", "display_name"]
    autocomplete_fields = ["staff_user"]
    readonly_fields = ["uuid", "first_seen_at", "last_seen_at"]
    fields = ["username", "display_name", "staff_user", "uuid", "first_seen_at", "last_seen_at"]
    inlines = [PersonMembershipInline]
    list_select_related = ["staff_user"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("memberships__group")

    @admin.display(description="groups")
    def group_names(self, obj: Person) -> str:
        return ", ".join(sorted(membership.group.name for membership in obj.memberships.all())) or "—"

    def save_formset(self, request, form, formset, change):
        save_formset_recording_adder(request, formset)


class DeviceTokenInline(admin.TabularInline):
    """When each token was issued, last used and revoked. The hash is never shown."""

    model = DeviceToken
    fields = ["created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "tokens"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DeviceMembershipInline(PersonMembershipInline):
    fk_name = "device"


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    """Devices appear by enrolling (so there is no add form); here they are revoked or given a new token."""

    list_display = ["hostname", "os", "agent_version", "last_seen_at", "revoked", "current_person"]
    list_filter = [RevokedFilter, DeviceGroupFilter, "os", "agent_version"]
    search_fields = ["hostname", "os", "current_person__username"]
    list_select_related = ["current_person"]
    # The live thumbnail is a picture of a pupil's screen: it is never linked from the admin.
    fields = [
        "hostname",
        "os",
        "agent_version",
        "uuid",
        "enrolled_at",
        "last_seen_at",
        "revoked_at",
        "current_person",
        "monitoring_paused_until",
    ]
    readonly_fields = [
        "os",
        "agent_version",
        "uuid",
        "enrolled_at",
        "last_seen_at",
        "revoked_at",
        "current_person",
        "monitoring_paused_until",
    ]
    inlines = [DeviceTokenInline, DeviceMembershipInline]
    actions = ["revoke_devices", "rotate_tokens"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="revoked", boolean=True, ordering="revoked_at")
    def revoked(self, obj: Device) -> bool:
        return obj.revoked_at is not None

    @admin.action(description="Revoke the selected devices (their agents stop reporting)", permissions=["change"])
    def revoke_devices(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = 0
        for device in queryset.filter(revoked_at__isnull=True):
            with transaction.atomic():
                device_revoke(device=device)
                audit_record(
                    actor=request.user,
                    action="device.revoked",
                    target=device,
                    summary=f"Revoked device {device.hostname}",
                )
            self.log_change(request, device, "Revoked the device and its tokens.")
            revoked += 1
        skipped = queryset.count() - revoked
        message = f"Revoked {revoked} device(s); their tokens no longer work."
        if skipped:
            message += f" {skipped} already revoked."
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Rotate the token of the selected devices (shown once)", permissions=["change"])
    def rotate_tokens(self, request: HttpRequest, queryset: QuerySet) -> None:
        for device in queryset:
            if device.revoked_at is not None:
                self.message_user(
                    request, f"{device.hostname} is revoked: enrol it again with a new code.", messages.ERROR
                )
                continue
            with transaction.atomic():
                token = device_token_rotate(device=device)
                audit_record(
                    actor=request.user,
                    action="device.token_rotated",
                    target=device,
                    summary=f"Rotated the token of {device.hostname}",
                )
            self.log_change(request, device, "Rotated the device token.")
            self.message_user(
                request,
                f"New token for {device.hostname}: {token} — copy it into the agent's configuration now. "
                "It is shown only this once; the old token has stopped working.",
                messages.WARNING,
            )


@admin.register(EnrolmentCode)
class EnrolmentCodeAdmin(admin.ModelAdmin):
    """Codes are generated on save and shown once; only their hash and first characters are kept."""

    form = EnrolmentCodeForm
    list_display = ["code", "label", "uses_of_max", "expires_at", "revoked", "device_group", "created_by", "created_at"]
    list_filter = [RevokedFilter, "device_group"]
    search_fields = ["label", "code_hint"]
    autocomplete_fields = ["device_group"]
    list_select_related = ["device_group", "created_by"]
    actions = ["revoke_codes"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["label", "max_uses", "expires_at", "device_group"]
        return ["code", "label", "uses", "max_uses", "expires_at", "device_group", "revoked_at", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["code", "uses", "revoked_at", "created_by"]

    @admin.display(description="code", ordering="code_hint")
    def code(self, obj: EnrolmentCode) -> str:
        return f"{obj.code_hint}-…"

    @admin.display(description="uses")
    def uses_of_max(self, obj: EnrolmentCode) -> str:
        return f"{obj.uses} / {obj.max_uses}"

    @admin.display(description="revoked", boolean=True, ordering="revoked_at")
    def revoked(self, obj: EnrolmentCode) -> bool:
        return obj.revoked_at is not None

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        with transaction.atomic():
            record, code = enrolment_code_create(
                label=obj.label,
                max_uses=obj.max_uses,
                expires_at=obj.expires_at,
                device_group=obj.device_group,
                created_by=request.user,
            )
            audit_record(
                actor=request.user,
                action="enrolment_code.created",
                target=record,
                summary=f"Created enrolment code {record.code_hint}… {record.label}".strip(),
            )
        # The admin goes on with `obj` (history, redirect), so it becomes the stored row.
        for field in EnrolmentCode._meta.concrete_fields:
            setattr(obj, field.attname, getattr(record, field.attname))
        obj._state.adding = False
        obj._state.db = record._state.db
        obj._plain_code = code

    def response_add(self, request, obj, post_url_continue=None):
        code = getattr(obj, "_plain_code", None)
        if code:
            self.message_user(
                request,
                format_html(
                    "Enrolment code: <strong><code>{}</code></strong> — copy it now. It is shown only this once: "
                    "Safeguard keeps only a hash of it.",
                    code,
                ),
                messages.WARNING,
            )
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Revoke the selected enrolment codes", permissions=["change"])
    def revoke_codes(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = 0
        for code in queryset:
            if enrolment_code_revoke(code=code, revoked_by=request.user):
                self.log_change(request, code, "Revoked the code.")
                revoked += 1
        self.message_user(request, f"Revoked {revoked} enrolment code(s).", messages.SUCCESS)


@admin.register(StaffAccess)
class StaffAccessAdmin(admin.ModelAdmin):
    list_display = [
        "user",
        "group",
        "can_view_captures",
        "can_manage_captures",
        "can_view_recordings",
        "is_confide_viewer",
    ]
    list_filter = ["group", "can_view_captures", "can_manage_captures", "can_view_recordings", "is_confide_viewer"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "user__email", "group__name"]
    autocomplete_fields = ["user", "group"]
    list_select_related = ["user", "group"]


@admin.register(DeviceCommand)
class DeviceCommandAdmin(admin.ModelAdmin):
    """What staff asked devices to do. Read-only: commands are made from the console."""

    list_display = ["type", "device", "requested_by", "created_at", "delivered_at"]
    list_filter = ["type", ("delivered_at", admin.EmptyFieldListFilter)]
    search_fields = ["device__hostname", "requested_by__username"]
    list_select_related = ["device", "requested_by"]
    fields = ["uuid", "type", "device", "params", "requested_by", "created_at", "delivered_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StaffAccessInline(admin.TabularInline):
    """Which groups this staff account may see, on the user's own page."""

    model = StaffAccess
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["group"]
    verbose_name_plural = "group access (what this staff member may see in the console)"


admin.site.unregister(User)


@admin.register(User)
class SafeguardUserAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, StaffAccessInline]
