"""Device tokens: per-token rate limits on the agent API, and a revoked device's agent keeping its
outbox until it is enrolled again (the real agent's Outbox, Sender and ApiClient against a live
server).

Elsewhere (not repeated here): tokens stored as SHA-256 hashes and refused once revoked or
rotated (tests/core/test_authentication.py), revoke and rotate from the admin
(tests/groups/test_admin.py), enrolment codes single-use or capped, expiring, revocable
(tests/groups/test_api_enrol.py, tests/groups/test_create_enrolment_code.py), the agent's own
handling of 401 and 429 (agent/tests/test_outbox.py, agent/tests/test_runtime.py).
"""

import uuid
from datetime import UTC, datetime

import pytest

from safeguard.groups.models import DeviceToken
from safeguard.groups.services import device_enrol, device_revoke, enrolment_code_create
from safeguard.logs.models import ActivityEvent
from safeguard_agent.client import ApiClient, Outcome
from safeguard_agent.outbox import Outbox, Sender
from tests.conftest import device_api_client
from tests.factories import enrolled_device

HEARTBEAT = "/api/v1/agent/heartbeat"


@pytest.fixture
def rate(settings):
    def set_rate(value: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"agent_device": value},
        }

    return set_rate


@pytest.mark.django_db
def test_past_its_limit_a_token_gets_429_with_retry_after_in_the_error_shape(rate):
    rate("3/min")
    _, token = enrolled_device()
    client = device_api_client(token)

    answers = [client.post(HEARTBEAT, {}, format="json") for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert set(refused.json()) == {"error", "fields"}
    assert "throttled" in refused.json()["error"].lower()
    assert 0 < int(refused["Retry-After"]) <= 60


@pytest.mark.django_db
def test_the_limit_is_per_token(rate):
    rate("2/min")
    _, busy = enrolled_device(hostname="PC-BUSY")
    _, quiet = enrolled_device(hostname="PC-QUIET")
    for _ in range(3):
        device_api_client(busy).post(HEARTBEAT, {}, format="json")

    assert device_api_client(busy).post(HEARTBEAT, {}, format="json").status_code == 429
    # Another device, behind the same school address, is not slowed by it.
    assert device_api_client(quiet).post(HEARTBEAT, {}, format="json").status_code == 200


@pytest.mark.django_db
def test_an_unknown_token_is_refused_401_not_throttled(rate):
    rate("1/min")
    client = device_api_client("not-a-token")

    assert [client.post(HEARTBEAT, {}, format="json").status_code for _ in range(3)] == [401, 401, 401]


@pytest.mark.django_db
def test_each_token_belongs_to_one_device_and_is_stored_only_as_its_hash():
    device, token = enrolled_device()

    stored = DeviceToken.objects.get(device=device)
    assert stored.token_hash != token and token not in stored.token_hash
    assert DeviceToken._meta.get_field("device").null is False
    assert DeviceToken._meta.get_field("token_hash").unique


def window_event(n: int) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "window",
        "occurred_at": datetime.now(UTC).isoformat(),
        "user": "SCHOOL\\pupil",
        "data": {"title": f"Document {n} - Word", "application": "winword.exe"},
    }


def drain(sender: Sender, outbox: Outbox) -> list[float | None]:
    """Send until the outbox is empty or the sender asks to wait; the delays it asked for."""
    delays = []
    for _ in range(20):
        delay = sender.send_once()
        delays.append(delay)
        if delay is None or delay > 0 or outbox.depth() == 0:
            break
    return delays


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_revoked_device_gets_401_and_its_agent_keeps_everything_until_re_enrolled(live_server, tmp_path):
    code = enrolment_code_create(max_uses=2)[1]
    device, token = device_enrol(code=code, hostname="Y9-PC01", os="Windows 11", agent_version="1.0")
    outbox = Outbox(tmp_path / "outbox.db")
    client = ApiClient(live_server.url, token)
    sender = Sender(outbox, client, unauthorized_delay=60)
    try:
        events = [window_event(n) for n in range(5)]
        outbox.put_many("event", [(event["id"], event) for event in events[:2]])
        drain(sender, outbox)
        assert ActivityEvent.objects.filter(device=device).count() == 2

        device_revoke(device=device)
        outbox.put_many("event", [(event["id"], event) for event in events[2:]])
        assert client.heartbeat({}).outcome is Outcome.UNAUTHORIZED
        delays = drain(sender, outbox)

        assert delays[-1] and delays[-1] > 0  # waits for a new token instead of dropping anything
        assert sender.unauthorized
        assert outbox.depth() == 3 and outbox.dead_items() == []
        assert ActivityEvent.objects.filter(device=device).count() == 2

        # Enrolled again (a new device record and token): what waited is delivered, once each.
        new_device, new_token = device_enrol(code=code, hostname="Y9-PC01", os="Windows 11", agent_version="1.0")
        client.token = new_token
        drain(sender, outbox)
        assert outbox.depth() == 0
        assert ActivityEvent.objects.filter(device=new_device).count() == 3
        assert ActivityEvent.objects.filter(uuid__in=[event["id"] for event in events]).count() == 5
    finally:
        client.close()
        outbox.close()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_throttled_agent_keeps_its_items_and_backs_off_for_retry_after(live_server, tmp_path, rate):
    rate("1/min")
    _, token = enrolled_device()
    outbox = Outbox(tmp_path / "outbox.db")
    client = ApiClient(live_server.url, token)
    sender = Sender(outbox, client, backoff_base=0.01, backoff_cap=300)
    try:
        assert client.heartbeat({}).ok  # the minute's one request
        event = window_event(1)
        outbox.put("event", event, item_id=event["id"])

        delay = sender.send_once()

        assert outbox.depth() == 1 and outbox.dead_items() == []
        assert delay is not None and delay >= 1  # Retry-After, not the 0.01 s base back-off
        assert not ActivityEvent.objects.filter(uuid=event["id"]).exists()
    finally:
        client.close()
        outbox.close()


@pytest.mark.django_db
def test_a_new_enrolment_code_in_the_admin_expires_in_a_week_unless_changed(superuser_client):
    from datetime import timedelta

    from django.utils import timezone

    from safeguard.groups.forms import EnrolmentCodeForm

    proposed = EnrolmentCodeForm().initial["expires_at"]
    assert timedelta(days=6, hours=23) < proposed - timezone.now() <= timedelta(days=7)
    page = superuser_client.get("/admin/groups/enrolmentcode/add/").content.decode()
    assert f'name="expires_at_0" value="{timezone.localtime(proposed):%d/%m/%Y}"' in page


@pytest.mark.django_db
def test_confide_is_not_counted_so_no_trace_of_an_anonymous_report_is_kept(rate):
    from django.core.cache import cache

    rate("1/min")
    _, token = enrolled_device()
    client = device_api_client(token)
    stored = DeviceToken.objects.get()
    key = f"throttle_agent_device_{stored.token_hash}"
    cache.delete(key)

    for _ in range(3):
        response = client.post(
            "/api/v1/agent/confide",
            {
                "id": str(uuid.uuid4()),
                "anonymous": True,
                "about": "someone_else",
                "message": "Someone is hurt at break.",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
            format="json",
        )
        assert response.status_code in (200, 201), response.content

    assert cache.get(key) is None
    # Other endpoints are still counted (and limited) for the same token.
    assert client.post(HEARTBEAT, {}, format="json").status_code == 200
    assert cache.get(key)  # (the key this test watches is the one the limit uses)
    assert client.post(HEARTBEAT, {}, format="json").status_code == 429
