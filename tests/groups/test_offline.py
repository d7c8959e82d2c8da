"""Offline devices: "Offline since …" in the console, and one email to IT staff per outage."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from safeguard.groups import tasks
from safeguard.groups.models import Device
from safeguard.groups.offline import OUTAGE_ALERT_HORIZON, device_offline_since, devices_offline_alert
from safeguard.groups.services import device_touch
from safeguard.policies.models import AgentSettings, DeliveryStatus, DeviceOutage
from tests.factories import DeviceFactory, DeviceGroupFactory, MembershipFactory

AFTER = timedelta(minutes=15)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def silent_for(device: Device, minutes: float) -> Device:
    Device.objects.filter(pk=device.pk).update(last_seen_at=timezone.now() - timedelta(minutes=minutes))
    device.refresh_from_db()
    return device


def it_addresses(*addresses: str, minutes: int = 15) -> AgentSettings:
    row = AgentSettings.load()
    row.offline_alert_addresses = "\n".join(addresses)
    row.offline_after_minutes = minutes
    row.save()
    return row


def tile_of(html: str, device: Device) -> str:
    match = re.search(rf'<li class="thumb[^"]*" data-device="{device.uuid}">.*?</li>', html, re.S)
    assert match, f"no tile for {device.hostname}"
    return match.group(0)


# --- when a device counts as offline -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_device_is_offline_from_its_last_report_once_silent_longer_than_the_setting():
    now = timezone.now()
    device = DeviceFactory(last_seen_at=now - AFTER - timedelta(seconds=1))

    assert device_offline_since(device=device, now=now, after=AFTER) == device.last_seen_at
    assert device_offline_since(device=device, now=now, after=AFTER + timedelta(minutes=1)) is None
    device.revoked_at = now
    assert device_offline_since(device=device, now=now, after=AFTER) is None
    never_reported = DeviceFactory(last_seen_at=None, enrolled_at=now - timedelta(hours=1))
    assert device_offline_since(device=never_reported, now=now, after=AFTER) == never_reported.enrolled_at


# --- the console -------------------------------------------------------------------------------------


def at_desks(cast) -> None:
    for device, pupil in ((cast.device9, cast.pupil9), (cast.device10, cast.pupil10)):
        device.current_person = pupil
        device.save()


@pytest.mark.django_db
def test_thumbnails_flag_devices_silent_longer_than_the_setting_with_offline_since(cast):
    at_desks(cast)
    down = silent_for(cast.device9, 20)

    html = client_for(cast.lead).get("/console/thumbnails/").content.decode()

    tile = tile_of(html, cast.device9)
    since = timezone.localtime(down.last_seen_at)
    assert "is-down" in tile and f'Offline since <time datetime="{since.isoformat()}' in tile
    assert f"{since:%H:%M}</time>" in tile
    assert "Offline since" not in tile_of(html, cast.device10) and "is-down" not in tile_of(html, cast.device10)


@pytest.mark.django_db
def test_a_device_that_missed_a_beat_is_offline_but_not_flagged_and_the_setting_moves_the_line(cast):
    cast.device9.current_person = cast.pupil9
    cast.device9.save()
    silent_for(cast.device9, 5)
    client = client_for(cast.lead)

    tile = tile_of(client.get("/console/thumbnails/").content.decode(), cast.device9)
    assert "Offline" in tile and "Offline since" not in tile

    silent_for(cast.device9, 20)
    it_addresses(minutes=30)
    tile = tile_of(client.get("/console/thumbnails/grid").content.decode(), cast.device9)
    assert "Offline since" not in tile


@pytest.mark.django_db
def test_the_computer_view_says_offline_since(cast):
    at_desks(cast)
    down = silent_for(cast.device9, 40)

    html = client_for(cast.lead).get(f"/console/devices/{cast.device9.uuid}/").content.decode()

    assert f'Offline since <time datetime="{timezone.localtime(down.last_seen_at).isoformat()}' in html


# --- the admin setting ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_sets_the_offline_time_and_checks_the_addresses(cast):
    client = client_for(cast.admin)
    row = AgentSettings.load()
    url = reverse("admin:policies_agentsettings_change", args=[row.pk])
    form = {
        "thumbnail_interval_seconds": "10",
        "heartbeat_interval_seconds": "60",
        "config_refresh_seconds": "300",
        "recording_seconds": "30",
        "new_pin": "",
        "offline_after_minutes": "20",
    }

    refused = client.post(url, {**form, "offline_alert_addresses": "it@school.test\nnot an address"})
    assert "Not an email address: not an address" in refused.content.decode()
    accepted = client.post(url, {**form, "offline_alert_addresses": " it@school.test \n\n tech@school.test"})

    assert accepted.status_code == 302
    row.refresh_from_db()
    assert (row.offline_after_minutes, row.offline_alert_addresses) == (20, "it@school.test\ntech@school.test")
    client.post(url, {**form, "offline_after_minutes": "", "offline_alert_addresses": ""})
    row.refresh_from_db()
    assert row.offline_after_minutes == 20  # left empty: kept


# --- the email to IT staff ------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_addresses_nobody_is_emailed(smtp):
    silent_for(DeviceFactory(), 60)

    assert devices_offline_alert() == 0
    assert smtp.messages == [] and not DeviceOutage.objects.exists()


@pytest.mark.django_db
def test_it_staff_get_one_email_per_outage_naming_computers_not_pupils(cast, smtp):
    it_addresses("it@school.test", "tech@school.test")
    suite = DeviceGroupFactory(name="IT Suite 1")
    MembershipFactory(group=suite, person=None, device=cast.device9)
    cast.device9.current_person = cast.pupil9
    cast.device9.save()
    silent_for(cast.device9, 20)
    silent_for(cast.device10, 90)
    DeviceFactory(hostname="STILL-ON")
    silent_for(DeviceFactory(hostname="RETIRED", revoked_at=timezone.now()), 90)

    assert devices_offline_alert() == 2
    assert devices_offline_alert() == 0
    assert devices_offline_alert(now=timezone.now() + timedelta(minutes=5)) == 0

    [mail] = smtp.messages
    assert sorted(mail.recipients) == ["it@school.test", "tech@school.test"]
    assert mail.subject == "[Safeguard] 2 computers are offline"
    text = mail.text()
    assert "Y9-PC01 (IT Suite 1)" in text and "Y10-PC01" in text
    assert "STILL-ON" not in text and "RETIRED" not in text
    assert "Nine Pupil" not in text and "y9pupil" not in text and "Nine Pupil" not in mail.html()
    assert "more than 15 minutes" in text
    assert set(DeviceOutage.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}


@pytest.mark.django_db
def test_a_device_that_comes_back_and_goes_quiet_again_is_a_new_outage(cast, smtp):
    it_addresses("it@school.test")
    silent_for(cast.device9, 20)
    assert devices_offline_alert() == 1

    device_touch(device=cast.device9)  # it reports again
    assert devices_offline_alert() == 0
    silent_for(cast.device9, 16)  # ... and goes quiet again

    assert devices_offline_alert() == 1
    assert [m.subject for m in smtp.messages] == ["[Safeguard] Y9-PC01 is offline"] * 2
    assert DeviceOutage.objects.filter(device=cast.device9).count() == 2


@pytest.mark.django_db
def test_outages_older_than_the_horizon_are_not_emailed(smtp):
    it_addresses("it@school.test")
    silent_for(DeviceFactory(), (OUTAGE_ALERT_HORIZON + timedelta(minutes=1)).total_seconds() / 60)

    assert devices_offline_alert() == 0
    assert smtp.messages == []


@pytest.mark.django_db
def test_an_smtp_failure_leaves_the_outage_for_the_next_check(cast, smtp, settings):
    it_addresses("it@school.test")
    silent_for(cast.device9, 20)
    settings.EMAIL_PORT = 1

    with pytest.raises(OSError):
        devices_offline_alert()

    outage = DeviceOutage.objects.get()
    assert (outage.status, outage.claimed_by, outage.attempts) == (DeliveryStatus.PENDING, "", 1)
    settings.EMAIL_PORT = smtp.port
    assert devices_offline_alert() == 1
    assert len(smtp.messages) == 1


# --- a real worker ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_module_worker_env(smtp_server) -> dict[str, str]:
    return smtp_server.worker_env()


@pytest.mark.integration
def test_the_beat_task_emails_an_outage_once_on_a_real_worker(module_celery_worker, smtp, cast):
    it_addresses("it@school.test")
    silent_for(cast.device9, 30)

    for _ in range(3):
        module_celery_worker.wait_for_task(tasks.devices_offline_check.delay().id)

    [mail] = smtp.wait_for(1, log=module_celery_worker.log)
    assert mail.subject == "[Safeguard] Y9-PC01 is offline"
    assert "https://safeguard.test/console/thumbnails/" in mail.text()
    assert len(smtp.messages) == 1
    assert DeviceOutage.objects.get().status == DeliveryStatus.SENT
