"""Writes for activity events and the audit log."""

from typing import Any

from django.db import models

from safeguard.logs.models import AuditEntry


def audit_record(
    *,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    actor=None,
    actor_name: str = "",
    summary: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one audit row: who (`actor`, or `actor_name` for a device or the system) did what.

    `target` names the object by its model name and public UUID (its pk when it has none);
    `target_type`/`target_id` name it explicitly instead. The actor's name is copied so the row
    still says who acted after the account is deleted. Rows are never changed afterwards.
    """
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or str(getattr(target, "uuid", None) or target.pk)
    if actor is not None and not actor_name:
        actor_name = actor.get_username()
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor_name[:255],
        action=action,
        target_type=target_type,
        target_id=target_id,
        summary=summary[:500],
        before=before,
        after=after,
    )
