"""Recordings (/console/recordings/): public ones to staff with the right over the group, private ones to their owner."""

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from safeguard.captures.models import Recording
from safeguard.logs.models import AuditEntry
from tests.factories import CaptureFactory, RecordingFactory, StaffAccessFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def recording_of(person, **kwargs) -> Recording:
    capture = CaptureFactory(person=person)
    return RecordingFactory(capture=capture, file=ContentFile(VIDEO, name="r.mp4"), **kwargs)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_list_shows_public_recordings_of_people_the_staff_member_sees(cast):
    mine = recording_of(cast.pupil9)
    theirs = recording_of(cast.pupil10)

    html = client_for(cast.teacher9).get("/console/recordings/").content.decode()

    assert f'href="/console/recordings/{mine.uuid}/"' in html
    assert str(theirs.uuid) not in html and "Ten Pupil" not in html
    assert "1 recording." in html


def test_a_private_recording_is_only_its_owners(cast):
    private = recording_of(cast.pupil9, visibility=Recording.Visibility.PRIVATE, owner=cast.lead)

    lead, teacher = client_for(cast.lead), client_for(cast.teacher9)

    assert str(private.uuid) in lead.get("/console/recordings/").content.decode()
    assert lead.get(f"/console/recordings/{private.uuid}/").status_code == 200
    assert str(private.uuid) not in teacher.get("/console/recordings/").content.decode()
    assert teacher.get(f"/console/recordings/{private.uuid}/").status_code == 404
    assert teacher.get(f"/console/recordings/{private.uuid}/video").status_code == 404


def test_even_a_superuser_cannot_watch_someone_elses_private_recording(cast):
    private = recording_of(cast.pupil9, visibility=Recording.Visibility.PRIVATE, owner=cast.lead)

    assert client_for(cast.admin).get(f"/console/recordings/{private.uuid}/").status_code == 404


def test_recordings_need_the_view_recordings_right(cast):
    recording = recording_of(cast.pupil9)
    no_right = StaffAccessFactory(
        user=StaffUserFactory(username="nocam"), group=cast.year9, can_view_recordings=False
    ).user
    client = client_for(no_right)

    assert str(recording.uuid) not in client.get("/console/recordings/").content.decode()
    assert client.get(f"/console/recordings/{recording.uuid}/").status_code == 404
    assert client.get(f"/console/recordings/{recording.uuid}/video").status_code == 404


def test_the_watch_page_plays_the_protected_stream(cast):
    recording = recording_of(cast.pupil9)

    html = client_for(cast.teacher9).get(f"/console/recordings/{recording.uuid}/").content.decode()

    assert f'<video controls preload="metadata" src="/console/recordings/{recording.uuid}/video"' in html
    assert f'href="/console/captures/{recording.capture.uuid}/"' in html


def test_the_video_is_streamed_whole_and_in_ranges_for_seeking(cast):
    recording = recording_of(cast.pupil9)
    client = client_for(cast.teacher9)

    whole = client.get(f"/console/recordings/{recording.uuid}/video")
    part = client.get(f"/console/recordings/{recording.uuid}/video", headers={"Range": "bytes=1000-1999"})
    tail = client.get(f"/console/recordings/{recording.uuid}/video", headers={"Range": "bytes=-16"})

    assert whole.status_code == 200 and body(whole) == VIDEO
    assert whole["Content-Type"] == "video/mp4" and whole["Accept-Ranges"] == "bytes"
    assert whole["Cache-Control"] == "private, no-store"
    assert part.status_code == 206 and body(part) == VIDEO[1000:2000]
    assert part["Content-Range"] == f"bytes 1000-1999/{len(VIDEO)}"
    assert tail.status_code == 206 and body(tail) == VIDEO[-16:]


def test_watching_is_audited_once_per_viewing_not_per_range(cast):
    recording = recording_of(cast.pupil9)
    client = client_for(cast.teacher9)

    client.get(f"/console/recordings/{recording.uuid}/video", headers={"Range": "bytes=0-"})
    client.get(f"/console/recordings/{recording.uuid}/video", headers={"Range": "bytes=2000-"})
    client.get(f"/console/recordings/{recording.uuid}/video", headers={"Range": "bytes=4000-"})

    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target_type, entry.target_id) == (
        cast.teacher9,
        "recording.viewed",
        "recording",
        str(recording.uuid),
    )


def test_behind_nginx_the_video_is_handed_over_by_x_accel_redirect(cast, settings):
    settings.SAFEGUARD_X_ACCEL_REDIRECT_PREFIX = "/protected-media/"
    recording = recording_of(cast.pupil9)

    response = client_for(cast.teacher9).get(f"/console/recordings/{recording.uuid}/video")

    assert response["X-Accel-Redirect"] == f"/protected-media/{recording.file.name}"
    assert response.content == b""
    assert AuditEntry.objects.filter(action="recording.viewed").count() == 1


def test_selecting_a_group_narrows_the_list(cast):
    nine, ten = recording_of(cast.pupil9), recording_of(cast.pupil10)

    html = client_for(cast.lead).get(f"/console/recordings/?group={cast.year10.uuid}").content.decode()

    assert str(ten.uuid) in html and str(nine.uuid) not in html


def test_teacher9_cannot_see_year10_recordings(cast):
    theirs = recording_of(cast.pupil10)
    on_demand = RecordingFactory(
        capture=None,
        device=cast.device10,
        person=cast.pupil10,
        owner=cast.teacher10,
        file=ContentFile(VIDEO, name="r.mp4"),
    )
    client = client_for(cast.teacher9)

    html = client.get("/console/recordings/").content.decode()
    assert "No recordings to show" in html and "0 recordings" in html
    for recording in (theirs, on_demand):
        assert str(recording.uuid) not in html
        assert client.get(f"/console/recordings/{recording.uuid}/").status_code == 404
        assert client.get(f"/console/recordings/{recording.uuid}/video").status_code == 404
    assert client.get(f"/console/recordings/?group={cast.year10.uuid}").status_code == 404
    assert not AuditEntry.objects.exists()
