"""Writes for captures and recordings: ingestion from agents and the screenshot preview."""

import io
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from PIL import Image

from safeguard.captures.models import Capture, CaptureNote, CaptureStatus, Recording, screenshot_preview_path
from safeguard.captures.selectors import capture_get_for_device, keyword_find_for_capture
from safeguard.core.api import ApiError, field_error
from safeguard.groups.models import Device
from safeguard.groups.services import device_touch, person_get_or_create
from safeguard.policies.followups import capture_followup_open
from safeguard.policies.models import Keyword, KeywordPolicy

logger = logging.getLogger(__name__)

# The console's capture list shows screenshots at about this width; the full image opens on demand.
PREVIEW_WIDTH = 480
PREVIEW_QUALITY = 75


def _delete_quietly(storage: Storage, name: str) -> None:
    if name:
        storage.delete(name)


def _capture_for_resend(*, existing: Capture, device: Device) -> tuple[Capture, bool]:
    """A resend of a capture this device already reported is harmless; another device's id is refused.

    The refusal is 409 with a neutral message: it says the id is taken, never whose capture it
    is or what it holds. (Capture ids are random UUIDs the agent makes, so a clash is a bug or a
    forgery, not something an honest agent can run into.)
    """
    if existing.device_id != device.pk:
        raise ApiError(
            "This capture id is already in use.",
            fields={"metadata.id": ["already in use"]},
            status_code=409,
        )
    return existing, False


def _policy_and_keyword(*, keyword_text: str, policy_uuid: uuid.UUID | None) -> tuple[KeywordPolicy, Keyword | None]:
    """The policy a capture belongs to: the one the agent names, else found from the keyword's text."""
    if policy_uuid is not None:
        policy = KeywordPolicy.objects.filter(uuid=policy_uuid).first()
        if policy is None:
            raise field_error("metadata.policy", "no such policy")
        # The keyword may have been edited or removed since the agent's config; the text is kept anyway.
        keyword = policy.keywords.filter(text__iexact=keyword_text.strip()).first()
        return policy, keyword
    keyword = keyword_find_for_capture(text=keyword_text)
    if keyword is None:
        raise field_error("metadata.keyword", "matches no enabled keyword (send `policy` to name its policy)")
    return keyword.policy, keyword


def capture_ingest(
    *, device: Device, metadata: Mapping[str, Any], screenshot: File, extension: str
) -> tuple[Capture, bool]:
    """Store a capture reported by `device`; returns (capture, created).

    `metadata` is validated (id, occurred_at, user, keyword, severity, context, application,
    window_title, url, policy?); `screenshot` is a checked image whose file extension is
    `extension`. A resend of a capture the device already reported returns it unchanged
    (created False) whatever screenshot came with it.

    Nothing half-written: the screenshot is written to storage inside the transaction and
    deleted again if anything fails before the commit, including the commit itself (e.g. two
    copies of one capture arriving at once: the loser's INSERT hits the unique uuid, its file is
    removed and it answers like a resend). The transaction is durable (never nested) so that no
    caller's later rollback can leave the file behind. The capture's follow-up row (its pending
    background work: preview, action rules, alerts) is written in the same transaction; the work is
    enqueued after the commit, and swept again if that enqueue did not happen.
    """
    existing = Capture.objects.filter(uuid=metadata["id"]).only("pk", "uuid", "device_id", "status").first()
    if existing is not None:
        return _capture_for_resend(existing=existing, device=device)
    policy, keyword = _policy_and_keyword(keyword_text=metadata["keyword"], policy_uuid=metadata.get("policy"))
    capture = Capture(
        uuid=metadata["id"],
        device=device,
        policy=policy,
        keyword=keyword,
        keyword_text=metadata["keyword"].strip(),
        severity=metadata["severity"],
        context=metadata.get("context", ""),
        application=metadata.get("application", ""),
        window_title=metadata.get("window_title", ""),
        url=metadata.get("url", ""),
        occurred_at=metadata["occurred_at"],
    )
    storage = Capture._meta.get_field("screenshot").storage
    try:
        with transaction.atomic(durable=True):
            capture.person = person_get_or_create(username=metadata["user"], seen_at=metadata["occurred_at"])
            capture.screenshot.save(f"screenshot.{extension}", screenshot, save=False)
            capture.save(force_insert=True)
            # The outbox row of the capture's background work, committed with the capture: if the
            # enqueue below never happens (Redis down, this process killed), the sweep does it.
            capture_followup_open(capture_id=capture.pk)
            device_touch(device=device)
            transaction.on_commit(partial(_dispatch_followups_quietly, capture), robust=True)
    except IntegrityError:
        _delete_quietly(storage, capture.screenshot.name)
        existing = Capture.objects.filter(uuid=metadata["id"]).only("pk", "uuid", "device_id", "status").first()
        if existing is None:
            raise
        return _capture_for_resend(existing=existing, device=device)
    except BaseException:
        _delete_quietly(storage, capture.screenshot.name)
        raise
    return capture, True


def _dispatch_followups_quietly(capture: Capture) -> None:
    try:
        capture_dispatch_followups(capture)
    except Exception:
        # The capture is stored and its follow-up row says "not dispatched": the sweep sends it. (Not
        # left to on_commit(robust=True): Django's log line there fails on a partial, raising into the request.)
        logger.exception("Could not dispatch the follow-ups of capture %s", capture.pk)


def capture_dispatch_followups(capture: Capture) -> None:
    """Enqueue the follow-up work of a newly stored capture: after its commit, and again from the sweep.

    One place for everything a new capture sets off in the background (preview, email alerts,
    action rules, ...): each entry is a task taking the capture's id. When the broker cannot be
    reached for one, the rest are not tried: each attempt costs the agent's request about a second,
    and the sweep dispatches them all again. Every task is idempotent (it claims its work with a unique row or a
    conditional update), so a redelivery or a second dispatch does nothing twice. The outcome is
    recorded on the capture's follow-up row (safeguard.policies.followups).
    """
    from safeguard.captures import tasks
    from safeguard.policies import tasks as policy_tasks
    from safeguard.policies.followups import capture_followups_record

    followups = [
        tasks.capture_make_preview,  # the console's preview of the screenshot
        tasks.action_rules_evaluate,  # safeguard.policies.actions: watch-group moves, staff notices
        policy_tasks.capture_alerts_send,  # safeguard.policies.alerts: email alerts and digests
    ]
    dispatched = True
    for task in followups:
        try:
            task.delay(capture.pk)
        except Exception as error:  # the broker is down: log it; the capture itself is safely stored
            dispatched = False
            logger.exception("Could not enqueue %s for capture %s", task.name, capture.pk)
            if isinstance(error, BrokerError):
                break  # (not for an error of a task run in-process, eagerly: the others still run)
    # Remembered either way: a beat task dispatches again what did not reach the broker.
    capture_followups_record(capture_id=capture.pk, dispatched=dispatched)


def capture_make_preview(*, capture_id: int) -> bool:
    """Make the capture's console preview (WebP, PREVIEW_WIDTH wide); True if this call made it.

    Idempotent: a capture that already has a preview (or no screenshot, or no longer exists) is
    left alone. Two runs at once both may render, but only the one whose conditional update
    finds the preview still empty keeps its file; the other deletes its own.
    """
    capture = (
        Capture.objects.filter(pk=capture_id)
        .only("pk", "uuid", "occurred_at", "screenshot", "screenshot_preview")
        .first()
    )
    if capture is None or capture.screenshot_preview or not capture.screenshot:
        return False
    with capture.screenshot.open("rb") as source, Image.open(source) as image:
        preview = image.convert("RGB")
    if preview.width > PREVIEW_WIDTH:
        height = max(1, round(preview.height * PREVIEW_WIDTH / preview.width))
        preview = preview.resize((PREVIEW_WIDTH, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    preview.save(buffer, "WEBP", quality=PREVIEW_QUALITY, method=4)
    storage = Capture._meta.get_field("screenshot_preview").storage
    name = storage.save(screenshot_preview_path(capture, "preview.webp"), ContentFile(buffer.getvalue()))
    try:
        claimed = Capture.objects.filter(pk=capture.pk, screenshot_preview="").update(
            screenshot_preview=name, updated_at=timezone.now()
        )
    except BaseException:
        storage.delete(name)
        raise
    if not claimed:
        storage.delete(name)
        return False
    return True


def recording_attach(
    *,
    device: Device,
    capture_uuid: uuid.UUID,
    upload: File,
    started_at: datetime | None = None,
    duration_seconds: float | None = None,
) -> tuple[Recording, bool]:
    """Attach the screen recording of a capture the device reported; returns (recording, created).

    Unknown captures and other devices' captures are 404 alike. A capture has at most one
    recording (one-to-one), so a resend returns the stored one and stores nothing. The file is
    written inside a durable transaction and removed if the row is not committed, as for captures.
    """
    capture = capture_get_for_device(device=device, capture_uuid=capture_uuid)
    existing = Recording.objects.filter(capture=capture).first()
    if existing is not None:
        return existing, False
    recording = Recording(
        capture=capture,
        device=device,
        person=capture.person,
        # The agent starts recording when the keyword matches.
        started_at=started_at or capture.occurred_at,
        duration_seconds=duration_seconds,
        size_bytes=upload.size or 0,
        visibility=Recording.Visibility.PUBLIC,
    )
    storage = Recording._meta.get_field("file").storage
    try:
        with transaction.atomic(durable=True):
            recording.file.save("recording.mp4", upload, save=False)
            recording.save(force_insert=True)
            device_touch(device=device)
    except IntegrityError:
        _delete_quietly(storage, recording.file.name)
        existing = Recording.objects.filter(capture=capture).first()
        if existing is None:
            raise
        return existing, False
    except BaseException:
        _delete_quietly(storage, recording.file.name)
        raise
    return recording, True


# --- The review workflow: status, assignee, notes --------------------------------------------------
#
# Transitions: a capture starts New; staff may move it to any other status (Under review, Escalated,
# either Resolved) and between those freely, e.g. reopen a resolved capture as Escalated when new
# facts arrive. Nothing goes back to New: New means "nobody has looked yet", and the first change
# away from it is the "first review" time Insight measures (read from the audit row, nothing
# extra is stored). Setting the status a capture already has changes nothing and writes no row.
#
# Every write locks the capture row, re-checks that the actor may manage it (the view has already
# answered 404 otherwise; this keeps the rule true for any other caller), changes it and appends
# the audit row (who, before → after) in one transaction: both happen or neither does.

NOTE_MAX_LENGTH = 5000


def _capture_locked_for_manager(*, capture: Capture, actor) -> Capture:
    from safeguard.core import access

    scoped = access.scope_by_person_or_device(Capture.objects.filter(pk=capture.pk), actor, "manage_captures")
    locked = scoped.select_for_update(of=("self",)).select_related("person", "assignee").first()
    if locked is None:
        raise PermissionDenied("You cannot manage this capture.")
    return locked


def _status_label(value: str) -> str:
    return CaptureStatus(value).label


def capture_set_status(*, capture: Capture, status: str, actor) -> bool:
    """Move the capture to `status` (never back to New); True if it changed. Audited "capture.status_changed"."""
    from safeguard.logs.services import audit_record

    if status not in CaptureStatus.values:
        raise ValidationError({"status": "Choose a valid status."})
    if status == CaptureStatus.NEW:
        raise ValidationError({"status": "A capture cannot go back to New once it has been reviewed."})
    with transaction.atomic():
        locked = _capture_locked_for_manager(capture=capture, actor=actor)
        before = locked.status
        if before == status:
            return False
        now = timezone.now()
        Capture.objects.filter(pk=locked.pk).update(status=status, updated_at=now)
        audit_record(
            action="capture.status_changed",
            target=locked,
            actor=actor,
            summary=f"Status changed from {_status_label(before)} to {_status_label(status)}",
            before={"status": before},
            after={"status": status},
        )
    capture.status = status
    capture.updated_at = now
    return True


def capture_assign(*, capture: Capture, assignee, actor) -> bool:
    """Give the capture to `assignee` (a staff member who can manage it), or to nobody with None.

    True if the assignee changed. Audited "capture.assigned" with the usernames before → after.
    """
    from safeguard.core import access
    from safeguard.logs.services import audit_record

    if assignee is not None:
        allowed = access.staff_with_right_over(person=capture.person, device=capture.device, right="manage_captures")
        if not allowed.filter(pk=assignee.pk).exists():
            raise ValidationError({"assignee": "Choose a member of staff who can manage this capture."})
    with transaction.atomic():
        locked = _capture_locked_for_manager(capture=capture, actor=actor)
        previous = locked.assignee
        if (previous.pk if previous else None) == (assignee.pk if assignee else None):
            return False
        now = timezone.now()
        Capture.objects.filter(pk=locked.pk).update(assignee=assignee, updated_at=now)
        before_name = previous.get_username() if previous else None
        after_name = assignee.get_username() if assignee else None
        audit_record(
            action="capture.assigned",
            target=locked,
            actor=actor,
            summary=f"Assigned to {after_name}" if after_name else f"Unassigned (was {before_name})",
            before={"assignee": before_name},
            after={"assignee": after_name},
        )
    capture.assignee = assignee
    capture.updated_at = now
    return True


def capture_add_note(*, capture: Capture, author, text: str) -> CaptureNote:
    """Add a note to the capture. Audited "capture.note_added" with the note's text."""
    from safeguard.logs.services import audit_record

    # NUL cannot be stored in PostgreSQL text; nobody types one on purpose.
    text = (text or "").replace("\x00", "").strip()
    if not text:
        raise ValidationError({"text": "Write the note first."})
    if len(text) > NOTE_MAX_LENGTH:
        raise ValidationError({"text": f"Keep a note under {NOTE_MAX_LENGTH} characters."})
    with transaction.atomic():
        locked = _capture_locked_for_manager(capture=capture, actor=author)
        note = CaptureNote.objects.create(capture=locked, author=author, text=text)
        audit_record(
            action="capture.note_added",
            target=locked,
            actor=author,
            summary=f"Note added to the capture of '{locked.keyword_text}' by {locked.person}",
            after={"text": text},
        )
    return note


def capture_move_person_to_group(*, capture: Capture, group, actor) -> bool:
    """The capture's "move person to group" action: the person joins `group` (see person_move_to_group).

    The actor must manage the capture and see the group with the manage right. Besides the
    person's own audit row, the capture's history gets "capture.person_moved", so whoever reads
    the capture later sees what was done about it. True if the person was not in the group yet.
    """
    from safeguard.core import access
    from safeguard.groups.services import person_move_to_group
    from safeguard.logs.services import audit_record

    if group.pk not in access.visible_group_ids(actor, "manage_captures") and group.owner_id != actor.pk:
        raise ValidationError({"group": "Choose a group you can see."})
    with transaction.atomic():
        locked = _capture_locked_for_manager(capture=capture, actor=actor)
        moved = person_move_to_group(
            person=locked.person, group=group, moved_by=actor, reason=f"capture of '{locked.keyword_text}'"
        )
        audit_record(
            action="capture.person_moved",
            target=locked,
            actor=actor,
            summary=f"Moved {locked.person} to {group}" if moved else f"{locked.person} was already in {group}",
            after={"group": str(group.uuid), "group_name": group.name, "moved": moved},
        )
    return moved


def recording_store_on_demand(
    *,
    device: Device,
    command_uuid: uuid.UUID,
    upload: File,
    started_at: datetime | None = None,
    duration_seconds: float | None = None,
) -> tuple[Recording, bool]:
    """Store the recording a device made for a staff member's `record_screen` command; (recording, created).

    The command must be a record-screen command sent to this device (else 404 naming
    `command_id`, whether it is unknown or another device's). The recording takes the command's
    UUID as its own, so a resend (the agent retries until it hears 2xx) finds it and stores
    nothing: at most one recording per command. Its owner is the staff member who asked; it is
    private to them when the command's params say `"private": true`, else visible to staff who
    may see the device's recordings. The person is the device's current user.
    """
    from safeguard.groups.models import CommandType, DeviceCommand

    command = (
        DeviceCommand.objects.filter(uuid=command_uuid, device=device, type=CommandType.RECORD_SCREEN)
        .only("pk", "uuid", "params", "requested_by_id", "delivered_at")
        .first()
    )
    if command is None:
        raise ApiError(
            "No record-screen command with this id was sent to this device.",
            fields={"command_id": ["unknown command"]},
            status_code=404,
        )
    existing = Recording.objects.filter(uuid=command.uuid).first()
    if existing is not None:
        return existing, False
    person_id = Device.objects.filter(pk=device.pk).values_list("current_person_id", flat=True).first()
    private = bool((command.params or {}).get("private"))
    recording = Recording(
        uuid=command.uuid,
        capture=None,
        device=device,
        person_id=person_id,
        started_at=started_at or command.delivered_at or timezone.now(),
        duration_seconds=duration_seconds,
        size_bytes=upload.size or 0,
        visibility=Recording.Visibility.PRIVATE if private else Recording.Visibility.PUBLIC,
        owner_id=command.requested_by_id,
    )
    storage = Recording._meta.get_field("file").storage
    try:
        with transaction.atomic(durable=True):
            recording.file.save("recording.mp4", upload, save=False)
            recording.save(force_insert=True)
            device_touch(device=device)
    except IntegrityError:
        _delete_quietly(storage, recording.file.name)
        existing = Recording.objects.filter(uuid=command.uuid).first()
        if existing is None:
            raise
        return existing, False
    except BaseException:
        _delete_quietly(storage, recording.file.name)
        raise
    return recording, True
