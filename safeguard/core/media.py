"""Serving stored files (screenshots, thumbnails, recordings, PDFs) to staff who may see them.

Media is never at a public URL: a console view first decides access (safeguard.core.access),
then calls `serve_protected_file`. Files on local disk go one of two ways:

- Streaming (the embedded mode, `make run`): Django reads the file and sends it, honouring a
  single HTTP Range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) so a `<video>` player can seek.
  Django's FileResponse sends whole files only.
- X-Accel-Redirect (production behind nginx): when SAFEGUARD_X_ACCEL_REDIRECT_PREFIX is set,
  the answer is empty and names the file in `X-Accel-Redirect`; nginx sends it from an
  `internal` location (which also does ranges), so Python workers are not tied up streaming.

With object storage (S3_BUCKET set: S3 or MinIO, django-storages) the file is streamed from
the bucket: a Range becomes a ranged GET of just those bytes (django-storages' own file object
would download the whole recording for every seek), and X-Accel-Redirect is not used (nginx has
no disk to send from). We stream rather than redirect the browser to a presigned URL: such a URL
works for anyone who holds it until it expires (browser history, a forwarded link, proxy logs),
is fetched without our access check or audit, needs the bucket reachable from staff browsers,
and is another origin the Content-Security-Policy would have to allow (docs/deployment.md).

Every answer is `Cache-Control: private, no-store` (a shared cache or the browser's disk must
not keep a child's screenshot) and `X-Content-Type-Options: nosniff`.
"""

import mimetypes
import os
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import Storage
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _content_type(name: str, content_type: str | None) -> str:
    if content_type:
        return content_type
    guessed, _encoding = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def _content_disposition(filename: str | None, *, attachment: bool) -> str | None:
    if not filename and not attachment:
        return None
    kind = "attachment" if attachment else "inline"
    if not filename:
        return kind
    ascii_name = filename.encode("ascii", "ignore").decode().replace('"', "").replace("\\", "") or "download"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range (start, end) a `Range` header asks of a file of `size` bytes.

    None when the header is absent, malformed or asks for several ranges (then the whole file
    is sent, as RFC 9110 allows). Raises ValueError when the range cannot be satisfied (416).
    """
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last n bytes
        length = int(last)
        if length == 0 or size == 0:
            raise ValueError("unsatisfiable range")
        return max(size - length, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise ValueError("unsatisfiable range")
    return start, min(end, size - 1)


def _iter_range(handle, start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _bucket_object(storage: Storage, name: str):
    """The boto3 Object behind `name` when `storage` is an S3 bucket, loaded (size known); else None.

    Raises Http404 when the bucket has no such object.
    """
    # `__class__` sees through default_storage's lazy wrapper; boto3 is imported only for S3 media.
    if storage.__class__.__module__ != "storages.backends.s3":
        return None
    from botocore.exceptions import ClientError
    from storages.utils import clean_name

    stored_object = storage.bucket.Object(storage._normalize_name(clean_name(name)))
    try:
        stored_object.load()  # one HEAD: existence and size
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            raise Http404("No file.") from error
        raise
    return stored_object


def _iter_body(body) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(_CHUNK)
    finally:
        body.close()


def _from_bucket(request: HttpRequest, stored_object, ctype: str) -> tuple[HttpResponse, tuple[int, int] | None]:
    """Stream an object from the bucket: the whole of it, or one range fetched as a ranged GET.

    Returns the response and the byte range it answers (None: the whole file).
    """
    size = stored_object.content_length
    try:
        requested = parse_range(request.headers.get("Range", ""), size)
    except ValueError:
        response = HttpResponse(status=416, content_type="text/plain")
        response["Content-Range"] = f"bytes */{size}"
        return response, None
    if requested is None:
        response = StreamingHttpResponse(_iter_body(stored_object.get()["Body"]), content_type=ctype)
        response["Content-Length"] = str(size)
    else:
        start, end = requested
        body = stored_object.get(Range=f"bytes={start}-{end}")["Body"]
        response = StreamingHttpResponse(_iter_body(body), status=206, content_type=ctype)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    return response, requested


def serve_protected_file(
    request: HttpRequest,
    field_file: FieldFile,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    attachment: bool = False,
    audit: dict[str, Any] | Callable[[tuple[int, int] | None], dict[str, Any] | None] | None = None,
) -> HttpResponse:
    """Send the file behind `field_file` to a staff member the calling view has already authorised.

    `filename` names the download (Content-Disposition); `attachment` makes it a download rather
    than inline. `audit` is keyword arguments for `safeguard.logs.services.audit_record` (the actor
    defaults to the request's user), or a callable given the requested byte range that returns
    them or None (a video player fetches many ranges; the caller may audit only the first).
    A missing file answers 404.
    """
    if not field_file or not field_file.name:
        raise Http404("No file.")
    storage = field_file.storage
    name = field_file.name
    stored_object = _bucket_object(storage, name)
    if stored_object is None and not storage.exists(name):
        raise Http404("No file.")
    ctype = _content_type(name, content_type)
    disposition = _content_disposition(filename, attachment=attachment)
    prefix = getattr(settings, "SAFEGUARD_X_ACCEL_REDIRECT_PREFIX", "")
    requested: tuple[int, int] | None = None

    if stored_object is not None:
        response, requested = _from_bucket(request, stored_object, ctype)
        if response.status_code == 416:
            return _no_store(response)
    elif prefix:
        # nginx serves the bytes (and ranges) from its internal location; we only say which file.
        response = HttpResponse(content_type=ctype)
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(name.lstrip("/"))
        try:
            requested = parse_range(request.headers.get("Range", ""), storage.size(name))
        except ValueError:
            requested = None
    else:
        size = storage.size(name)
        try:
            requested = parse_range(request.headers.get("Range", ""), size)
        except ValueError:
            response = HttpResponse(status=416, content_type="text/plain")
            response["Content-Range"] = f"bytes */{size}"
            return _no_store(response)
        if requested is None:
            response = FileResponse(storage.open(name, "rb"), content_type=ctype)
            response["Content-Length"] = str(size)
        else:
            start, end = requested
            length = end - start + 1
            response = StreamingHttpResponse(
                _iter_range(storage.open(name, "rb"), start, length), status=206, content_type=ctype
            )
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
            response["Content-Length"] = str(length)
        response["Accept-Ranges"] = "bytes"
    if disposition:
        response["Content-Disposition"] = disposition
    elif "Content-Disposition" in response:
        del response["Content-Disposition"]

    audit_kwargs = audit(requested) if callable(audit) else audit
    if audit_kwargs:
        from safeguard.logs.services import audit_record

        audit_kwargs = dict(audit_kwargs)
        audit_kwargs.setdefault("actor", request.user if request.user.is_authenticated else None)
        audit_record(**audit_kwargs)
    return _no_store(response)


def stored_basename(field_file: FieldFile) -> str:
    """The stored file's own name (our UUID-based name, never a client's)."""
    return os.path.basename(field_file.name or "")
