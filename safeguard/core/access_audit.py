"""Audit rows for access changes: what a staff account may see and do.

Access is held in several places that the admin edits through several pages: StaffAccess rows
(the user's page, the group's page, the staff-access list), a user's admin flags (active, staff,
superuser), their Django groups and permissions, a Django group's permissions, and their
two-factor device. Model signals catch every one of those edits in one place, whichever page or
inline made it, and write one audit row each, with before and after.

A signal has no request, so the actor is the staff member whose request is running, set by
AuditActorMiddleware through `acting_as`. Changes made with no one acting (migrations, the demo
seed, test factories, a management command that does not call `acting_as`) are not recorded
here: they are not a person's decision about access.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

_actor: ContextVar[Any] = ContextVar("safeguard_audit_actor", default=None)

USER_FLAGS = ("is_active", "is_staff", "is_superuser")
ACCESS_RIGHTS = ("can_view_captures", "can_manage_captures", "can_view_recordings", "is_confide_viewer")


@contextmanager
def acting_as(user) -> Iterator[None]:
    """Within the block, access changes are audited as made by `user` (None: not audited)."""
    token = _actor.set(user)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor():
    return _actor.get()


def _record(*, action: str, target_type: str, target_id: str, summary: str, before=None, after=None) -> None:
    actor = current_actor()
    if actor is None:
        return
    from safeguard.logs.services import audit_record

    audit_record(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        summary=summary,
        before=before,
        after=after,
    )


def _rights(row) -> dict[str, bool]:
    return {name: getattr(row, name) for name in ACCESS_RIGHTS}


# --- StaffAccess: which groups a staff member sees, with which rights ------------------------------


def _staff_access_before(sender, instance, **kwargs) -> None:
    instance._audit_before = None
    if instance.pk:
        previous = sender.objects.filter(pk=instance.pk).select_related("user", "group").first()
        if previous is not None:
            instance._audit_before = {
                "user": previous.user.get_username(),
                "group": str(previous.group),
                **_rights(previous),
            }


def _staff_access_saved(sender, instance, created, **kwargs) -> None:
    after = {"user": instance.user.get_username(), "group": str(instance.group), **_rights(instance)}
    before = getattr(instance, "_audit_before", None)
    if not created and before == after:
        return
    granted = ", ".join(name for name in ACCESS_RIGHTS if after[name]) or "no rights"
    _record(
        action="access.granted" if created else "access.changed",
        target_type="user",
        target_id=str(instance.user_id),
        summary=f"{'Gave' if created else 'Changed'} {after['user']} access to {after['group']} ({granted})",
        before=None if created else before,
        after=after,
    )


def _staff_access_deleted(sender, instance, **kwargs) -> None:
    user = get_user_model().objects.filter(pk=instance.user_id).first()
    username = user.get_username() if user else str(instance.user_id)
    group = sender._meta.get_field("group").related_model.objects.filter(pk=instance.group_id).first()
    before = {"user": username, "group": str(group) if group else str(instance.group_id), **_rights(instance)}
    _record(
        action="access.revoked",
        target_type="user",
        target_id=str(instance.user_id),
        summary=f"Removed {username}'s access to {before['group']}",
        before=before,
    )


# --- a user's admin flags, Django groups and permissions --------------------------------------------


def _user_before(sender, instance, update_fields=None, **kwargs) -> None:
    instance._audit_flags = None
    # A login saves last_login alone: no flag can change, so no query.
    if update_fields is not None and not set(update_fields) & set(USER_FLAGS):
        return
    if instance.pk:
        instance._audit_flags = sender.objects.filter(pk=instance.pk).values(*USER_FLAGS).first()


def _user_saved(sender, instance, created, **kwargs) -> None:
    after = {name: getattr(instance, name) for name in USER_FLAGS}
    before = getattr(instance, "_audit_flags", None)
    if created:
        if after["is_staff"] or after["is_superuser"]:
            _record(
                action="access.account_created",
                target_type="user",
                target_id=str(instance.pk),
                summary=f"Created the account {instance.get_username()}",
                after=after,
            )
        return
    if before is None or before == after:
        return
    changed = ", ".join(f"{name} {before[name]} → {after[name]}" for name in USER_FLAGS if before[name] != after[name])
    _record(
        action="access.account_changed",
        target_type="user",
        target_id=str(instance.pk),
        summary=f"Changed {instance.get_username()}: {changed}",
        before=before,
        after=after,
    )


def _user_deleted(sender, instance, **kwargs) -> None:
    _record(
        action="access.account_deleted",
        target_type="user",
        target_id=str(instance.pk),
        summary=f"Deleted the account {instance.get_username()}",
        before={name: getattr(instance, name) for name in USER_FLAGS},
    )


def _names(model, pks) -> list[str]:
    if model is Permission:
        rows = Permission.objects.filter(pk__in=pks).select_related("content_type")
        return sorted(f"{row.content_type.app_label}.{row.codename}" for row in rows)
    return sorted(str(row) for row in model.objects.filter(pk__in=pks))


def _m2m_changed(what: str, target_type: str):
    """A handler for one many-to-many relation (a user's groups, a user's or a group's permissions)."""

    def handler(sender, instance, action, reverse, model, pk_set, **kwargs) -> None:
        if action not in ("post_add", "post_remove", "pre_clear") or reverse:
            return
        if action == "pre_clear":
            # Clearing is the admin's way of replacing the set: remember it, and audit what stays
            # out once the add that follows has run (or now, if nothing is added).
            pk_set = set(getattr(instance, what).values_list("pk", flat=True))
            if not pk_set:
                return
            action = "post_remove"
        if not pk_set:
            return
        names = _names(model, pk_set)
        added = action == "post_add"
        label = what.replace("_", " ")
        _record(
            action=f"access.{what}_{'added' if added else 'removed'}",
            target_type=target_type,
            target_id=str(instance.pk),
            summary=f"{'Added' if added else 'Removed'} {label} of {instance}: {', '.join(names)}",
            before=None if added else {what: names},
            after={what: names} if added else None,
        )

    return handler


_user_groups_changed = _m2m_changed("groups", "user")
_user_permissions_changed = _m2m_changed("user_permissions", "user")
_group_permissions_changed = _m2m_changed("permissions", "auth_group")


# --- two-factor devices ----------------------------------------------------------------------------


def _otp_device_deleted(sender, instance, **kwargs) -> None:
    if not instance.confirmed:
        return
    _record(
        action="two_factor.removed",
        target_type="user",
        target_id=str(instance.user_id),
        summary=f"Removed the two-factor device '{instance.name}' of {instance.user}",
    )


def connect() -> None:
    """Connect the handlers (from CoreConfig.ready)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from safeguard.groups.models import StaffAccess

    user_model = get_user_model()
    pre_save.connect(_staff_access_before, sender=StaffAccess, dispatch_uid="audit_staff_access_before")
    post_save.connect(_staff_access_saved, sender=StaffAccess, dispatch_uid="audit_staff_access_saved")
    post_delete.connect(_staff_access_deleted, sender=StaffAccess, dispatch_uid="audit_staff_access_deleted")
    pre_save.connect(_user_before, sender=user_model, dispatch_uid="audit_user_before")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="audit_user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid="audit_user_deleted")
    m2m_changed.connect(_user_groups_changed, sender=user_model.groups.through, dispatch_uid="audit_user_groups")
    m2m_changed.connect(
        _user_permissions_changed, sender=user_model.user_permissions.through, dispatch_uid="audit_user_perms"
    )
    m2m_changed.connect(_group_permissions_changed, sender=Group.permissions.through, dispatch_uid="audit_group_perms")
    post_delete.connect(_otp_device_deleted, sender=TOTPDevice, dispatch_uid="audit_otp_device_deleted")
