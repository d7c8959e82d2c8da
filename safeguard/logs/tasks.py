"""Background work for the logs app. Tasks stay thin: call one service."""

from celery import shared_task
from django.db import DatabaseError


@shared_task(
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def retention_apply() -> dict:
    """Apply the retention periods (daily, from Celery beat: CELERY_BEAT_SCHEDULE in settings).

    Idempotent: a redelivered or repeated run finds nothing more to remove.
    """
    from safeguard.logs.retention import retention_apply as apply

    return apply()


@shared_task(
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def event_partitions_ensure() -> list[str]:
    """Create the coming months' activity event partitions (daily, from Celery beat; PostgreSQL only).

    Idempotent: creates only what is missing. Retried on a lock timeout.
    """
    from safeguard.logs.partitions import partitions_ensure

    return partitions_ensure()
