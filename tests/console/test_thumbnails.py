"""The thumbnails view (/console/thumbnails/): live screens, red bars, placeholders, offline marks, access."""

import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from safeguard.captures.models import CaptureStatus
from safeguard.groups.services import device_thumbnail_replace
from tests.factories import (
    CaptureFactory,
    DeviceFactory,
    DeviceGroupFactory,
    MembershipFactory,
    StaffAccessFactory,
    png_bytes,
)

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def tile_of(html: str, device) -> str:
    marker = f'data-device="{device.uuid}"'
    assert marker in html, f"{device} is not shown"
    start = html.rindex("<li", 0, html.index(marker))
    return html[start : html.index("</li>", start)]


@pytest.fixture
def at_desks(cast):
    """Each pupil at their year's computer, each computer with a live thumbnail."""
    for device, pupil in ((cast.device9, cast.pupil9), (cast.device10, cast.pupil10)):
        device.current_person = pupil
        device.save()
        device_thumbnail_replace(device=device, image=SimpleUploadedFile("t.png", png_bytes()), extension="png")
    return cast


def test_the_grid_shows_each_visible_device_with_its_thumbnail_and_user(at_desks):
    cast = at_desks

    html = client_for(cast.lead).get("/console/thumbnails/").content.decode()

    tile = tile_of(html, cast.device9)
    assert f'src="/console/devices/{cast.device9.uuid}/thumbnail?v=' in tile
    assert "Y9-PC01" in tile and "Nine Pupil" in tile
    assert f'href="/console/devices/{cast.device9.uuid}/"' in tile  # click-through to the computer view
    assert "Online" in tile
    tile_of(html, cast.device10)


def test_a_device_whose_user_has_unreviewed_captures_gets_a_red_bar_with_text(at_desks):
    cast = at_desks
    CaptureFactory(person=cast.pupil9, device=DeviceFactory())  # on another device: still the user's
    CaptureFactory(person=cast.pupil9, status=CaptureStatus.RESOLVED_FALSE_POSITIVE)

    html = client_for(cast.lead).get("/console/thumbnails/").content.decode()

    tile = tile_of(html, cast.device9)
    assert 'class="thumb-alert"' in tile and "1 unreviewed capture" in tile
    assert "thumb-alert" not in tile_of(html, cast.device10)


def test_no_thumbnail_shows_a_placeholder_and_an_offline_device_is_marked(cast):
    cast.device9.current_person = cast.pupil9
    cast.device9.last_seen_at = timezone.now() - timedelta(hours=2)
    cast.device9.save()

    tile = tile_of(client_for(cast.teacher9).get("/console/thumbnails/").content.decode(), cast.device9)

    assert "No picture yet" in tile and "<img" not in tile
    assert "is-offline" in tile and "Offline" in tile


def test_the_grid_refreshes_itself_from_a_partial(at_desks):
    cast = at_desks
    client = client_for(cast.lead)

    page = client.get(f"/console/thumbnails/?group={cast.year9.uuid}").content.decode()
    poller = re.search(r'<div id="thumbnail-grid" data-poll-pause hx-get="([^"]+)" hx-trigger="every (\d+)s"', page)
    assert poller and poller.group(1) == f"/console/thumbnails/grid?group={cast.year9.uuid}"
    assert int(poller.group(2)) <= 10

    partial = client.get(poller.group(1)).content.decode()
    assert "groups-tree" not in partial and "<html" not in partial  # the grid only
    tile_of(partial, cast.device9)
    assert str(cast.device10.uuid) not in partial  # Year 9 selected


def test_a_new_thumbnail_changes_the_image_address(at_desks):
    cast = at_desks
    client = client_for(cast.lead)
    cast.device9.thumbnail_updated_at = timezone.now() - timedelta(minutes=1)
    cast.device9.save()
    before = re.search(
        r"thumbnail\?v=(\d+)", tile_of(client.get("/console/thumbnails/grid").content.decode(), cast.device9)
    )

    device_thumbnail_replace(
        device=cast.device9, image=SimpleUploadedFile("t.png", png_bytes(colour="red")), extension="png"
    )
    after = re.search(
        r"thumbnail\?v=(\d+)", tile_of(client.get("/console/thumbnails/grid").content.decode(), cast.device9)
    )

    assert before.group(1) != after.group(1)


def test_the_thumbnail_file_is_served_privately_to_staff_who_see_the_device(at_desks):
    cast = at_desks

    response = client_for(cast.teacher9).get(f"/console/devices/{cast.device9.uuid}/thumbnail")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == png_bytes()
    assert response["Cache-Control"] == "private, no-store"
    assert response["Content-Type"] == "image/png"


def test_a_device_without_a_thumbnail_answers_404_for_its_file(cast):
    cast.device9.current_person = cast.pupil9
    cast.device9.save()

    assert client_for(cast.teacher9).get(f"/console/devices/{cast.device9.uuid}/thumbnail").status_code == 404


def test_a_device_group_selects_its_devices_and_a_user_group_the_devices_its_people_use(at_desks):
    cast = at_desks
    suite = DeviceGroupFactory(name="IT Suite")
    MembershipFactory(group=suite, person=None, device=cast.device10)
    StaffAccessFactory(user=cast.lead, group=suite)
    client = client_for(cast.lead)

    in_suite = client.get(f"/console/thumbnails/grid?group={suite.uuid}").content.decode()
    year9 = client.get(f"/console/thumbnails/grid?group={cast.year9.uuid}").content.decode()

    assert str(cast.device10.uuid) in in_suite and str(cast.device9.uuid) not in in_suite
    assert str(cast.device9.uuid) in year9 and str(cast.device10.uuid) not in year9


def test_through_a_device_group_the_red_bar_counts_only_captures_in_scope(at_desks):
    """An IT technician sees the suite's computers, and captures made on them, but not the pupil's others."""
    cast = at_desks
    suite = DeviceGroupFactory(name="IT Suite")
    MembershipFactory(group=suite, person=None, device=cast.device10)
    technician = StaffAccessFactory(group=suite).user
    CaptureFactory(person=cast.pupil10, device=cast.device10)
    CaptureFactory(person=cast.pupil10)  # elsewhere: hidden from the technician
    CaptureFactory(person=cast.pupil10)

    tile = tile_of(client_for(technician).get("/console/thumbnails/").content.decode(), cast.device10)

    assert "1 unreviewed capture" in tile


def test_teacher9_cannot_see_year10_devices_thumbnails_or_counts(at_desks):
    cast = at_desks
    CaptureFactory(person=cast.pupil10, device=cast.device10)
    client = client_for(cast.teacher9)

    for url in ("/console/thumbnails/", "/console/thumbnails/grid"):
        html = client.get(url).content.decode()
        assert str(cast.device10.uuid) not in html and "Y10-PC01" not in html and "Ten Pupil" not in html
        assert "thumb-alert" not in html
    assert client.get(f"/console/devices/{cast.device10.uuid}/thumbnail").status_code == 404
    assert client.get(f"/console/thumbnails/grid?group={cast.year10.uuid}").status_code == 404


def test_a_revoked_device_is_not_shown(cast):
    cast.device9.current_person = cast.pupil9
    cast.device9.revoked_at = timezone.now()
    cast.device9.thumbnail.save("x.png", ContentFile(png_bytes()))
    cast.device9.save()

    assert str(cast.device9.uuid) not in client_for(cast.teacher9).get("/console/thumbnails/").content.decode()
