"""Screen recordings for severe captures, starting *before* the trigger.

A background thread grabs a low-rate frame and keeps the last `pre_seconds` of them in a bounded in-memory
ring, JPEG-compressed (about 100 KB a frame instead of 3 MB of pixels) and deduplicated (an unchanged
screen costs a grab and a CRC of its raw bytes, nothing more). The clock ticks at `fps` (2 a second by
default); while nothing records, the ring keeps `ring_fps` of them (the agent uses 1 a second, which halves
the cost of the ring), and while a recording runs every tick is grabbed, so the video after the trigger has
the full rate. The encoder holds the previous picture over the ticks the ring skipped. Those frames are never
written anywhere: they only reach the disk inside an MP4 when `record()` is called for a severe match, so
an idle agent leaves no trace of what was on screen.

`record(seconds, out_path)` takes the ring's frames as the recording's first part, then subscribes to the
live frames for `seconds` and streams everything to imageio-ffmpeg's bundled ffmpeg (H.264, yuv420p,
+faststart so a browser can play it while it downloads), writing a temporary file beside `out_path` and
renaming it into place only when it is complete. Concurrent `record()` calls (two severe matches at once)
each get every live frame through their own queue and run their own ffmpeg, so neither waits for the
other and both contain the moments before their own trigger.

Frames are stamped with the tick of a fixed clock (tick k is due at start + k / fps). A grab that fails or
runs late leaves a gap that the encoder fills with the previous picture, so the video's time line matches
the wall clock: 30 s of screen is 30 s of video.

Cost per tick grabbed on a 1280x800 Xvfb (CPU): about 2 ms to grab and 2.5 ms for the CRC of an unchanged
screen; a changed one adds about 5 ms of JPEG (encoded from the grab's bytes as they are, see `_frame`).
So a 1 frame/s ring costs about 0.45% of one core for a still screen and about 1% while someone types.
Larger screens cost proportionally more.
"""

from __future__ import annotations

import io
import logging
import math
import os
import queue
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import imageio_ffmpeg
from PIL import Image

from safeguard_agent.evidence.screenshot import RawFrame, fit_width, grab_raw_frame, release_thread_screen

log = logging.getLogger(__name__)

# A grab returns a picture, or a RawFrame (the default: compared before it is converted).
Grab = Callable[[int | None], Image.Image | RawFrame]

FRAME_JPEG_QUALITY = 90  # in-memory frames; H.264 at CRF ~25 loses more than this
VIDEO_QUALITY = 5.0  # imageio-ffmpeg's 1-10 scale; 5 is CRF 25 for libx264
KEYFRAME_SECONDS = 5.0  # a keyframe every few seconds lets the console's player seek
FFMPEG_TIMEOUT = 120.0  # seconds ffmpeg may take to finish after the last frame before it is killed
LIVE_GRACE_SECONDS = 5.0  # how long past its end a recording waits for late frames
_STOP = object()


class RecordingError(RuntimeError):
    """No recording could be made (no frame could be grabbed, or ffmpeg failed)."""


@dataclass(frozen=True)
class _Frame:
    jpeg: bytes
    size: tuple[int, int]
    # Red and blue are stored swapped: the JPEG was encoded straight from the grab's BGRX bytes (see _frame).
    swapped: bool = False

    def image(self, max_width: int | None = None) -> Image.Image:
        """The frame's RGB picture; with `max_width`, libjpeg decodes it straight at a half, quarter or
        eighth of its size when that is still at least as wide (`draft`: the thumbnail's cheap path)."""
        image = Image.open(io.BytesIO(self.jpeg))
        if max_width is not None:
            image.draft("RGB", (max_width, max_width * image.height // max(1, image.width)))
        image = image.convert("RGB")
        if self.swapped:
            image = Image.merge("RGB", image.split()[::-1])
        return image


@dataclass(frozen=True)
class Recording:
    """A finished recording: where it is and what it covers."""

    path: Path
    started_at: datetime  # when its first frame was grabbed (before the trigger when it has pre-trigger frames)
    duration_seconds: float
    frames: int
    pre_trigger_frames: int


def _even(image: Image.Image) -> Image.Image:
    """H.264 in yuv420p needs even dimensions: drop a last odd column/row rather than rescale."""
    width, height = image.width - image.width % 2, image.height - image.height % 2
    if (width, height) == image.size:
        return image
    return image.crop((0, 0, width, height))


def _compress(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=FRAME_JPEG_QUALITY)
    return buffer.getvalue()


class ScreenRecorder:
    """Low-rate screen frames in a memory-only ring, turned into an MP4 on demand.

    `grab(max_width)` returns one RGB frame of the screen; the default grabs every monitor with mss.
    """

    def __init__(
        self,
        fps: float = 2.0,
        pre_seconds: float = 10.0,
        grab: Grab = grab_raw_frame,
        max_width: int | None = 1280,
        *,
        quality: float = VIDEO_QUALITY,
        ring_fps: float | None = None,
    ) -> None:
        if fps <= 0 or not math.isfinite(fps):
            raise ValueError("fps must be a positive number")
        if pre_seconds < 0:
            raise ValueError("pre_seconds cannot be negative")
        if ring_fps is not None and (ring_fps <= 0 or not math.isfinite(ring_fps)):
            raise ValueError("ring_fps must be a positive number")
        self.fps = fps
        self.pre_seconds = pre_seconds
        self.max_width = max_width
        self.quality = quality
        self._grab = grab
        self._interval = 1.0 / fps
        # Grab one tick in `_ring_step` while nothing records (ring_fps None: every tick).
        self._ring_step = max(1, round(fps / ring_fps)) if ring_fps is not None else 1
        self.ring_fps = fps / self._ring_step
        self._pre_ticks = round(fps * pre_seconds)  # how many ticks before a trigger a recording covers
        # One frame more than the window holds: the picture still on screen at the window's first tick.
        ring_frames = math.ceil(self._pre_ticks / self._ring_step) + (1 if self._ring_step > 1 else 0)
        self._ring: deque[tuple[int, _Frame]] = deque(maxlen=ring_frames)
        self._lock = threading.Lock()
        self._subscribers: list[queue.SimpleQueue[Any]] = []
        self._last_tick = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._epoch_monotonic = 0.0
        self._epoch_wall = datetime.now(UTC)

    # -- lifecycle -------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ScreenRecorder:
        """Start grabbing frames into the ring (idempotent)."""
        if self.running:
            return self
        self._stop.clear()
        with self._lock:
            self._ring.clear()
            self._last_tick = -1
        self._epoch_monotonic = time.monotonic()
        self._epoch_wall = datetime.now(UTC)
        self._thread = threading.Thread(target=self._run, name="safeguard-screen-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop grabbing and forget the ring; recordings in progress finish with what they have."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._ring.clear()
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.put(_STOP)

    def __enter__(self) -> ScreenRecorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def buffered_frames(self) -> int:
        """How many pre-trigger frames the ring holds now."""
        with self._lock:
            return len(self._ring)

    def latest_frame(self, max_width: int | None = None) -> Image.Image | None:
        """The newest frame in the ring (at most one ring interval old), at least `max_width` wide, or
        None; the live thumbnail is made from it instead of grabbing the screen again."""
        with self._lock:
            frame = self._ring[-1][1] if self._ring else None
        return frame.image(max_width) if frame is not None else None

    @property
    def active_recordings(self) -> int:
        """How many `record()` calls are collecting live frames now."""
        with self._lock:
            return len(self._subscribers)

    # -- the grabbing thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        tick = 0
        last_key: Any = None
        last_frame: _Frame | None = None
        failures = 0
        try:
            while not self._stop.is_set():
                if tick % self._ring_step and not self._subscribers:
                    self._skip(tick)  # nothing records: the ring's lower rate
                else:
                    frame: _Frame | None = None
                    try:
                        frame, last_key, last_frame = self._frame(last_key, last_frame)
                        if failures:
                            log.info("screen frames are being grabbed again after %d failures", failures)
                        failures = 0
                    except Exception as error:  # the grab is pluggable; whatever it raises, the clock goes on
                        failures += 1
                        if failures == 1 or failures % 120 == 0:
                            log.warning("screen frame could not be grabbed (%d in a row): %s", failures, error)
                    self._publish(tick, frame)
                # The next tick not already past: a slow grab skips ticks instead of bunching frames up.
                elapsed_ticks = (time.monotonic() - self._epoch_monotonic) / self._interval
                tick = max(tick + 1, math.floor(elapsed_ticks) + 1)
                self._stop.wait(max(0.0, self._epoch_monotonic + tick * self._interval - time.monotonic()))
        finally:
            release_thread_screen()

    def _frame(self, last_key: Any, last_frame: _Frame | None) -> tuple[_Frame, Any, _Frame]:
        """Grab one frame: the previous one again when the screen did not change, else a new JPEG.

        A raw grab (the default) is compared by a CRC of its BGRX bytes (2.5 ms at 1280x800; 4 bytes kept
        instead of the previous 4 MB buffer, which memcmp would need: measured, that cost 7 MB of RSS to
        save 2 ms a second). Two different screens colliding (1 in 4 billion) would repeat one picture for
        one tick. A changed one is JPEG-encoded straight from those BGRX bytes, read in place as if they were
        RGBX: the file then has red and blue swapped, which `_Frame.image()` undoes when a recording or a
        thumbnail decodes it (rarely, against once a second). Gray text and backgrounds, most of a screen,
        encode exactly as before; coloured detail only trades JPEG's luma weights of red and blue.
        A picture from a pluggable grab is compared by a CRC of its pixels (4 bytes kept).
        """
        grabbed = self._grab(self.max_width)
        if isinstance(grabbed, RawFrame):
            key: Any = (grabbed.size, zlib.crc32(grabbed.bgrx))
            if last_frame is not None and key == last_key:
                return last_frame, key, last_frame  # the same picture: share the compressed bytes
            image = grabbed.as_rgbx()
            if self.max_width is not None and image.width > self.max_width:
                image = fit_width(image, self.max_width)
            swapped = True
        else:
            image = grabbed if grabbed.mode == "RGB" else grabbed.convert("RGB")
            key = (image.size, zlib.crc32(image.tobytes()))
            if last_frame is not None and key == last_key:
                return last_frame, key, last_frame
            swapped = False
        image = _even(image)
        frame = _Frame(_compress(image), image.size, swapped)
        return frame, key, frame

    def _skip(self, tick: int) -> None:
        """A tick the ring does not keep: it still counts as the last tick, so a recording that starts
        now takes its live frames from the next tick on (and the encoder holds the last picture)."""
        with self._lock:
            self._last_tick = tick
            subscribers = list(self._subscribers)
        for subscriber in subscribers:  # a recording subscribed since the check: it gets this tick too
            subscriber.put((tick, None))

    def _publish(self, tick: int, frame: _Frame | None) -> None:
        with self._lock:
            self._last_tick = tick
            if frame is not None:
                self._ring.append((tick, frame))
            for subscriber in self._subscribers:
                subscriber.put((tick, frame))

    # -- recordings ------------------------------------------------------------------------------------
    def record(self, seconds: float, out_path: Path) -> Path:
        """Record the pre-trigger frames plus `seconds` of live screen to the MP4 `out_path` and return it."""
        return self.record_clip(seconds, out_path).path

    def record_clip(self, seconds: float, out_path: Path) -> Recording:
        """As `record`, returning when the recording starts and how long it is as well."""
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        if not self.running:
            raise RuntimeError("ScreenRecorder.record() needs start() first")
        live_ticks = max(1, round(seconds * self.fps))
        subscriber: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self._lock:
            pre_frames = list(self._ring)
            trigger_tick = self._last_tick
            self._subscribers.append(subscriber)
        encoder = _Encoder(Path(out_path), fps=self.fps, quality=self.quality)
        try:
            try:
                # A ring with skipped ticks spans more than pre_seconds: what is older than the window only
                # provides the picture for the window's first tick when no frame was grabbed at that tick.
                first_pre_tick = trigger_tick - self._pre_ticks + 1
                seed: _Frame | None = None
                window: list[tuple[int, _Frame]] = []
                for tick, frame in pre_frames:
                    if tick < first_pre_tick:
                        seed = frame
                    else:
                        window.append((tick, frame))
                if seed is not None and (not window or window[0][0] > first_pre_tick):
                    encoder.add(first_pre_tick, seed)
                for tick, frame in window:
                    encoder.add(tick, frame)
                end_tick = trigger_tick + live_ticks
                deadline = time.monotonic() + seconds + 2 * self._interval + LIVE_GRACE_SECONDS
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        log.warning("recording ended at its deadline without all its live frames")
                        break
                    try:
                        item = subscriber.get(timeout=remaining)
                    except queue.Empty:
                        continue
                    if item is _STOP:
                        log.info("recording cut short: the recorder was stopped")
                        break
                    tick, frame = item
                    if tick <= trigger_tick:
                        continue
                    encoder.add(min(tick, end_tick), frame)
                    if tick >= end_tick:
                        break
            finally:
                with self._lock:
                    self._subscribers.remove(subscriber)
            path = encoder.finish()
        except BaseException:
            encoder.abort()
            raise
        assert encoder.first_tick is not None  # finish() raised otherwise
        return Recording(
            path=path,
            started_at=self._epoch_wall + timedelta(seconds=encoder.first_tick * self._interval),
            duration_seconds=encoder.frames / self.fps,
            frames=encoder.frames,
            pre_trigger_frames=max(0, min(trigger_tick, encoder.last_tick) - encoder.first_tick + 1),
        )


class _Encoder:
    """Frames in tick order to an H.264 MP4, through a temporary file renamed into place at the end."""

    def __init__(self, out_path: Path, *, fps: float, quality: float) -> None:
        self.out_path = out_path
        self.fps = fps
        self.quality = quality
        self.temp_path = out_path.with_name(f".{out_path.stem}.{uuid.uuid4().hex}.partial.mp4")
        self.first_tick: int | None = None
        self.last_tick = -1
        self.frames = 0
        self._writer: Generator[None, bytes | None, None] | None = None
        self._size: tuple[int, int] | None = None
        self._last_pixels: bytes | None = None

    def add(self, tick: int, frame: _Frame | None) -> None:
        """The picture for `tick` (None: the grab failed, repeat the previous picture)."""
        if self.first_tick is not None and tick <= self.last_tick:
            return
        if frame is None:
            if self._last_pixels is None:
                return  # nothing to repeat yet: the video starts at its first real frame
            pixels = self._last_pixels
        else:
            pixels = self._decode(frame)
        if self.first_tick is None:
            self.first_tick = tick
        else:
            for _ in range(self.last_tick + 1, tick):  # ticks nobody grabbed: hold the previous picture
                self._send(self._last_pixels)
        self._send(pixels)
        self.last_tick = tick
        self._last_pixels = pixels

    def _decode(self, frame: _Frame) -> bytes:
        image = frame.image()
        if self._size is None:
            self._open(image.size)
        elif image.size != self._size:  # a monitor was added or removed mid-recording
            image = image.resize(self._size, Image.Resampling.BILINEAR)
        return image.tobytes()

    def _open(self, size: tuple[int, int]) -> None:
        self._size = size
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = imageio_ffmpeg.write_frames(
            str(self.temp_path),
            size,
            fps=self.fps,
            codec="libx264",
            quality=self.quality,
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            macro_block_size=2,  # sizes are already even; never let it rescale to multiples of 16
            ffmpeg_log_level="error",
            ffmpeg_timeout=FFMPEG_TIMEOUT,
            output_params=[
                "-preset",
                "veryfast",
                "-g",
                str(max(1, round(self.fps * KEYFRAME_SECONDS))),
                "-movflags",
                "+faststart",
            ],
        )
        self._writer.send(None)  # start ffmpeg

    def _send(self, pixels: bytes | None) -> None:
        assert self._writer is not None and pixels is not None
        self._writer.send(pixels)
        self.frames += 1

    def finish(self) -> Path:
        if self._writer is None:
            raise RecordingError("no screen frame could be grabbed for the recording")
        writer, self._writer = self._writer, None
        writer.close()  # waits for ffmpeg to write the moov atom and move it to the front
        try:
            with open(self.temp_path, "rb") as handle:
                head = handle.read(12)
        except FileNotFoundError:
            head = b""
        if len(head) < 12 or head[4:8] != b"ftyp":
            self.abort()
            raise RecordingError("ffmpeg did not produce an MP4 (see its messages above)")
        with open(self.temp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self.temp_path, self.out_path)
        _fsync_directory(self.out_path.parent)
        return self.out_path

    def abort(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:
                log.debug("closing ffmpeg after a failed recording failed", exc_info=True)
        self.temp_path.unlink(missing_ok=True)


def _fsync_directory(folder: Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open a directory; NTFS journals the rename itself
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def record_for(
    seconds: float,
    out_path: Path,
    *,
    fps: float = 2.0,
    grab: Grab = grab_raw_frame,
    max_width: int | None = 1280,
) -> Path:
    """Record the screen for `seconds` from now (a "record screen now" command), without a running recorder."""
    recorder = ScreenRecorder(fps=fps, pre_seconds=0.0, grab=grab, max_width=max_width)
    recorder.start()
    try:
        return recorder.record(seconds, out_path)
    finally:
        recorder.stop()
