"""The person and computer filters when a staff member sees more than the console lists in a dropdown.

At trust scale (20,000 pupils) a <select> of every visible person made the log viewer a 3.5 MB
page that took 20 s; above forms.SELECT_LIMIT the filter is a text box taking a username, a name,
a hostname or an id (links keep using ids).
"""

import pytest
from django.test import Client

from safeguard.console import forms as console_forms
from tests.factories import ActivityEventFactory, DeviceFactory, MembershipFactory, PersonFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def many(cast, monkeypatch):
    monkeypatch.setattr(console_forms, "SELECT_LIMIT", 2)
    people = []
    for i in range(4):
        person = PersonFactory(username=f"SCHOOL\\scale{i}", display_name=f"Scale Pupil {i}")
        MembershipFactory(group=cast.year9, person=person)
        device = DeviceFactory(hostname=f"SCALE-PC{i}", current_person=person)
        ActivityEventFactory(person=person, device=device, data={"title": f"doc{i}", "application": "word.exe"})
        people.append(person)
    client = Client()
    client.force_login(cast.lead)
    return people, client


def test_too_many_choices_make_text_boxes_not_dropdowns(many):
    _, client = many
    page = client.get("/console/logs/", {"tab": "timeline"}).content.decode()
    assert 'name="person" placeholder="Username or name"' in page
    assert 'name="device" placeholder="Computer name"' in page
    assert "Scale Pupil 3 (" not in page  # no <option> per person


def test_a_typed_username_name_or_hostname_filters(many):
    people, client = many
    for params in ({"person": "school\\SCALE2"}, {"person": "Scale Pupil 2"}, {"device": "scale-pc2"}):
        page = client.get("/console/logs/", {"tab": "timeline", **params}).content.decode()
        assert "doc2" in page and "doc1" not in page, params
        assert "Ignored" not in page


def test_an_id_still_works_and_an_unknown_name_is_ignored_with_a_note(many, cast):
    people, client = many
    page = client.get("/console/logs/", {"tab": "timeline", "person": str(people[1].uuid)}).content.decode()
    assert "doc1" in page and "doc2" not in page
    page = client.get("/console/logs/", {"tab": "timeline", "person": "nobody at all"}).content.decode()
    assert "Ignored the person filter" in page
    assert "doc1" in page and "doc2" in page


def test_someone_outside_the_staff_members_groups_cannot_be_typed_in(many, cast):
    _, client = many
    page = client.get("/console/logs/", {"tab": "timeline", "person": cast.pupil10.username}).content.decode()
    assert "Ignored the person filter" not in page  # the lead sees Year 10
    teacher = Client()
    teacher.force_login(cast.teacher9)
    page = teacher.get("/console/logs/", {"tab": "timeline", "person": cast.pupil10.username}).content.decode()
    assert "Ignored the person filter" in page


def test_few_choices_stay_a_dropdown(cast):
    client = Client()
    client.force_login(cast.teacher9)
    page = client.get("/console/logs/", {"tab": "timeline"}).content.decode()
    assert '<select name="person"' in page
    assert "Nine Pupil (SCHOOL\\y9pupil)" in page
