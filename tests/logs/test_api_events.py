"""POST /api/v1/agent/events: activity event batches are stored once, whole or not at all."""

import json
import math
import re
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from safeguard.groups.models import Device, Person
from safeguard.groups.services import device_revoke
from safeguard.logs.models import ActivityEvent
from tests.conftest import device_api_client
from tests.factories import ActivityEventFactory, PersonFactory, enrolled_device

URL = "/api/v1/agent/events"

DATA_BY_TYPE = {
    "window": {"title": "Homework.docx - Word", "application": "winword.exe"},
    "website": {"url": "https://www.bbc.co.uk/bitesize", "title": "Bitesize", "browser": "msedge.exe"},
    "application": {"name": "notepad.exe", "path": "C:\\Windows\\notepad.exe", "action": "started"},
    "print": {"document": "Essay.docx", "printer": "LIB-PRN1", "pages": 3},
    "file_deleted": {"path": "C:\\Users\\jsmith\\Documents\\notes.txt"},
    "logon": {},
    "logoff": {"session": "console"},
}


def event(type_: str = "window", *, user: str = "SCHOOL\\jsmith", occurred_at=None, **overrides) -> dict:
    """One valid event of the type; keyword arguments replace its fields."""
    default_time = timezone.now() - timedelta(seconds=30)
    body = {
        "id": str(uuid.uuid4()),
        "type": type_,
        "occurred_at": occurred_at if isinstance(occurred_at, str) else (occurred_at or default_time).isoformat(),
        "user": user,
        "data": dict(DATA_BY_TYPE[type_]),
    }
    body.update(overrides)
    return body


def post(client, events):
    return client.post(URL, {"events": events}, format="json")


def assert_refused(response, field: str, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "fields"}
    assert field in body["fields"], body
    return body


# --- success ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_batch_of_every_type_is_stored(device_client):
    events = [event(type_) for type_ in DATA_BY_TYPE]
    Device.objects.filter(pk=device_client.device.pk).update(last_seen_at=timezone.now() - timedelta(hours=2))
    before = timezone.now()

    response = post(device_client, events)

    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": len(events), "duplicates": []}
    stored = {str(row.uuid): row for row in ActivityEvent.objects.select_related("person", "device")}
    assert set(stored) == {e["id"] for e in events}
    for sent in events:
        row = stored[sent["id"]]
        assert row.type == sent["type"]
        assert row.device == device_client.device
        assert row.person.username == "SCHOOL\\jsmith"
        assert row.occurred_at.isoformat() == sent["occurred_at"]
        assert row.data == sent["data"]
    device = Device.objects.get(pk=device_client.device.pk)
    assert device.last_seen_at >= before


@pytest.mark.django_db
def test_optional_data_fields_may_be_left_out(device_client):
    events = [
        event("website", data={"url": "https://example.org/"}),
        event("application", data={"name": "calc.exe", "action": "stopped"}),
        event("print", data={"document": "", "printer": "LIB-PRN1"}),
        event("logon", data={}),
    ]
    del events[3]["data"]  # a logon may carry no data at all

    response = post(device_client, events)

    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 4
    assert ActivityEvent.objects.get(uuid=events[3]["id"]).data == {}


@pytest.mark.django_db
def test_a_window_event_may_say_how_long_the_window_had_the_focus(device_client):
    sent = event("window", data={"title": "Homework.docx - Word", "application": "winword.exe", "duration_seconds": 95})

    response = post(device_client, [sent])

    assert response.status_code == 200, response.content
    assert ActivityEvent.objects.get(uuid=sent["id"]).data["duration_seconds"] == 95


@pytest.mark.django_db
@pytest.mark.parametrize("duration", [-1, 31 * 24 * 3600 + 1, "long"])
def test_a_window_duration_that_is_not_a_sensible_number_of_seconds_is_refused(device_client, duration):
    data = {"title": "x", "application": "a.exe", "duration_seconds": duration}

    response = post(device_client, [event("window", data=data)])

    assert_refused(response, "events.0.data.duration_seconds")
    assert ActivityEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_resent_batch_of_500_is_stored_once_and_reported_as_duplicates(device_client):
    events = [event() for _ in range(500)]

    first = post(device_client, events)
    second = post(device_client, events)

    assert first.status_code == 200 and second.status_code == 200
    assert first.json() == {"accepted": 500, "duplicates": []}
    assert second.json() == {"accepted": 0, "duplicates": [e["id"] for e in events]}
    assert ActivityEvent.objects.count() == 500


@pytest.mark.django_db
def test_a_partly_new_batch_stores_only_the_new_events(device_client):
    old = [event() for _ in range(3)]
    post(device_client, old)
    new = [event() for _ in range(4)]

    response = post(device_client, [new[0], old[1], new[1], new[2], old[2], new[3]])

    assert response.json() == {"accepted": 4, "duplicates": [old[1]["id"], old[2]["id"]]}
    assert ActivityEvent.objects.count() == 7


@pytest.mark.django_db
def test_an_id_already_stored_by_another_device_is_a_duplicate_not_an_error(device_client):
    theirs = ActivityEventFactory()

    response = post(device_client, [event(id=str(theirs.uuid)), event()])

    assert response.json() == {"accepted": 1, "duplicates": [str(theirs.uuid)]}
    theirs.refresh_from_db()
    assert theirs.device != device_client.device


# --- people and the device --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_person_is_created_on_first_sight_once(device_client):
    earliest = timezone.now() - timedelta(minutes=10)
    events = [
        event(user="SCHOOL\\newpupil", occurred_at=earliest + timedelta(minutes=2)),
        event(user="school\\NEWPUPIL", occurred_at=earliest),
        event(user="SCHOOL\\newpupil"),
        event(user="SCHOOL\\other"),
    ]

    post(device_client, events)
    post(device_client, [event(user="SCHOOL\\NewPupil")])

    people = Person.objects.filter(username__iexact="school\\newpupil")
    assert people.count() == 1
    person = people.get()
    assert person.username == "school\\NEWPUPIL"  # spelt as in the earliest sighting
    assert person.first_seen_at == earliest
    assert person.last_seen_at is not None
    assert Person.objects.filter(username="SCHOOL\\other").exists()
    assert ActivityEvent.objects.filter(person=person).count() == 4


@pytest.mark.django_db
def test_a_known_person_is_matched_case_insensitively(device_client):
    known = PersonFactory(username="SCHOOL\\jsmith")

    post(device_client, [event(user="school\\JSMITH")])

    assert Person.objects.count() == 1
    assert ActivityEvent.objects.get().person == known


@pytest.mark.django_db
def test_the_latest_logon_of_the_batch_becomes_the_current_person(device_client):
    now = timezone.now()
    events = [
        event("logon", user="SCHOOL\\late", occurred_at=now - timedelta(minutes=1)),
        event("logon", user="SCHOOL\\early", occurred_at=now - timedelta(minutes=20)),
        event("window", user="SCHOOL\\someoneelse", occurred_at=now - timedelta(seconds=5)),
    ]

    post(device_client, events)

    assert Device.objects.get(pk=device_client.device.pk).current_person.username == "SCHOOL\\late"


@pytest.mark.django_db
def test_a_batch_without_a_logon_leaves_the_current_person_alone(device_client):
    current = PersonFactory()
    Device.objects.filter(pk=device_client.device.pk).update(current_person=current)

    post(device_client, [event(user="SCHOOL\\visitor")])

    assert Device.objects.get(pk=device_client.device.pk).current_person == current


# --- one bad event refuses the whole batch ------------------------------------------------------


@pytest.mark.django_db
def test_one_invalid_event_rejects_the_whole_batch_and_stores_nothing(device_client):
    events = [event(user=f"SCHOOL\\pupil{i}") for i in range(10)]
    del events[3]["data"]["application"]

    response = post(device_client, events)

    body = assert_refused(response, "events.3.data.application")
    assert "events.3.data.application" in body["error"]
    assert ActivityEvent.objects.count() == 0
    assert Person.objects.count() == 0


@pytest.mark.django_db
def test_an_unknown_event_type_names_the_field(device_client):
    events = [event(), event(), event(type="keystroke")]

    response = post(device_client, events)

    assert_refused(response, "events.2.type")
    assert ActivityEvent.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["id", "type", "occurred_at", "user"])
def test_a_missing_field_is_named(device_client, field):
    broken = event()
    del broken[field]

    response = post(device_client, [event(), broken])

    assert_refused(response, f"events.1.{field}")
    assert ActivityEvent.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("type_", "data", "field"),
    [
        ("window", {"url": "https://example.org", "title": "x", "application": "a.exe"}, "events.0.data.url"),
        ("window", {"title": "x"}, "events.0.data.application"),
        ("window", {"title": "x" * 1025, "application": "a.exe"}, "events.0.data.title"),
        ("website", {"title": "no url"}, "events.0.data.url"),
        ("application", {"name": "a.exe", "action": "paused"}, "events.0.data.action"),
        ("print", {"document": "d", "printer": "p", "pages": -1}, "events.0.data.pages"),
        ("print", {"document": "d", "printer": "p", "pages": "many"}, "events.0.data.pages"),
        ("file_deleted", {}, "events.0.data.path"),
        ("file_deleted", {"path": {"nested": "object"}}, "events.0.data.path"),
        ("logon", {"keystrokes": "secret"}, "events.0.data.keystrokes"),
        ("window", ["not", "an", "object"], "events.0.data"),
    ],
)
def test_data_that_does_not_fit_the_type_is_refused(device_client, type_, data, field):
    response = post(device_client, [event(type_, data=data)])

    assert_refused(response, field)
    assert ActivityEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_user_with_control_characters_is_refused(device_client):
    assert_refused(post(device_client, [event(user="SCHOOL\\bad\x00name")]), "events.0.user")


@pytest.mark.django_db
def test_a_timestamp_far_in_the_future_is_refused(device_client):
    response = post(device_client, [event(occurred_at=timezone.now() + timedelta(days=2))])

    assert_refused(response, "events.0.occurred_at")
    assert ActivityEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_timestamp_without_a_zone_is_refused(device_client):
    naive = (timezone.now() - timedelta(minutes=1)).replace(tzinfo=None).isoformat()

    response = post(device_client, [event(occurred_at=naive)])

    body = assert_refused(response, "events.0.occurred_at")
    assert "time zone" in body["fields"]["events.0.occurred_at"][0]


@pytest.mark.django_db
def test_a_timestamp_that_is_not_a_time_is_refused(device_client):
    assert_refused(post(device_client, [event(occurred_at="yesterday")]), "events.0.occurred_at")


@pytest.mark.django_db
def test_malformed_json_is_refused_naming_the_body(device_client):
    response = device_client.generic("POST", URL, b'{"events": [', content_type="application/json")

    assert_refused(response, "body")


@pytest.mark.django_db
def test_a_body_that_is_not_an_object_is_refused_naming_the_body(device_client):
    response = device_client.generic("POST", URL, json.dumps([event()]), content_type="application/json")

    assert_refused(response, "body")


@pytest.mark.django_db
def test_a_body_that_is_not_json_is_refused(device_client):
    response = device_client.post(URL, {"events": "x"}, format="multipart")

    assert_refused(response, "content_type", status=415)


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{"events": []}, {}, {"events": {"id": "x"}}])
def test_an_empty_or_missing_batch_is_refused(device_client, body):
    response = device_client.post(URL, body, format="json")

    assert_refused(response, "events")


@pytest.mark.django_db
def test_more_than_1000_events_are_refused(device_client, settings):
    assert settings.SAFEGUARD_MAX_EVENTS_PER_BATCH == 1000
    events = [event() for _ in range(1001)]

    response = post(device_client, events)

    body = assert_refused(response, "events")
    assert "1000" in body["fields"]["events"][0]
    assert ActivityEvent.objects.count() == 0


@pytest.mark.django_db
def test_exactly_1000_events_are_accepted(device_client):
    response = post(device_client, [event() for _ in range(1000)])

    assert response.json()["accepted"] == 1000


@pytest.mark.django_db
def test_duplicate_ids_within_a_batch_are_refused(device_client):
    events = [event(), event(), event()]
    events[2]["id"] = events[0]["id"]

    response = post(device_client, events)

    body = assert_refused(response, "events.2.id")
    assert "events.0" in body["fields"]["events.2.id"][0]
    assert ActivityEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_body_over_the_size_limit_is_refused_with_413(device_client, settings):
    limit = settings.SAFEGUARD_BODY_LIMITS["/api/v1/agent/events"]
    padding = "x" * (limit + 1)

    response = device_client.generic(
        "POST", URL, json.dumps({"events": [event()], "padding": padding}), content_type="application/json"
    )

    assert_refused(response, "body", status=413)
    assert ActivityEvent.objects.count() == 0


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_no_credentials_answer_401(client):
    response = client.post(URL, {"events": [event()]}, content_type="application/json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Device"
    assert set(response.json()) == {"error", "fields"}
    assert ActivityEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_forged_token_answers_401(db):
    enrolled_device()

    response = post(device_api_client("forged-" + "x" * 40), [event()])

    assert response.status_code == 401
    assert ActivityEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_revoked_device_answers_401(device_client):
    device_revoke(device=device_client.device)

    response = post(device_client, [event()])

    assert response.status_code == 401
    assert ActivityEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_staff_session_is_not_a_device(client, cast):
    client.force_login(cast.admin)

    response = client.post(URL, {"events": [event()]}, content_type="application/json")

    assert response.status_code == 401
    assert ActivityEvent.objects.count() == 0


# --- cost ---------------------------------------------------------------------------------------


EVENT_INSERT = re.compile(r'INSERT (OR IGNORE )?INTO "logs_activityevent"')


def _queries_for_a_batch(client, size: int) -> tuple[int, int]:
    """(queries other than the event INSERTs, event INSERTs) for one batch of `size` new events."""
    with CaptureQueriesContext(connection) as queries:
        response = post(client, [event() for _ in range(size)])
    assert response.json()["accepted"] == size
    inserts = [q for q in queries.captured_queries if EVENT_INSERT.match(q["sql"])]
    return len(queries.captured_queries) - len(inserts), len(inserts)


@pytest.mark.django_db
def test_the_query_count_does_not_grow_with_the_batch_size(device_client):
    PersonFactory(username="SCHOOL\\jsmith")
    _queries_for_a_batch(device_client, 1)  # the token's last-used time is written at most once a minute

    small_other, small_inserts = _queries_for_a_batch(device_client, 1)
    large_other, large_inserts = _queries_for_a_batch(device_client, 1000)

    assert large_other == small_other
    assert small_inserts == 1
    # One INSERT, split only where the database caps the parameters of one statement (SQLite: 999).
    columns = len([f for f in ActivityEvent._meta.concrete_fields if not f.primary_key])
    max_params = connection.features.max_query_params
    assert large_inserts == (1 if max_params is None else math.ceil(1000 / (max_params // columns)))


# --- concurrency (needs a database server: two connections writing at once) ---------------------


@pytest.mark.integration
def test_two_identical_batches_at_once_store_each_event_once(postgresql_transactional_db):
    device, token = enrolled_device()
    PersonFactory(username="SCHOOL\\jsmith")
    events = [event() for _ in range(300)]
    barrier = threading.Barrier(2)
    answers: list = []

    def send() -> None:
        client = device_api_client(token)
        barrier.wait()
        try:
            answers.append(post(client, events))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [a.status_code for a in answers] == [200, 200]
    bodies = sorted((a.json() for a in answers), key=lambda b: b["accepted"])
    assert bodies[0] == {"accepted": 0, "duplicates": [e["id"] for e in events]}
    assert bodies[1] == {"accepted": 300, "duplicates": []}
    assert ActivityEvent.objects.count() == 300
