"""The small, unwatermarked JPEG the console's live view shows (uploaded every N seconds)."""

from __future__ import annotations

import io

from PIL import Image

from safeguard_agent.evidence.screenshot import fit_width, grab_screen

THUMBNAIL_QUALITY = 60


def make_thumbnail(max_width: int = 320, *, quality: int = THUMBNAIL_QUALITY, frame_jpeg: bytes | None = None) -> bytes:
    """A JPEG of all monitors at most `max_width` pixels wide (raises NoDisplayError without a display).

    `frame_jpeg`: a recent full-size frame (the recorder's newest, at most a second old) to shrink instead
    of grabbing the screen. libjpeg decodes it straight at a quarter or an eighth of its size (`draft`), so
    a thumbnail costs about a millisecond instead of a grab, and no second screen buffer stays in memory.
    """
    if frame_jpeg is not None:
        image = Image.open(io.BytesIO(frame_jpeg))
        image.draft("RGB", (max_width, max_width * image.height // max(1, image.width)))
        image = fit_width(image.convert("RGB"), max_width)
    else:
        # A connection of its own, closed again, rather than one kept per thread as the recorder does: mss
        # keeps a shared-memory buffer as big as the screen (4 MB at 1280x800) per connection, and one grab
        # every 10 s does not need it kept (opening a connection costs a few ms).
        image = fit_width(grab_screen(), max_width)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
