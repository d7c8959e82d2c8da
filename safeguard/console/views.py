"""Console pages: monitor (users, thumbnails, computer view), recordings, Confide and assistance.

Views stay thin: they ask the access rule (safeguard.core.access) and the selectors for what
this staff member may see, render it inside the frame (safeguard.console.context), and call one
service for a change. Anything outside the staff member's groups answers 404.
"""

from functools import wraps
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from safeguard.captures.selectors import recording_get_for_staff, recording_list_for_staff
from safeguard.confide import selectors as confide_selectors
from safeguard.confide import services as confide_services
from safeguard.confide.models import ConfideReport
from safeguard.console import selectors
from safeguard.console.context import console_context
from safeguard.core import access
from safeguard.core.media import serve_protected_file
from safeguard.groups.models import CommandType
from safeguard.groups.offline import device_offline_since, offline_after
from safeguard.groups.services import device_command_request
from safeguard.policies.models import AgentSettings


def console_login_required(view):
    """`login_required` that also works for htmx polling: when the session has expired, a partial
    must not swap the login page into the console, so htmx is told to load the login page instead."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if getattr(request, "htmx", False):
            current = urlsplit(request.htmx.current_url or "")
            back = current.path + (f"?{current.query}" if current.query else "") if current.path else "/console/"
            response = HttpResponse(status=204)
            response["HX-Redirect"] = f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': back})}"
            return response
        return redirect_to_login(request.get_full_path())

    return wrapper


PEOPLE_PER_PAGE = 100
RECORDINGS_PER_PAGE = 50
CONFIDE_PER_PAGE = 50
THUMBNAIL_REFRESH_SECONDS = 5


# --- Monitor: users -----------------------------------------------------------------------------


@console_login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The users view: people in the selected group, red when they have unreviewed captures."""
    context = console_context(request, area="monitor", tab="users")
    frame = context["frame"]
    people = selectors.person_list_for_staff(
        user=request.user, selected=frame.selected, selected_ids=frame.selected_ids
    )
    page = Paginator(people, PEOPLE_PER_PAGE).get_page(request.GET.get("page"))
    page_people = list(page.object_list)
    counts = selectors.unreviewed_by_severity(user=request.user, people=page_people)
    devices = selectors.current_devices_of(user=request.user, people=page_people)
    rows = [
        {"person": person, "counts": counts.get(person.pk, []), "devices": devices.get(person.pk, [])}
        for person in page_people
    ]
    return render(request, "console/users.html", {**context, "rows": rows, "page": page})


# --- Monitor: thumbnails ------------------------------------------------------------------------


def _thumbnail_context(request: HttpRequest) -> dict:
    context = console_context(request, area="monitor", tab="thumbnails", group_url="/console/thumbnails/")
    frame = context["frame"]
    tiles = selectors.device_tiles_for_staff(
        user=request.user, selected=frame.selected, selected_ids=frame.selected_ids
    )
    return {**context, "tiles": tiles, "refresh_seconds": THUMBNAIL_REFRESH_SECONDS}


@console_login_required
@require_GET
def thumbnails(request: HttpRequest) -> HttpResponse:
    """A grid of the visible devices' screens; the grid reloads itself (htmx) every few seconds."""
    return render(request, "console/thumbnails.html", _thumbnail_context(request))


@console_login_required
@require_GET
def thumbnails_grid(request: HttpRequest) -> HttpResponse:
    """The grid alone, for the thumbnails view's polling."""
    return render(request, "console/partials/thumbnail_grid.html", _thumbnail_context(request))


@console_login_required
@require_GET
def device_thumbnail(request: HttpRequest, device_uuid) -> HttpResponse:
    """A device's latest live thumbnail, to staff who may see the device. Not audited: it is polled."""
    device = access.get_or_404(access.visible_devices(request.user), uuid=device_uuid)
    return serve_protected_file(request, device.thumbnail)


# --- Computer view ------------------------------------------------------------------------------


@console_login_required
@require_GET
def device_detail(request: HttpRequest, device_uuid) -> HttpResponse:
    """One computer: who is on it, what it is doing, its recent activity and captures."""
    device = access.get_or_404(access.visible_devices(request.user).select_related("current_person"), uuid=device_uuid)
    activity = selectors.device_activity_for_staff(user=request.user, device=device)
    can_record = access.visible_devices(request.user, "view_recordings").filter(pk=device.pk).exists()
    now = timezone.now()
    online = bool(device.last_seen_at and device.last_seen_at >= now - selectors.offline_after())
    offline_since = device_offline_since(device=device, now=now, after=offline_after())
    sections = [(event_type, label, activity.recent[event_type]) for event_type, label in selectors.ACTIVITY_SECTIONS]
    return render(
        request,
        "console/device.html",
        {
            **console_context(request, area="monitor", tab="thumbnails", group_url="/console/thumbnails/"),
            "device": device,
            "activity": activity,
            "sections": sections,
            "can_record": can_record,
            "online": online,
            "offline_since": offline_since,
            "recording_seconds": AgentSettings.load().recording_seconds or 30,
        },
    )


@console_login_required
@require_POST
def device_record(request: HttpRequest, device_uuid) -> HttpResponse:
    """Ask the device to record its screen (delivered with its next heartbeat)."""
    device = access.get_or_404(access.visible_devices(request.user, "view_recordings"), uuid=device_uuid)
    seconds = AgentSettings.load().recording_seconds or 30
    device_command_request(
        device=device, type=CommandType.RECORD_SCREEN, params={"seconds": seconds}, requested_by=request.user
    )
    messages.success(
        request, f"Asked {device.hostname} to record {seconds} seconds of its screen. It starts at its next check-in."
    )
    return redirect("console:device", device_uuid=device.uuid)


# --- Recordings ---------------------------------------------------------------------------------


@console_login_required
@require_GET
def recordings(request: HttpRequest) -> HttpResponse:
    """Recordings this staff member may watch: public ones in their groups, and their own private ones."""
    context = console_context(request, area="recordings", group_url="/console/recordings/")
    frame = context["frame"]
    found = recording_list_for_staff(user=request.user, selected=frame.selected, selected_ids=frame.selected_ids)
    page = Paginator(found, RECORDINGS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "console/recordings.html", {**context, "page": page})


@console_login_required
@require_GET
def recording_detail(request: HttpRequest, recording_uuid) -> HttpResponse:
    """The watch page: an HTML5 player over the access-checked video stream."""
    recording = recording_get_for_staff(user=request.user, recording_uuid=recording_uuid)
    return render(
        request,
        "console/recording.html",
        {**console_context(request, area="recordings", group_url="/console/recordings/"), "recording": recording},
    )


@console_login_required
@require_GET
def recording_video(request: HttpRequest, recording_uuid) -> HttpResponse:
    """The recording's bytes, with HTTP Range support so the player can seek.

    Audited once per viewing: a player asks for many ranges, so only a request from the start of
    the file (no Range, or a range starting at byte 0) writes the audit row.
    """
    recording = recording_get_for_staff(user=request.user, recording_uuid=recording_uuid)

    def audit(requested):
        if requested is not None and requested[0] != 0:
            return None
        return {
            "action": "recording.viewed",
            "target": recording,
            "summary": f"Watched the recording on {recording.device.hostname} from {recording.started_at:%Y-%m-%d %H:%M}",
        }

    return serve_protected_file(request, recording.file, content_type="video/mp4", audit=audit)


# --- Confide ------------------------------------------------------------------------------------


def _confide_context(request: HttpRequest) -> dict:
    if not access.has_right(request.user, "confide"):
        raise Http404("Not found.")
    return console_context(request, area="confide", group_url="/console/")


@console_login_required
@require_GET
def confide_list(request: HttpRequest) -> HttpResponse:
    context = _confide_context(request)
    status = request.GET.get("status", "")
    if status and status not in ConfideReport.Status.values:
        status = ""
    reports = confide_selectors.confide_report_list_for_staff(user=request.user, status=status or None)
    page = Paginator(reports, CONFIDE_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/confide_list.html",
        {**context, "page": page, "status": status, "statuses": ConfideReport.Status.choices},
    )


@console_login_required
@require_GET
def confide_detail(request: HttpRequest, report_uuid) -> HttpResponse:
    context = _confide_context(request)
    report = confide_selectors.confide_report_get_for_staff(user=request.user, report_uuid=report_uuid)
    confide_services.confide_report_record_read(report=report, reader=request.user)
    return render(
        request,
        "console/confide_detail.html",
        {
            **context,
            "report": report,
            "notes": list(report.notes.select_related("author")),
            "statuses": ConfideReport.Status.choices,
            "handlers": confide_selectors.confide_handler_choices(),
        },
    )


@console_login_required
@require_POST
def confide_update(request: HttpRequest, report_uuid) -> HttpResponse:
    """Change the status and/or handler of a report (each change audited)."""
    _confide_context(request)
    report = confide_selectors.confide_report_get_for_staff(user=request.user, report_uuid=report_uuid)
    status = request.POST.get("status", "")
    if status and status != report.status:
        if status not in ConfideReport.Status.values:
            messages.error(request, "Choose a status from the list.")
            return redirect("console:confide_detail", report_uuid=report.uuid)
        confide_services.confide_report_set_status(report=report, status=status, changed_by=request.user)
    if "handler" in request.POST:
        handler_id = request.POST.get("handler", "")
        handlers = {str(user.pk): user for user in confide_selectors.confide_handler_choices()}
        if handler_id and handler_id not in handlers:
            messages.error(request, "Choose a handler from the list.")
            return redirect("console:confide_detail", report_uuid=report.uuid)
        handler = handlers.get(handler_id)
        if (handler.pk if handler else None) != report.handler_id:
            confide_services.confide_report_set_handler(report=report, handler=handler, changed_by=request.user)
    messages.success(request, "Report updated.")
    return redirect("console:confide_detail", report_uuid=report.uuid)


@console_login_required
@require_POST
def confide_note_add(request: HttpRequest, report_uuid) -> HttpResponse:
    _confide_context(request)
    report = confide_selectors.confide_report_get_for_staff(user=request.user, report_uuid=report_uuid)
    text = request.POST.get("text", "").strip()
    if not text:
        messages.error(request, "Write the note before adding it.")
    elif len(text) > 10_000:
        messages.error(request, "A note can be at most 10,000 characters.")
    else:
        confide_services.confide_note_add(report=report, author=request.user, text=text)
        messages.success(request, "Note added.")
    return redirect("console:confide_detail", report_uuid=report.uuid)


# --- Assistance requests (the frame's live notification) ----------------------------------------


def _render_assistance(request: HttpRequest) -> HttpResponse:
    open_requests = confide_selectors.assistance_request_open_for_staff(user=request.user)
    shown = list(open_requests[:5])
    more = open_requests.count() - len(shown) if len(shown) == 5 else 0
    return render(request, "console/partials/assistance_notifications.html", {"requests": shown, "more": more})


@console_login_required
@require_GET
def assistance_notifications(request: HttpRequest) -> HttpResponse:
    """The open assistance requests of people this staff member sees (polled by every console page)."""
    return _render_assistance(request)


@console_login_required
@require_POST
def assistance_acknowledge(request: HttpRequest, request_uuid) -> HttpResponse:
    assistance = access.get_or_404(
        confide_selectors.assistance_request_open_for_staff(user=request.user, include_acknowledged=True),
        uuid=request_uuid,
    )
    confide_services.assistance_request_acknowledge(assistance=assistance, acknowledged_by=request.user)
    if request.htmx:
        return _render_assistance(request)
    messages.success(request, f"Acknowledged the request from {assistance.person}.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = "console:home"
    return redirect(back)
