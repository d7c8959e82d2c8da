"""The who / what / when / where block stamped top-right on every capture screenshot.

The watermark is what makes a screenshot stand on its own as evidence when it is printed or attached to
a case file: whose session, which keyword of which policy, the local time *with its zone* (a safeguarding
lead in another time zone must not misread it), and which computer. It is drawn with the DejaVu Sans font
shipped inside this package, so a screenshot looks the same whichever OS took it and whatever fonts the
machine has.

Legibility on any background comes from a semi-opaque dark panel under light text that also has a thin
dark outline: on a white page the panel reads as dark grey, on a black desktop as near-black with a light
border, and the text stays far above WCAG's 4.5:1 contrast on both (see tests/test_watermark.py).
"""

from __future__ import annotations

import io
import socket
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from PIL import ImageFont

# ImageFont and ImageDraw are imported when the first watermark is drawn: FreeType and its Pillow binding
# add about 1.5 MB to the agent's memory, and most pupils' sessions make no capture at all.

FONT_RESOURCE = "fonts/DejaVuSans.ttf"

# The panel never covers more than this share of the screenshot's width: the evidence is the screen.
MAX_WIDTH_FRACTION = 0.35
# Below this the glyphs of DejaVu Sans stop being readable in a printed screenshot.
MIN_FONT_PX = 12
# Font height is the screen's (16:9-capped) width divided by this: 15 px at 1280, 23 px at 1920, 45 px at 4K.
FONT_DIVISOR = 85

PANEL_RGBA = (16, 16, 16, 190)  # about 75% opaque: a white background becomes grey 64, text stays white
BORDER_RGBA = (255, 255, 255, 150)  # delimits the panel on a black desktop
TEXT_RGBA = (255, 255, 255, 255)
OUTLINE_RGBA = (0, 0, 0, 255)
ELLIPSIS = "…"


# The cached fonts are shared by every thread, and a FreeType face must not be used by two at once
# (two captures can be watermarked at the same moment).
_FONT_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _font_source() -> str | bytes:
    """The bundled font as a file path when installed as plain files, else its bytes (zip imports)."""
    resource = resources.files(__package__).joinpath(FONT_RESOURCE)
    if isinstance(resource, Path):
        return str(resource)
    return resource.read_bytes()


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont:
    """The bundled DejaVu Sans at `size` pixels (cached: screenshots of one screen share one size)."""
    from PIL import ImageFont

    source = _font_source()
    if isinstance(source, bytes):
        return ImageFont.truetype(io.BytesIO(source), size)
    return ImageFont.truetype(source, size)


def _clean(value: object) -> str:
    """One line of text: control characters (newlines, tabs, bidi overrides) become spaces."""
    text = "".join(" " if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch for ch in str(value))
    return " ".join(text.split())


def format_local_time(when: datetime) -> str:
    """`when` in this computer's local time with its zone name and offset: 2026-11-28 14:05:31 GMT (+00:00).

    The name alone is ambiguous (IST, CST) and the offset alone hides daylight saving, so both are shown.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("the watermark time must be timezone-aware")
    local = when.astimezone()
    raw_offset = local.strftime("%z")  # +0100, or +053000 for zones with seconds
    offset = f"{raw_offset[:3]}:{raw_offset[3:5]}" if raw_offset else "+00:00"
    zone = _clean(local.tzname() or "")
    stamp = local.strftime("%Y-%m-%d %H:%M:%S")
    # zoneinfo names zones without an abbreviation "+03"; repeating the offset would add nothing.
    if zone and zone[0] not in "+-":
        return f"{stamp} {zone} ({offset})"
    return f"{stamp} ({offset})"


@dataclass(frozen=True)
class Watermark:
    """What a capture's screenshot says about itself. `when` must be timezone-aware."""

    user: str
    keyword: str
    policy: str
    when: datetime
    hostname: str = field(default_factory=socket.gethostname)

    def __post_init__(self) -> None:
        if self.when.tzinfo is None or self.when.utcoffset() is None:
            raise ValueError("Watermark.when must be timezone-aware")

    def lines(self) -> list[str]:
        """The four lines of the block, in order: Who, What, When, Where."""
        keyword = _clean(self.keyword)
        policy = _clean(self.policy)
        what = f"{keyword} — {policy}" if policy else keyword
        return [
            f"Who: {_clean(self.user) or 'unknown'}",
            f"What: {what}",
            f"When: {format_local_time(self.when)}",
            f"Where: {_clean(self.hostname) or 'unknown'}",
        ]

    def apply_watermark(self, image: Image.Image) -> Image.Image:
        """A copy of `image` (as RGB) with the block drawn in its top-right corner."""
        base = image.convert("RGB") if image.mode != "RGB" else image.copy()
        with _FONT_LOCK:
            layout = _layout(self.lines(), base.width, base.height)
            if layout is None:
                return base
            box, overlay = _render(layout)
        region = base.crop(box).convert("RGBA")
        region.alpha_composite(overlay)
        base.paste(region.convert("RGB"), box[:2])
        return base


@dataclass(frozen=True)
class _Layout:
    lines: list[str]
    font_px: int
    padding: int
    line_height: int
    spacing: int
    stroke: int
    border: int
    panel_width: int
    panel_height: int
    left: int
    top: int


def font_size_for(width: int, height: int) -> int:
    """The watermark's font size for a screenshot of this size.

    Relative to the width, but a row of side-by-side monitors counts as one 16:9 screen, otherwise three
    monitors would get a watermark three times too large.
    """
    base = min(width, height * 16 / 9)
    return max(MIN_FONT_PX, round(base / FONT_DIVISOR))


def _truncate(text: str, face: ImageFont.FreeTypeFont, max_width: float) -> str:
    if face.getlength(text) <= max_width:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with the ellipsis
        middle = (low + high + 1) // 2
        if face.getlength(text[:middle].rstrip() + ELLIPSIS) <= max_width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + ELLIPSIS


def _layout(lines: list[str], width: int, height: int) -> _Layout | None:
    max_panel_width = int(width * MAX_WIDTH_FRACTION)
    size = font_size_for(width, height)
    while True:
        padding = max(4, round(size * 0.6))
        stroke = max(1, round(size / 14))
        face = font(size)
        text_width = max(face.getlength(line) for line in lines) + 2 * stroke
        if text_width + 2 * padding <= max_panel_width or size <= MIN_FONT_PX:
            break
        size -= 1  # shrink to fit before resorting to cutting text
    available = max_panel_width - 2 * padding - 2 * stroke
    if available <= face.getlength("W" + ELLIPSIS):
        return None  # an image too narrow to carry a readable block (not a real screen)
    fitted = [_truncate(line, face, available) for line in lines]
    ascent, descent = face.getmetrics()
    line_height = ascent + descent
    spacing = max(2, round(size * 0.3))
    panel_width = min(max_panel_width, int(max(face.getlength(line) for line in fitted)) + 2 * (padding + stroke) + 1)
    panel_height = 2 * padding + len(fitted) * line_height + (len(fitted) - 1) * spacing
    margin = max(4, round(size * 0.8))
    left = max(0, width - margin - panel_width)
    return _Layout(
        lines=fitted,
        font_px=size,
        padding=padding,
        line_height=line_height,
        spacing=spacing,
        stroke=stroke,
        border=max(1, round(size / 15)),
        panel_width=panel_width,
        panel_height=panel_height,
        left=left,
        top=min(margin, max(0, height - panel_height)),
    )


def _render(layout: _Layout) -> tuple[tuple[int, int, int, int], Image.Image]:
    from PIL import ImageDraw

    overlay = Image.new("RGBA", (layout.panel_width, layout.panel_height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rounded_rectangle(
        (0, 0, layout.panel_width - 1, layout.panel_height - 1),
        radius=max(2, layout.font_px // 3),
        fill=PANEL_RGBA,
        outline=BORDER_RGBA,
        width=layout.border,
    )
    face = font(layout.font_px)
    y = layout.padding
    for line in layout.lines:
        draw.text(
            (layout.padding + layout.stroke, y),
            line,
            font=face,
            fill=TEXT_RGBA,
            stroke_width=layout.stroke,
            stroke_fill=OUTLINE_RGBA,
        )
        y += layout.line_height + layout.spacing
    box = (layout.left, layout.top, layout.left + layout.panel_width, layout.top + layout.panel_height)
    return box, overlay
