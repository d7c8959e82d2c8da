"""A capture as a PDF: the evidence record a school shares with Children's Services or the police.

`capture_export_pdf` renders templates/captures/capture_pdf.html with WeasyPrint. WeasyPrint
never touches the network or the disk here: the screenshot is embedded as a data: URI and the
fetcher refuses every other URL, so hostile text in a capture (a window title, a URL, a note)
cannot make the server fetch anything even if it ever slipped past escaping.

Rendering takes about a tenth of a second, so one capture is exported synchronously; large
batches belong in a background task that calls this function per capture.
"""

import base64
import logging

from django.core.exceptions import PermissionDenied
from django.template.loader import render_to_string
from django.utils import timezone
from weasyprint import HTML, URLFetcher

from safeguard.captures.models import Capture, CaptureStatus
from safeguard.captures.selectors import capture_history, capture_is_graphic
from safeguard.core import access

logger = logging.getLogger(__name__)
# WeasyPrint reports every rendering step at INFO: keep its warnings only.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

# The screenshot formats agents send; anything else is not embedded.
_IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


class LocalOnlyURLFetcher(URLFetcher):
    """Serves data: URIs only; every other URL (http, https, file, ftp...) is refused and noted."""

    def __init__(self, **kwargs) -> None:
        super().__init__(allowed_protocols=("data",), allow_redirects=False, **kwargs)
        self.refused: list[str] = []

    def fetch(self, url, headers=None):
        if not url.lower().startswith("data:"):
            self.refused.append(url)
            logger.warning("PDF export refused to fetch %s", url[:200])
            raise ValueError("Only embedded data: URIs are served to the PDF renderer.")
        return super().fetch(url, headers)


def _screenshot_data_uri(capture: Capture) -> str:
    """The screenshot as a data: URI, or '' when there is none (or its file is gone)."""
    if not capture.screenshot or not capture.screenshot.name:
        return ""
    extension = capture.screenshot.name.rsplit(".", 1)[-1].lower()
    media_type = _IMAGE_TYPES.get(extension)
    if media_type is None:
        return ""
    try:
        with capture.screenshot.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return ""
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _status_label(value) -> str:
    try:
        return CaptureStatus(value).label
    except ValueError:
        return str(value or "")


def _status_history(history: list) -> list[dict]:
    """The status changes among the audit rows, with readable labels: [{at, by, before, after}]."""
    return [
        {
            "at": entry.created_at,
            "by": entry.actor_name or "system",
            "before": _status_label((entry.before or {}).get("status")),
            "after": _status_label((entry.after or {}).get("status")),
        }
        for entry in history
        if entry.action == "capture.status_changed"
    ]


def export_stamp(exported_by, *, at=None) -> dict:
    """Who exported a PDF and when: the template context of the footer every export carries.

    Both PDFs (one capture, and the log viewer report in safeguard.captures.exports) include
    templates/captures/pdf_footer.html with this context, so every page of every export names
    its exporter the same way.
    """
    return {
        "exported_by": exported_by,
        "exported_by_name": exported_by.get_full_name() or exported_by.get_username(),
        "exported_by_username": exported_by.get_username(),
        "exported_at": at or timezone.now(),
    }


def export_audit(
    *, action: str, exported_by, summary: str, after: dict, target=None, target_type: str = "", target_id: str = ""
) -> None:
    """The audit row of an export ("capture.exported", "logs.exported_pdf"): who took which data out."""
    from safeguard.logs.services import audit_record

    audit_record(
        action=action,
        target=target,
        target_type=target_type,
        target_id=target_id,
        actor=exported_by,
        summary=summary,
        after={"format": "pdf", **after},
    )


def render_pdf(html: str, *, url_fetcher: URLFetcher | None = None) -> bytes:
    """HTML to PDF bytes with the local-only fetcher (the one place WeasyPrint is called)."""
    return HTML(string=html, url_fetcher=url_fetcher or LocalOnlyURLFetcher()).write_pdf()


def capture_export_pdf(*, capture: Capture, exported_by, record_audit: bool = True) -> bytes:
    """The capture as a PDF for `exported_by`, who must be able to see it. Audited "capture.exported".

    Holds the screenshot, the facts (who, what, when, where, policy, keyword, severity, status,
    assignee), the context, the notes, the status history and the audit trail, with a footer on
    every page naming who exported it and when. A screenshot of an illegal-content policy is left
    out (stated in its place): copies of such material must not multiply; it stays viewable in
    the console. `record_audit=False` is for callers that audit a whole batch themselves.
    """
    if not access.scope_by_person_or_device(Capture.objects.filter(pk=capture.pk), exported_by).exists():
        raise PermissionDenied("You cannot see this capture.")
    capture = Capture.objects.select_related("person", "device", "policy", "keyword", "assignee").get(pk=capture.pk)
    history = capture_history(capture=capture)
    withheld = bool(capture.policy and capture.policy.is_illegal_content)
    html = render_to_string(
        "captures/capture_pdf.html",
        {
            "capture": capture,
            "screenshot": "" if withheld else _screenshot_data_uri(capture),
            "screenshot_withheld": withheld,
            "graphic": capture_is_graphic(capture=capture),
            "notes": list(capture.notes.select_related("author").order_by("created_at", "id")),
            "status_history": _status_history(history),
            "history": history,
            **export_stamp(exported_by),
        },
    )
    pdf = render_pdf(html)
    if record_audit:
        export_audit(
            action="capture.exported",
            target=capture,
            exported_by=exported_by,
            summary=f"Exported the capture of '{capture.keyword_text}' by {capture.person} to PDF",
            after={"bytes": len(pdf)},
        )
    return pdf
