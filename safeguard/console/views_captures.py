"""Console: the captures list, one capture (screenshot, recording, workflow) and its files.

Reading needs the view-captures right over the capture's person or device; every change needs
the manage-captures right, checked by fetching the capture through the access rule with that
right: a capture outside it answers 404 to a POST exactly as to a GET, and its page shows no
buttons. Files (screenshot, preview, PDF) go through the same check before a byte is sent.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from safeguard.captures import selectors
from safeguard.captures.models import Capture, CaptureStatus
from safeguard.captures.selectors import Cursor
from safeguard.captures.services import (
    capture_add_note,
    capture_assign,
    capture_move_person_to_group,
    capture_set_status,
)
from safeguard.console.context import console_context
from safeguard.console.forms import AssignForm, LogFilterForm, MoveForm, NoteForm, StatusForm
from safeguard.core.media import serve_protected_file
from safeguard.policies.escalation import capture_record_view

CAPTURES_PER_PAGE = 50


# --- shared with the log viewer -----------------------------------------------------------------


def frame_context(request: HttpRequest, *, area: str, tab: str = "", notes: list[str]) -> dict:
    """The console frame; a `?group=` that is malformed or not the staff member's is dropped with a note.

    The frame's own rule answers 404 for such a group; on a filtered list, a bad filter is
    ignored and said so instead, like every other filter.
    """
    try:
        return console_context(request, area=area, tab=tab)
    except Http404:
        query = request.GET.copy()
        query.pop("group", None)
        request.GET = query
        notes.append("Ignored the group filter: no such group among yours.")
        return console_context(request, area=area, tab=tab)


def group_options(frame) -> list[tuple[str, str, bool]]:
    """The frame's groups as (uuid, indented name, selected) for a filter dropdown."""
    options: list[tuple[str, str, bool]] = []

    def walk(nodes, depth: int) -> None:
        for node in sorted(nodes, key=lambda n: n.group.name.lower()):
            options.append((str(node.group.uuid), "\u2003" * depth + node.group.name, node.selected))
            walk(node.children, depth + 1)

    walk(frame.user_groups, 0)
    walk(frame.device_groups, 0)
    walk(frame.personal_groups, 0)
    listed = {value for value, _label, _selected in options}
    for node in frame.watch_groups:
        if str(node.group.uuid) not in listed:
            options.append((str(node.group.uuid), node.group.name, node.selected))
    return options


def cursor_from(request: HttpRequest, notes: list[str]) -> Cursor | None:
    token = request.GET.get("after", "")
    if not token:
        return None
    cursor = Cursor.decode(token)
    if cursor is None:
        notes.append("Ignored the page position in the link: it is not one this page made. Showing the first page.")
    return cursor


def url_with(request: HttpRequest, **changes) -> str:
    """This page's URL with some query parameters replaced (None removes one)."""
    query = request.GET.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value is not None:
            query[key] = value
    encoded = query.urlencode()
    return f"{request.path}?{encoded}" if encoded else request.path


def decorate_captures(request: HttpRequest, captures: list[Capture]) -> None:
    """Give each capture of a page what its row shows: blur or not, and the recording this user may watch.

    One query for the whole page's recordings.
    """
    recordings = selectors.capture_recordings_visible(
        user=request.user, capture_ids=[capture.pk for capture in captures]
    )
    for capture in captures:
        capture.graphic = selectors.capture_is_graphic(capture=capture)
        capture.visible_recording = recordings.get(capture.pk)


# --- the list -----------------------------------------------------------------------------------


@login_required
@require_GET
def capture_list(request: HttpRequest) -> HttpResponse:
    """Captures the staff member sees, newest first, filtered; keyset pages ("next page" links)."""
    notes: list[str] = []
    context = frame_context(request, area="captures", notes=notes)
    frame = context["frame"]
    form = LogFilterForm(request.GET, user=request.user)
    notes += form.ignored_messages()
    filters = form.to_filters(group_ids=frame.selected_ids)
    cursor = cursor_from(request, notes)
    descending = (form.cleaned_data.get("order") or "desc") == "desc"
    page = selectors.capture_list_for_staff(
        user=request.user, filters=filters, cursor=cursor, limit=CAPTURES_PER_PAGE, descending=descending
    )
    decorate_captures(request, page.rows)
    return render(
        request,
        "console/captures.html",
        {
            **context,
            "form": form,
            "notes": notes,
            "groups": group_options(frame),
            "rows": page.rows,
            "total": selectors.capture_count_for_staff(user=request.user, filters=filters),
            "next_url": url_with(request, after=page.next_cursor.encode()) if page.next_cursor else "",
            "first_url": url_with(request, after=None) if cursor else "",
        },
    )


# --- one capture ----------------------------------------------------------------------------------


def _detail_context(request: HttpRequest, capture: Capture) -> dict:
    user = request.user
    can_manage = selectors.captures_for_staff(user=user, right="manage_captures").filter(pk=capture.pk).exists()
    recording = selectors.capture_recordings_visible(user=user, capture_ids=[capture.pk]).get(capture.pk)
    context = {
        "capture": capture,
        "can_manage": can_manage,
        "graphic": selectors.capture_is_graphic(capture=capture),
        "recording": recording,
        "notes_list": list(capture.notes.select_related("author").order_by("created_at", "id")),
        "history": selectors.capture_history(capture=capture),
        "share_url": request.build_absolute_uri(reverse("console:capture", args=[capture.uuid])),
        "context_url": reverse("console:logs") + f"?tab=timeline&person={capture.person.uuid}&around={capture.uuid}",
    }
    if can_manage:
        context.update(
            {
                "status_form": StatusForm(
                    initial={"status": capture.status if capture.status != CaptureStatus.NEW else ""}
                ),
                "assign_form": AssignForm(
                    assignees=selectors.capture_assignee_choices(capture=capture),
                    initial={"assignee": capture.assignee_id},
                ),
                "note_form": NoteForm(),
                "move_form": MoveForm(groups=selectors.capture_move_target_groups(user=user)),
            }
        )
    return context


@login_required
@require_GET
def capture_detail(request: HttpRequest, capture_uuid) -> HttpResponse:
    capture = selectors.capture_get_for_staff(user=request.user, capture_uuid=capture_uuid)
    # Opening the page stops the capture's escalation (safeguard.policies.escalation).
    capture_record_view(capture=capture, user=request.user)
    context = console_context(request, area="captures", group_url="/console/captures/")
    return render(request, "console/captures_detail.html", {**context, **_detail_context(request, capture)})


def _managed_capture(request: HttpRequest, capture_uuid) -> Capture:
    """The capture if the staff member may manage it, else 404 (as if it did not exist)."""
    return selectors.capture_get_for_staff(user=request.user, capture_uuid=capture_uuid, right="manage_captures")


def _back(capture: Capture, anchor: str = "") -> HttpResponse:
    return redirect(reverse("console:capture", args=[capture.uuid]) + (f"#{anchor}" if anchor else ""))


def _refused(request: HttpRequest, error: ValidationError | str) -> None:
    if isinstance(error, ValidationError):
        text = " ".join(message for message in error.messages)
    else:
        text = error
    messages.error(request, text)


def _form_errors(form) -> str:
    return " ".join(str(message) for errors in form.errors.values() for message in errors)


@login_required
@require_POST
def capture_status(request: HttpRequest, capture_uuid) -> HttpResponse:
    capture = _managed_capture(request, capture_uuid)
    form = StatusForm(request.POST)
    if not form.is_valid():
        _refused(request, _form_errors(form))
        return _back(capture, "workflow")
    try:
        changed = capture_set_status(capture=capture, status=form.cleaned_data["status"], actor=request.user)
    except ValidationError as error:
        _refused(request, error)
    else:
        if changed:
            messages.success(request, f"Status changed to {capture.get_status_display()}.")
    return _back(capture, "workflow")


@login_required
@require_POST
def capture_assignee(request: HttpRequest, capture_uuid) -> HttpResponse:
    capture = _managed_capture(request, capture_uuid)
    form = AssignForm(request.POST, assignees=selectors.capture_assignee_choices(capture=capture))
    if not form.is_valid():
        _refused(request, _form_errors(form))
        return _back(capture, "workflow")
    assignee = form.cleaned_data["assignee"]
    try:
        changed = capture_assign(capture=capture, assignee=assignee, actor=request.user)
    except ValidationError as error:
        _refused(request, error)
    else:
        if changed:
            messages.success(request, f"Assigned to {assignee.get_username()}." if assignee else "Unassigned.")
    return _back(capture, "workflow")


@login_required
@require_POST
def capture_note(request: HttpRequest, capture_uuid) -> HttpResponse:
    capture = _managed_capture(request, capture_uuid)
    form = NoteForm(request.POST)
    if not form.is_valid():
        _refused(request, _form_errors(form))
        return _back(capture, "notes")
    try:
        capture_add_note(capture=capture, author=request.user, text=form.cleaned_data["text"])
    except ValidationError as error:
        _refused(request, error)
    else:
        messages.success(request, "Note added.")
    return _back(capture, "notes")


@login_required
@require_POST
def capture_move(request: HttpRequest, capture_uuid) -> HttpResponse:
    capture = _managed_capture(request, capture_uuid)
    form = MoveForm(request.POST, groups=selectors.capture_move_target_groups(user=request.user))
    if not form.is_valid():
        _refused(request, _form_errors(form))
        return _back(capture, "actions")
    group = form.cleaned_data["group"]
    try:
        moved = capture_move_person_to_group(capture=capture, group=group, actor=request.user)
    except ValidationError as error:
        _refused(request, error)
    else:
        if moved:
            messages.success(request, f"{capture.person} is now in {group}.")
        else:
            messages.info(request, f"{capture.person} was already in {group}.")
    return _back(capture, "actions")


# --- files --------------------------------------------------------------------------------------


@login_required
@require_GET
def capture_screenshot(request: HttpRequest, capture_uuid) -> HttpResponse:
    """The full, watermarked screenshot. Every view is audited ("capture.screenshot_viewed")."""
    capture = selectors.capture_get_for_staff(user=request.user, capture_uuid=capture_uuid)
    return serve_protected_file(
        request,
        capture.screenshot,
        audit={
            "action": "capture.screenshot_viewed",
            "target": capture,
            "summary": f"Viewed the screenshot of the capture of '{capture.keyword_text}' by {capture.person}",
        },
    )


@login_required
@require_GET
def capture_preview(request: HttpRequest, capture_uuid) -> HttpResponse:
    """The small preview the lists show (not audited: lists show many; the full image is)."""
    capture = selectors.capture_get_for_staff(user=request.user, capture_uuid=capture_uuid)
    return serve_protected_file(request, capture.screenshot_preview)


@login_required
@require_GET
def capture_pdf(request: HttpRequest, capture_uuid) -> HttpResponse:
    """The capture as a PDF download (audited "capture.exported" by the exporter)."""
    # Imported here: WeasyPrint takes about 0.4 s to import, which no other page should pay.
    from safeguard.captures.pdf import capture_export_pdf

    capture = selectors.capture_get_for_staff(user=request.user, capture_uuid=capture_uuid)
    pdf = capture_export_pdf(capture=capture, exported_by=request.user)
    response = HttpResponse(pdf, content_type="application/pdf")
    filename = f"capture-{timezone.localtime(capture.occurred_at):%Y%m%d-%H%M}-{str(capture.uuid)[:8]}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
