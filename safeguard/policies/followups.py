"""The follow-ups of a new capture reach the broker even when Redis (or the web process) fails as it arrives.

A transactional outbox: captures.services.capture_ingest writes a `CaptureFollowup` row with
`dispatched_at` empty in the same transaction as the capture (`capture_followup_open`), so a
stored capture always has its pending work recorded; there is no moment when the capture is
committed and the intent to alert is not. After the commit, capture_dispatch_followups enqueues
the capture's tasks (preview, action rules, email alerts) and records the outcome here
(`capture_followups_record`): `dispatched_at` set when every task reached the broker, still empty
when Redis refused one (the capture itself is stored either way, and the agent gets its 201).

What leaves a row undispatched: Redis down or unreachable, the web process killed between the
commit and the enqueue, or the database itself gone for the moment of the bookkeeping write. A
beat task (policies.tasks.capture_followups_redispatch, every minute) dispatches those again once
they are REDISPATCH_AFTER old; Celery beat itself only runs while Redis is up, so the first sweep
after Redis returns sends them.

The sweep also dispatches again a capture whose tasks Redis took and then lost (restarted without
its append-only file): dispatched, but its alert task never decided its emails
(`alerts_decided_at`) within `lost_after()`, at most MAX_DISPATCHES times in all.

Every follow-up task is idempotent (a unique claim row or a conditional update), so a capture
dispatched twice (the first attempt half got through, its bookkeeping write failed after the
enqueue, or its tasks were only late) still alerts once.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from safeguard.policies.models import CaptureFollowup

logger = logging.getLogger(__name__)

# An undispatched row is swept once it is this old, not at once: the request that stored the
# capture may still be enqueueing its tasks (after its commit), or the broker just said no.
REDISPATCH_AFTER = timedelta(minutes=1)
# Per sweep, so a long outage's backlog drains over a few minutes instead of one long task.
REDISPATCH_BATCH = 500
# A dispatched capture whose alert task has not decided its emails this long after lost its tasks
# (Redis restarted without them). Longer than Redis takes to hand a dead worker's task to another
# (the visibility timeout), so a task that is merely late is not sent again; the extra half hour
# is for a backlog in the queue.
LOST_AFTER_MARGIN = timedelta(minutes=30)
# A capture whose alert task fails every time (a bug, not an outage) is not dispatched for ever.
MAX_DISPATCHES = 5


def lost_after() -> timedelta:
    """How long after its dispatch a capture's undecided alerts count as lost."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    return timedelta(seconds=visibility) + LOST_AFTER_MARGIN


def capture_followup_open(*, capture_id: int, now: datetime | None = None) -> None:
    """Record that a new capture has background work to dispatch; call inside the capture's transaction."""
    CaptureFollowup.objects.create(capture_id=capture_id, created_at=now or timezone.now(), attempts=0)


def capture_followups_record(*, capture_id: int, dispatched: bool, now: datetime | None = None) -> None:
    """Remember whether the capture's follow-up tasks reached the broker (after a dispatch attempt).

    Never raises: it runs after the capture's commit, whose request must still answer 2xx. If this
    write fails (the database went away a moment after the commit), the row stays undispatched and
    the sweep sends the work again, which the idempotent tasks make harmless.
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            changes = {"attempts": F("attempts") + 1}
            if dispatched:
                changes["dispatched_at"] = now
            updated = CaptureFollowup.objects.filter(capture_id=capture_id).update(**changes)
            if not updated:
                # A capture stored before follow-ups were recorded at ingest (or by a script): keep
                # the record all the same, so an undispatched one is swept.
                CaptureFollowup.objects.create(
                    capture_id=capture_id, created_at=now, dispatched_at=now if dispatched else None, attempts=1
                )
    except DatabaseError:
        # The capture was deleted meanwhile (IntegrityError), or the database is unreachable.
        logger.warning("Could not record the follow-ups of capture %s", capture_id, exc_info=True)


def capture_followups_redispatch(*, now: datetime | None = None, batch: int = REDISPATCH_BATCH) -> int:
    """Dispatch again the follow-ups that did not reach the broker, or that Redis lost after taking
    them; returns how many captures were dispatched."""
    from safeguard.captures.models import Capture
    from safeguard.captures.services import capture_dispatch_followups

    now = now or timezone.now()
    capture_ids = list(
        CaptureFollowup.objects.filter(dispatched_at__isnull=True, created_at__lte=now - REDISPATCH_AFTER)
        .order_by("created_at")
        .values_list("capture_id", flat=True)[:batch]
    )
    lost = CaptureFollowup.objects.filter(
        alerts_decided_at__isnull=True, dispatched_at__lte=now - lost_after(), attempts__lt=MAX_DISPATCHES
    )
    lost_ids = list(lost.order_by("dispatched_at").values_list("capture_id", flat=True)[: batch - len(capture_ids)])
    if lost_ids:
        logger.warning("Dispatching again the follow-ups of %s captures whose tasks were lost", len(lost_ids))
    for capture in Capture.objects.filter(pk__in=capture_ids + lost_ids).order_by("pk"):
        capture_dispatch_followups(capture)
    return len(capture_ids) + len(lost_ids)
