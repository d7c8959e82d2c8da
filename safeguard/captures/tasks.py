"""Background work for captures. Tasks stay thin: fetch by id, call one service."""

from celery import shared_task
from django.db import DatabaseError
from PIL import UnidentifiedImageError

from safeguard.captures import services


@shared_task(
    autoretry_for=(OSError, DatabaseError),
    # A screenshot that does not decode will not decode on a retry either (it is an OSError too).
    dont_autoretry_for=(UnidentifiedImageError,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def capture_make_preview(capture_id: int) -> bool:
    """Make the console preview of a capture's screenshot; does nothing if it already exists."""
    return services.capture_make_preview(capture_id=capture_id)


# --- follow-ups of a new capture (captures.services.capture_dispatch_followups) ----------------


@shared_task(
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def action_rules_evaluate(capture_id: int) -> int:
    """Evaluate the action rules of the capture's person; returns how many fired (each fires once)."""
    from safeguard.policies.actions import action_rules_evaluate as evaluate

    return len(evaluate(capture_id=capture_id))


@shared_task(
    # smtplib's errors are OSErrors: an SMTP server that is down or refuses is retried.
    autoretry_for=(OSError, DatabaseError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def action_rule_notify(firing_id: int) -> int:
    """Email the staff of a fired action rule (once: the firing's notified_at is the claim)."""
    from safeguard.policies.actions import action_rule_notify as notify

    return notify(firing_id=firing_id)


# --- PDF exports (safeguard.captures.exports) ----------------------------------------------------

EXPORT_MAX_RETRIES = 3


@shared_task(bind=True, max_retries=EXPORT_MAX_RETRIES)
def export_job_run(self, job_id: int) -> bool:
    """Build an export job's PDF. Storage and database errors are retried with backoff; after the
    last try (or on any other error) the job is marked failed, so its page stops waiting."""
    from safeguard.captures import exports

    try:
        return exports.export_job_run(job_id=job_id)
    except (OSError, DatabaseError) as error:
        if self.request.retries >= EXPORT_MAX_RETRIES:
            exports.export_job_fail(job_id=job_id, error=error)
            raise
        raise self.retry(exc=error, countdown=min(600, 10 * 2**self.request.retries)) from error
