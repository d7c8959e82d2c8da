"""The small, unwatermarked JPEG the console's live view shows (uploaded every N seconds)."""

from __future__ import annotations

import io

from PIL import Image

from safeguard_agent.evidence.screenshot import fit_width, grab_screen

THUMBNAIL_QUALITY = 60


def make_thumbnail(
    max_width: int = 320, *, quality: int = THUMBNAIL_QUALITY, frame: Image.Image | None = None
) -> bytes:
    """A JPEG of all monitors at most `max_width` pixels wide (raises NoDisplayError without a display).

    `frame`: a recent picture of the screen (the recorder's newest ring frame, at most a second old, which
    it decodes at a fraction of its size) to shrink instead of grabbing the screen again: a thumbnail then
    costs a few milliseconds and no second screen-sized buffer stays in memory.
    """
    if frame is not None:
        image = fit_width(frame, max_width)
    else:
        # A connection of its own, closed again, rather than one kept per thread as the recorder does: mss
        # keeps a shared-memory buffer as big as the screen (4 MB at 1280x800) per connection, and one grab
        # every 10 s does not need it kept (opening a connection costs a few ms).
        image = fit_width(grab_screen(), max_width)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
