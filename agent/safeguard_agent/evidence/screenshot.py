"""Screen grabs with mss: the watermarked PNG of a capture, and plain frames for recordings and thumbnails.

All monitors are captured as one image: mss's monitor 0 is the bounding box of every screen, so a pupil
who moves a conversation to the second monitor is still in the evidence.

Opening a connection to the display costs about 6 ms on X11 against about 1 ms for the grab itself, so
`grab_frame` (called twice a second by the recorder) keeps one mss instance per thread. A cached instance
is reopened when it fails once (the X server was restarted, the user logged out and in) and every minute
(a monitor was plugged in). `take_screenshot` (once per capture) opens a fresh one: the evidence must show
the monitors as they are now.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from dataclasses import dataclass

import mss
from mss.exception import ScreenShotError
from PIL import Image

from safeguard_agent.evidence.watermark import Watermark

log = logging.getLogger(__name__)

# zlib level for the capture PNG, chosen for the keystroke-to-server latency. Measured here: a 1280x800
# text screen takes 12 ms / 45 KB at level 1 and 30 ms / 29 KB at level 6 (Pillow's default); a busy
# photo-like 1920x1080 screen 146 ms / 1.0 MB against 345 ms / 0.74 MB. Far below the 20 MiB the server takes.
PNG_COMPRESS_LEVEL = 1
_CACHE_MAX_AGE = 60.0


# mss raises ScreenShotError for X errors, but a connection whose X server has gone away fails inside
# its xcb bindings with an AssertionError (mss 10.2) or a ctypes/OS error: all of them mean "no frame".
_GRAB_ERRORS = (ScreenShotError, AssertionError, OSError, ValueError)


class ScreenCaptureError(RuntimeError):
    """The screen could not be captured."""


class NoDisplayError(ScreenCaptureError):
    """There is no display to capture: no X server, DISPLAY unset, or no interactive desktop."""


def _open_screen() -> mss.MSS:
    try:
        return mss.MSS()
    except ScreenShotError as error:
        raise NoDisplayError(f"no display to capture ({error})") from error


@dataclass(frozen=True, eq=False)
class RawFrame:
    """One grab as mss returns it (BGRX bytes), turned into a picture only when someone needs one.

    The recorder grabs once a second to keep its pre-trigger ring, and most grabs show what the last one
    showed: comparing the raw bytes first skips the BGRX->RGB conversion (about 2 ms at 1280x800) and the
    copies of an unchanged screen.
    """

    size: tuple[int, int]
    bgrx: bytearray | bytes

    def as_rgbx(self) -> Image.Image:
        """The bytes read in place (no copy, no conversion) as an RGBX picture: red and blue come out
        swapped. For encoders that can take them so and have them swapped back when decoded."""
        return Image.frombuffer("RGBX", self.size, self.bgrx, "raw", "RGBX", 0, 1)

    def image(self, max_width: int | None = None) -> Image.Image:
        """The RGB picture, scaled down to `max_width`."""
        # frombuffer reads the bytearray in place; frombytes(shot.bgra) would copy all 4 MB first.
        return fit_width(Image.frombuffer("RGB", self.size, self.bgrx, "raw", "BGRX", 0, 1), max_width)


def _grab_raw(screen: mss.MSS) -> RawFrame:
    monitor = screen.monitors[0]  # the union of every monitor
    shot = screen.grab(monitor)
    return RawFrame(tuple(shot.size), shot.raw)


def _grab_all_monitors(screen: mss.MSS) -> Image.Image:
    return _grab_raw(screen).image()


def fit_width(image: Image.Image, max_width: int | None) -> Image.Image:
    """`image` scaled down (keeping its aspect ratio) to at most `max_width` pixels wide."""
    if max_width is None or image.width <= max_width:
        return image
    height = max(1, round(image.height * max_width / image.width))
    return image.resize((max_width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)


def grab_screen() -> Image.Image:
    """Every monitor, full resolution, as one RGB image, through a fresh connection to the display."""
    with _open_screen() as screen:
        try:
            return _grab_all_monitors(screen)
        except _GRAB_ERRORS as error:
            raise ScreenCaptureError(f"the screen could not be grabbed ({error!r})") from error


def take_screenshot(watermark: Watermark | None) -> bytes:
    """A PNG of all monitors, watermarked top-right when `watermark` is given.

    Raises NoDisplayError when there is no display and ScreenCaptureError when the grab fails.
    """
    image = grab_screen()
    if watermark is not None:
        image = watermark.apply_watermark(image)
    buffer = io.BytesIO()
    # optimize=True tries every filter and costs several times the encode for a few percent.
    image.save(buffer, "PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


class _ThreadScreen(threading.local):
    screen: mss.MSS | None = None
    display: str | None = None
    opened_at: float = 0.0


_thread_screen = _ThreadScreen()


def release_thread_screen() -> None:
    """Close the calling thread's cached display connection (a grabbing thread calls this on exit)."""
    screen = _thread_screen.screen
    _thread_screen.screen = None
    if screen is not None:
        try:
            screen.close()
        except Exception:  # closing a connection to a dead X server may fail; it is gone either way
            log.debug("closing a stale screen connection failed", exc_info=True)


def _cached_screen() -> tuple[mss.MSS, bool]:
    """The calling thread's connection, and whether it was opened just now."""
    display = os.environ.get("DISPLAY")
    cached = _thread_screen.screen
    if (
        cached is not None
        and _thread_screen.display == display
        and time.monotonic() - _thread_screen.opened_at < _CACHE_MAX_AGE
    ):
        return cached, False
    release_thread_screen()
    screen = _open_screen()
    _thread_screen.screen = screen
    _thread_screen.display = display
    _thread_screen.opened_at = time.monotonic()
    return screen, True


def grab_raw_frame(max_width: int | None = None) -> RawFrame:
    """Every monitor, as the raw bytes of one grab (the recorder's default `grab`: see `RawFrame`).

    `max_width` is applied when the frame is turned into a picture (`RawFrame.image`), not here."""
    screen, fresh = _cached_screen()
    try:
        return _grab_raw(screen)
    except _GRAB_ERRORS as error:
        release_thread_screen()
        if fresh:
            raise ScreenCaptureError(f"the screen could not be grabbed ({error!r})") from error
        # A connection that worked before may belong to a display that has since restarted: retry once.
        screen, _ = _cached_screen()
        try:
            return _grab_raw(screen)
        except _GRAB_ERRORS as retry_error:
            release_thread_screen()
            raise ScreenCaptureError(f"the screen could not be grabbed ({retry_error!r})") from retry_error


def grab_frame(max_width: int | None = None) -> Image.Image:
    """Every monitor as one RGB image, scaled down to `max_width`, for recordings and thumbnails."""
    return grab_raw_frame().image(max_width)
