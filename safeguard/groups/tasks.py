"""Background work for devices. Tasks stay thin: call one service."""

from celery import shared_task
from django.db import DatabaseError

from safeguard.groups import offline


@shared_task(
    bind=True,
    autoretry_for=(OSError, DatabaseError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def devices_offline_check(self) -> int:
    """Email IT staff about devices that went offline (once per outage), when addresses are set."""
    return offline.devices_offline_alert(claimant=self.request.id or "")
