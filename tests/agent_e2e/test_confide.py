"""Confide from the tray, end to end: sent anonymously, it reaches the server with no person and no device."""

import pytest

from safeguard.confide.models import ConfideReport
from safeguard.groups.models import Person
from safeguard_agent.runtime import Agent
from safeguard_agent.testing import XvfbDisplay, find_window, focus, press_keys, type_text
from safeguard_agent.tray import TrayMenu
from tests.agent_e2e.conftest import enrol_home, read_db, wait_for
from tests.factories import enrolled_device

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def agent(live_server, tmp_path):
    device, token = enrolled_device(hostname="CONFIDE-PC")
    home = enrol_home(tmp_path / "home", server=live_server.url, device=device, token=token)
    running = Agent(home, monitors=False, evidence=False)
    running.device = device
    running.start()
    yield running
    running.stop(drain_seconds=2)


def send_from_the_tray(agent: Agent, display: XvfbDisplay, message: str, *keys: str) -> None:
    menu = TrayMenu(agent, env=display.env())
    window = menu.confide()  # what the tray's "Confide…" item runs
    focus(find_window("Confide - tell a member of staff"))
    type_text(message)
    press_keys(*keys, "ctrl+Return")
    assert window.wait(30) == 0


def test_confide_sent_anonymously_from_the_tray_arrives_with_no_person_or_device(agent):
    # The heartbeat names the logged-on user (the device's current user); wait for it, so that any
    # person created after this point would have come from the report.
    wait_for(lambda: read_db(lambda: Person.objects.exists()), timeout=30, what="the first heartbeat")
    people_before = read_db(lambda: set(Person.objects.values_list("username", flat=True)))
    with XvfbDisplay() as display:
        send_from_the_tray(agent, display, "someone is hurting my friend", "alt+e", "alt+n")

    report = wait_for(
        lambda: read_db(lambda: ConfideReport.objects.first()), timeout=30, what="the report on the server"
    )
    assert report.message == "someone is hurting my friend"
    assert report.is_anonymous is True
    assert report.about == ConfideReport.About.SOMEONE_ELSE
    assert report.person is None
    assert report.device is None
    assert (report.reported_at.minute, report.reported_at.second, report.reported_at.microsecond) == (0, 0, 0)
    assert set(Person.objects.values_list("username", flat=True)) == people_before  # nobody new on first sight


def test_confide_with_the_name_arrives_with_the_person_and_device(agent):
    with XvfbDisplay() as display:
        send_from_the_tray(agent, display, "i am being bullied")

    report = wait_for(lambda: read_db(lambda: ConfideReport.objects.first()), timeout=30, what="the report")
    assert report.is_anonymous is False
    assert report.about == ConfideReport.About.ME
    assert report.person.username == agent.user()
    assert report.device == agent.device
