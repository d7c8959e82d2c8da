"""In the browser, with the demo school: the monitor views as the lead and as the Year 9 teacher."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from safeguard.core.demo import PUPILS
from safeguard.groups.models import Device, Person
from safeguard.groups.services import device_thumbnail_replace
from tests.browser.conftest import login
from tests.factories import png_bytes

pytestmark = pytest.mark.integration

YEAR_10_PUPILS = [name for name, year in PUPILS if year == "Year 10"]


def test_the_lead_sees_a_red_pupil_in_the_users_view(page):
    login(page, "lead")

    page.goto("/console/")

    red = page.locator("tr.person-row.has-unreviewed").filter(has_text="Chloe Green")
    expect(red).to_be_visible()
    expect(red).to_contain_text("2 unreviewed")
    expect(red).to_contain_text("2 High")
    expect(red.locator("svg.icon")).to_have_count(1)  # an icon as well as colour
    colour = red.locator(".person-name").evaluate("element => getComputedStyle(element).color")
    assert colour == "rgb(180, 35, 24)"  # --danger
    expect(page.locator("tr.person-row").filter(has_text="Oliver Bennett")).not_to_have_class("has-unreviewed")


def test_the_thumbnails_refresh_by_themselves(page):
    login(page, "lead")
    page.goto("/console/thumbnails/")
    device = Device.objects.get(hostname="HS-IT1-PC01")
    image = page.locator(f'li[data-device="{device.uuid}"] img')
    expect(image).to_be_visible()
    before = image.get_attribute("src")
    page.evaluate("window.__notReloaded = true")

    device_thumbnail_replace(
        device=device, image=SimpleUploadedFile("t.png", png_bytes(330, 206, "red")), extension="png"
    )

    expect(image).not_to_have_attribute("src", before, timeout=15_000)
    assert page.evaluate("window.__notReloaded") is True  # swapped in place, no page reload
    # The new picture (330 px wide; the demo's are 320) loads through the access-checked view.
    page.wait_for_function(
        """uuid => {
            const img = document.querySelector(`li[data-device="${uuid}"] img`);
            return img && img.complete && img.naturalWidth === 330;
        }""",
        arg=str(device.uuid),
    )


def test_a_red_bar_marks_the_computer_of_a_pupil_with_unreviewed_captures(page):
    login(page, "lead")
    daniel = Person.objects.get(display_name="Daniel Okoye")
    device = Device.objects.filter(current_person=daniel).first() or Device.objects.get(hostname="HS-LIB-PC03")
    Device.objects.filter(pk=device.pk).update(current_person=daniel)

    page.goto("/console/thumbnails/")

    tile = page.locator(f'li[data-device="{device.uuid}"]')
    expect(tile.locator(".thumb-alert")).to_contain_text("unreviewed capture")
    tile.get_by_role("link").click()
    expect(page).to_have_url(f"{page.url.split('/console/')[0]}/console/devices/{device.uuid}/")
    expect(page.get_by_role("heading", name=device.hostname)).to_be_visible()
    expect(page.locator("#now-heading + dl")).to_contain_text("Daniel Okoye")


def test_the_lead_acknowledges_an_assistance_request_from_the_live_notification(page):
    login(page, "lead")
    page.goto("/console/")

    notification = page.locator("#assistance-slot .assist").filter(has_text="Kai Edwards")
    expect(notification).to_be_visible(timeout=15_000)
    notification.get_by_role("button", name="Acknowledge").click()

    expect(page.locator("#assistance-slot")).not_to_contain_text("Kai Edwards")
    page.reload()
    page.wait_for_timeout(1500)  # let the slot load
    expect(page.locator("#assistance-slot")).not_to_contain_text("Kai Edwards")


def test_the_teacher_does_not_see_year_10_anywhere(page):
    login(page, "teacher")

    page.goto("/console/")
    tree = page.locator("#groups-tree")
    expect(tree).to_contain_text("Year 9")
    expect(tree).not_to_contain_text("Year 10")
    users = page.locator("main")
    expect(users).to_contain_text("Amelia Jones")  # Year 9
    for name in YEAR_10_PUPILS:
        expect(users).not_to_contain_text(name)

    page.goto("/console/thumbnails/")
    grid = page.locator("#thumbnail-grid")
    expect(grid.locator("li.thumb").first).to_be_visible()
    year10 = {device.hostname for device in Device.objects.filter(current_person__display_name__in=YEAR_10_PUPILS)}
    assert year10, "the demo should have Year 10 pupils at computers"
    for hostname in year10:
        expect(grid).not_to_contain_text(hostname)
    for name in YEAR_10_PUPILS:
        expect(grid).not_to_contain_text(name)
    expect(page.locator("#groups-tree")).not_to_contain_text("Year 10")
