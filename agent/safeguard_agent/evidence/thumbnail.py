"""The small, unwatermarked JPEG the console's live view shows (uploaded every N seconds)."""

from __future__ import annotations

import io

from safeguard_agent.evidence.screenshot import grab_frame

THUMBNAIL_QUALITY = 60


def make_thumbnail(max_width: int = 320, *, quality: int = THUMBNAIL_QUALITY) -> bytes:
    """A JPEG of all monitors at most `max_width` pixels wide (raises NoDisplayError without a display)."""
    image = grab_frame(max_width)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
