"""Console: "Export PDF" on the log viewer, the job page with its progress bar, and the download.

Specification: the button posts the log viewer's own filters; the job is queued for the staff
member who pressed it and re-run with their access; its page shows a <progress> bar that htmx
refreshes until the job is finished (no inline script), then a download link; the job, its
progress and its file answer 404 to anyone else; every download is audited.
"""

import html
import re
import uuid

import pytest
from django.test import Client

from safeguard.captures.models import ExportJob
from safeguard.logs.models import AuditEntry
from tests.factories import CaptureFactory, ExportJobFactory, KeywordFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def export_form_action(page: str) -> str:
    match = re.search(r'<form method="post" action="([^"]*/console/exports/new[^"]*)"', page)
    assert match, "no Export PDF form on the page"
    return html.unescape(match.group(1))


def test_the_log_viewer_offers_export_pdf_for_its_filtered_view(cast):
    page = client_for(cast.lead).get("/console/logs/", {"severity": "high", "person": str(cast.pupil9.uuid)})

    content = page.content.decode()
    assert "Export PDF" in content
    action = export_form_action(content)
    assert "severity=high" in action and f"person={cast.pupil9.uuid}" in action
    assert 'name="csrfmiddlewaretoken"' in content.split("/console/exports/new", 1)[1][:400]


def test_export_pdf_queues_a_job_with_the_filters_and_shows_its_page(cast, django_capture_on_commit_callbacks):
    CaptureFactory(person=cast.pupil9, device=cast.device9, keyword=KeywordFactory(text="knife", severity="high"))
    CaptureFactory(person=cast.pupil9, device=cast.device9, keyword=KeywordFactory(text="vape", severity="low"))
    client = client_for(cast.lead)
    action = export_form_action(
        client.get("/console/logs/", {"severity": "high", "group": str(cast.year9.uuid)}).content.decode()
    )

    with django_capture_on_commit_callbacks(execute=True):  # the task runs in-process after the commit
        response = client.post(action)

    job = ExportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/console/exports/{job.uuid}/"
    assert job.requested_by == cast.lead
    assert job.params["severity"] == "high" and job.params["group"] == str(cast.year9.uuid)
    job.refresh_from_db()
    assert (job.status, job.progress, job.capture_count) == ("done", 100, 1)


def test_the_context_view_of_a_capture_exports_that_window(cast):
    capture = CaptureFactory(person=cast.pupil9, device=cast.device9)
    client = client_for(cast.lead)

    client.post(f"/console/exports/new?tab=timeline&around={capture.uuid}")

    job = ExportJob.objects.get()
    assert job.params["person"] == str(cast.pupil9.uuid)
    assert job.params["from"] and job.params["to"] and job.params["order"] == "asc"


def test_a_get_does_not_create_a_job(cast):
    assert client_for(cast.lead).get("/console/exports/new").status_code == 405
    assert not ExportJob.objects.exists()


def test_the_job_page_polls_a_progress_bar_until_the_job_is_finished(cast):
    job = ExportJobFactory(requested_by=cast.lead, status=ExportJob.Status.RUNNING, progress=37)
    client = client_for(cast.lead)

    page = client.get(f"/console/exports/{job.uuid}/").content.decode()

    assert re.search(r'<progress id="export-progress-bar" max="100" value="37">', page)
    assert f'hx-get="/console/exports/{job.uuid}/progress"' in page and 'hx-trigger="every 2s"' in page
    assert "Download PDF" not in page
    assert "<script>" not in page and " onclick=" not in page  # no inline script (CSP-ready)

    fragment = client.get(f"/console/exports/{job.uuid}/progress").content.decode()
    assert 'value="37"' in fragment and "hx-trigger" in fragment and "<html" not in fragment

    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.DONE, progress=100, capture_count=3)
    done = client.get(f"/console/exports/{job.uuid}/progress").content.decode()
    assert 'value="100"' in done
    assert "hx-trigger" not in done  # finished: the region stops asking
    assert f'href="/console/exports/{job.uuid}/download"' in done


def test_a_failed_job_says_why_and_stops_polling(cast):
    job = ExportJobFactory(
        requested_by=cast.lead, status=ExportJob.Status.FAILED, error="The report could not be made."
    )

    fragment = client_for(cast.lead).get(f"/console/exports/{job.uuid}/progress").content.decode()

    assert "The report could not be made." in fragment and "hx-trigger" not in fragment


def test_the_download_is_the_requesters_alone_and_audited(cast, django_capture_on_commit_callbacks):
    CaptureFactory(person=cast.pupil9, device=cast.device9)
    lead = client_for(cast.lead)
    with django_capture_on_commit_callbacks(execute=True):
        lead.post("/console/exports/new")
    job = ExportJob.objects.get()

    response = lead.get(f"/console/exports/{job.uuid}/download")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Cache-Control"] == "private, no-store"
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    entry = AuditEntry.objects.get(action="export.downloaded")
    assert entry.actor == cast.lead and entry.target_id == str(job.uuid)

    # Everyone else, superusers included, gets 404 for the page, the progress and the file.
    for user in (cast.teacher9, cast.outsider, cast.admin):
        other = client_for(user)
        for suffix in ("", "progress", "download"):
            assert other.get(f"/console/exports/{job.uuid}/{suffix}").status_code == 404, (user, suffix)
    assert AuditEntry.objects.filter(action="export.downloaded").count() == 1


def test_an_unfinished_or_unknown_job_has_no_download(cast):
    job = ExportJobFactory(requested_by=cast.lead)
    client = client_for(cast.lead)

    assert client.get(f"/console/exports/{job.uuid}/download").status_code == 404
    assert client.get(f"/console/exports/{uuid.uuid4()}/").status_code == 404
    assert not AuditEntry.objects.filter(action="export.downloaded").exists()


def test_my_exports_lists_only_my_jobs(cast):
    mine = ExportJobFactory(requested_by=cast.teacher9)
    theirs = ExportJobFactory(requested_by=cast.lead)

    page = client_for(cast.teacher9).get("/console/exports/").content.decode()

    assert f"/console/exports/{mine.uuid}/" in page
    assert f"/console/exports/{theirs.uuid}/" not in page


def test_anonymous_visitors_are_sent_to_log_in(cast):
    job = ExportJobFactory(requested_by=cast.lead)
    client = Client()

    for url in ("/console/exports/", f"/console/exports/{job.uuid}/", f"/console/exports/{job.uuid}/download"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.post("/console/exports/new").status_code == 302
    assert ExportJob.objects.count() == 1


def test_a_fourth_export_waits_for_one_of_three_pending_to_finish(cast):
    for _ in range(3):
        ExportJobFactory(requested_by=cast.lead)  # queued: no worker runs in this test
    client = client_for(cast.lead)

    response = client.post("/console/exports/new", follow=True)

    assert response.redirect_chain[-1][0] == "/console/exports/"
    assert "You already have 3 exports being made" in response.content.decode()
    assert ExportJob.objects.count() == 3
    ExportJob.objects.filter(requested_by=cast.lead).update(status=ExportJob.Status.DONE)
    assert client.post("/console/exports/new").status_code == 302
    assert ExportJob.objects.count() == 4
