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
