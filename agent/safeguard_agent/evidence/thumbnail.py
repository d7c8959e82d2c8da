"""The small, unwatermarked JPEG the console's live view shows (uploaded every N seconds)."""

from __future__ import annotations

import io

from safeguard_agent.evidence.screenshot import fit_width, grab_screen

THUMBNAIL_QUALITY = 60


def make_thumbnail(max_width: int = 320, *, quality: int = THUMBNAIL_QUALITY) -> bytes:
    """A JPEG of all monitors at most `max_width` pixels wide (raises NoDisplayError without a display)."""
    # A connection of its own, closed again, rather than one kept per thread as the recorder does: mss keeps
    # a shared-memory buffer as big as the screen (4 MB at 1280x800) per connection, and one grab every 10 s
    # does not need it kept (opening a connection costs a few ms).
    image = fit_width(grab_screen(), max_width)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
