"""Console: PDF exports of the log viewer, made in the background (safeguard.captures.exports).

"Export PDF" on the log viewer posts the page's own query string here; the filters are read
exactly as the log viewer reads them, stored on an ExportJob, and re-applied by the task with
the requester's access. The job's page shows a `<progress>` bar that htmx refreshes until the
job is finished, then a download link. A job is its requester's alone: anyone else gets 404 for
its page, its progress and its file, exactly as for a job that does not exist.
"""

import dataclasses

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from safeguard.captures.exports import (
    export_job_create,
    export_job_get_for_requester,
    export_jobs_for_requester,
    export_params_from_filters,
)
from safeguard.captures.models import ExportJob
from safeguard.console.forms import LogFilterForm
from safeguard.console.views_captures import frame_context
from safeguard.console.views_logs import CONTEXT_WINDOW, TABS, _around
from safeguard.core.media import serve_protected_file

JOBS_LISTED = 50


@login_required
@require_POST
def export_create(request: HttpRequest) -> HttpResponse:
    """Queue a PDF report of the log viewer's filtered view (its query string) and show its job page."""
    notes: list[str] = []
    tab = request.GET.get("tab", "captures")
    if tab not in TABS:
        tab = "captures"
    frame = frame_context(request, area="logs", tab=tab, notes=notes)["frame"]
    around = _around(request, notes) if tab == "timeline" else None
    form = LogFilterForm(request.GET, user=request.user, with_event_type=tab == "timeline")
    form.is_valid()  # invalid filters are left out, as the log viewer leaves them out
    filters = form.to_filters(group_ids=frame.selected_ids)
    if around is not None:
        filters = dataclasses.replace(
            filters,
            start=around.occurred_at - CONTEXT_WINDOW,
            end=around.occurred_at + CONTEXT_WINDOW,
            person=filters.person or around.person,
        )
    order = form.cleaned_data.get("order") or ("asc" if around is not None else "desc")
    params = export_params_from_filters(filters=filters, descending=order == "desc", group=frame.selected)
    try:
        job = export_job_create(requested_by=request.user, params=params)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("console:exports")
    return redirect("console:export", job_uuid=job.uuid)


@login_required
@require_GET
def export_list(request: HttpRequest) -> HttpResponse:
    """The staff member's own exports, newest first."""
    context = frame_context(request, area="logs", notes=[])
    jobs = list(export_jobs_for_requester(user=request.user)[:JOBS_LISTED])
    return render(request, "console/exports.html", {**context, "jobs": jobs})


@login_required
@require_GET
def export_detail(request: HttpRequest, job_uuid) -> HttpResponse:
    job = export_job_get_for_requester(user=request.user, job_uuid=job_uuid)
    context = frame_context(request, area="logs", notes=[])
    return render(request, "console/exports_detail.html", {**context, "job": job})


@login_required
@require_GET
def export_progress(request: HttpRequest, job_uuid) -> HttpResponse:
    """The progress region alone, for htmx to swap in (it stops asking once the job is finished)."""
    job = export_job_get_for_requester(user=request.user, job_uuid=job_uuid)
    return render(request, "console/exports_progress.html", {"job": job})


@login_required
@require_GET
def export_download(request: HttpRequest, job_uuid) -> HttpResponse:
    """The finished PDF, to its requester only. Every download is audited ("export.downloaded")."""
    job = export_job_get_for_requester(user=request.user, job_uuid=job_uuid)
    if job.status != ExportJob.Status.DONE:
        raise Http404("Not ready.")
    return serve_protected_file(
        request,
        job.file,
        filename=f"safeguard-report-{timezone.localtime(job.created_at):%Y%m%d-%H%M}.pdf",
        content_type="application/pdf",
        attachment=True,
        audit={
            "action": "export.downloaded",
            "target": job,
            "summary": f"Downloaded the PDF report of {job.capture_count} capture{'s' if job.capture_count != 1 else ''}",
        },
    )
