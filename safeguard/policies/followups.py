"""The follow-ups of a new capture reach the broker even when Redis was down as the capture arrived.

captures.services.capture_dispatch_followups enqueues a new capture's tasks (email alerts,
action rules) after its commit and then records the outcome here: a `CaptureFollowup` row with
`dispatched_at` set, or empty when the broker refused (the capture itself is stored either way,
and the agent gets its 201). A beat task (policies.tasks.capture_followups_redispatch, every
minute) dispatches the refused ones again once they are a minute old; Celery beat itself only
runs while Redis is up, so the first sweep after Redis returns sends them. Every follow-up task
is idempotent, so a capture dispatched twice (e.g. the first attempt half got through) alerts once.
"""

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from safeguard.policies.models import CaptureFollowup

logger = logging.getLogger(__name__)

# A refused dispatch is retried once it is this old (not at once: the broker just said no).
REDISPATCH_AFTER = timedelta(minutes=1)
# Per sweep, so a long outage's backlog drains over a few minutes instead of one long task.
REDISPATCH_BATCH = 500


def capture_followups_record(*, capture_id: int, dispatched: bool, now: datetime | None = None) -> None:
    """Remember whether the capture's follow-up tasks reached the broker."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            if dispatched:
                updated = CaptureFollowup.objects.filter(capture_id=capture_id).update(dispatched_at=now)
                if not updated:
                    CaptureFollowup.objects.create(capture_id=capture_id, created_at=now, dispatched_at=now)
                return
            row, created = CaptureFollowup.objects.get_or_create(
                capture_id=capture_id, defaults={"created_at": now, "dispatched_at": None}
            )
            if not created:
                CaptureFollowup.objects.filter(pk=row.pk).update(dispatched_at=None, attempts=F("attempts") + 1)
    except IntegrityError:
        # The capture was deleted meanwhile, or a concurrent dispatch wrote the row first.
        logger.warning("Could not record the follow-ups of capture %s", capture_id, exc_info=True)


def capture_followups_redispatch(*, now: datetime | None = None, batch: int = REDISPATCH_BATCH) -> int:
    """Dispatch again the follow-ups that did not reach the broker; returns how many captures were retried."""
    from safeguard.captures.models import Capture
    from safeguard.captures.services import capture_dispatch_followups

    now = now or timezone.now()
    capture_ids = list(
        CaptureFollowup.objects.filter(dispatched_at__isnull=True, created_at__lte=now - REDISPATCH_AFTER)
        .order_by("created_at")
        .values_list("capture_id", flat=True)[:batch]
    )
    for capture in Capture.objects.filter(pk__in=capture_ids).order_by("pk"):
        capture_dispatch_followups(capture)
    return len(capture_ids)
