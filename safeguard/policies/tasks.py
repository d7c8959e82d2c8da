"""Background work for alerts and escalation. Tasks stay thin: call one service.

The per-capture task is enqueued by captures.services.capture_dispatch_followups; the others run
from Celery beat (CELERY_BEAT_SCHEDULE in settings). Each passes its own task id as the claimant,
so a message redelivered after its worker died can finish the email it had claimed (see
safeguard.policies.alerts). smtplib's errors are OSErrors: an SMTP server that is down or refuses
is retried with backoff.
"""

from celery import shared_task
from django.db import DatabaseError

from safeguard.policies import alerts, escalation, followups

RETRYING = {
    "autoretry_for": (OSError, DatabaseError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(bind=True, **RETRYING)
def capture_alerts_send(self, capture_id: int) -> int:
    """Email the alerts of a new capture (or queue them for a digest); returns the emails sent."""
    return alerts.capture_alerts_send(capture_id=capture_id, claimant=self.request.id or "")


@shared_task(bind=True, **RETRYING)
def alert_digests_send(self) -> int:
    """Send the hourly and daily digests that are due."""
    return alerts.alert_digests_send(claimant=self.request.id or "")


@shared_task(**RETRYING)
def alert_claims_retry() -> int:
    """Send what a worker that died mid-send left claimed (alerts and digests)."""
    return alerts.alert_claims_retry()


@shared_task(bind=True, **RETRYING)
def escalations_send_due(self) -> int:
    """Email the escalation rounds that are due."""
    return escalation.escalations_send_due(claimant=self.request.id or "")


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=True, max_retries=3)
def capture_followups_redispatch() -> int:
    """Enqueue again the follow-ups of captures stored while the broker was down, or whose tasks it lost."""
    return followups.capture_followups_redispatch()
