"""Checks on files agents upload: images must decode, videos must be MP4s, sizes are capped."""

import io
import warnings

from django.core.files.uploadedfile import UploadedFile
from PIL import Image

from safeguard.core.api import field_error

ALLOWED_IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
# Far above any real screen (8K is 33 Mpx) yet small enough that decoding cannot exhaust memory.
MAX_IMAGE_PIXELS = 60_000_000
MP4_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash"}


def validate_image_upload(upload: UploadedFile | None, *, field: str, max_bytes: int) -> str:
    """Return the file extension for a PNG/JPEG/WebP upload, or raise a 400 naming `field`.

    Pillow's verify() checks structure; a full load() then proves the pixels decode. The
    decompression-bomb guard turns an image with absurd dimensions into an error, not an OOM.
    """
    if upload is None:
        raise field_error(field, "this file is required")
    if upload.size is not None and upload.size > max_bytes:
        raise field_error(field, f"larger than {max_bytes} bytes")
    data = upload.read()
    upload.seek(0)
    if not data:
        raise field_error(field, "the file is empty")
    previous_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                image_format = probe.format
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise field_error(field, "image dimensions are too large") from None
    except Exception:  # Pillow raises many types for corrupt data; all mean "not an image"
        raise field_error(field, "not a valid PNG, JPEG or WebP image") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    if image_format not in ALLOWED_IMAGE_FORMATS:
        raise field_error(field, f"image format {image_format} is not PNG, JPEG or WebP")
    return ALLOWED_IMAGE_FORMATS[image_format]


def validate_mp4_upload(upload: UploadedFile | None, *, field: str, max_bytes: int) -> None:
    """Raise a 400 naming `field` unless the upload starts like an ISO-BMFF (MP4) file."""
    if upload is None:
        raise field_error(field, "this file is required")
    if upload.size is not None and upload.size > max_bytes:
        raise field_error(field, f"larger than {max_bytes} bytes")
    head = upload.read(12)
    upload.seek(0)
    if len(head) < 12 or head[4:8] != b"ftyp" or head[8:12] not in MP4_BRANDS:
        raise field_error(field, "not an MP4 video")
