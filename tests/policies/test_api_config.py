"""GET /api/v1/agent/config: which policies reach a device, the settings, and ETag/304."""

import hashlib
import json

import pytest
from rest_framework.test import APIClient

from safeguard.groups.models import Device
from safeguard.groups.services import device_token_issue
from safeguard.policies.models import AgentSettings, GroupPolicySetting
from safeguard.policies.selectors import policy_list_for_device
from tests.conftest import device_api_client
from tests.factories import (
    DeviceGroupFactory,
    GroupPolicySettingFactory,
    KeywordFactory,
    KeywordPolicyFactory,
    MembershipFactory,
    PersonFactory,
    UserGroupFactory,
)

URL = "/api/v1/agent/config"
APPLY, EXCLUDE = GroupPolicySetting.Mode.APPLY, GroupPolicySetting.Mode.EXCLUDE


def config(client) -> dict:
    response = client.get(URL)
    assert response.status_code == 200, response.content
    return response.json()


def policy_names(client) -> set[str]:
    return {policy["name"] for policy in config(client)["policies"]}


def use(device: Device, person) -> Device:
    """Make `person` the device's current user, as a heartbeat would."""
    Device.objects.filter(pk=device.pk).update(current_person=person)
    device.current_person = person
    return device


# A keyword with no spaced-letter matching and no nearby-word rule, as the agent receives it.
PLAIN = {"join_spaced": False, "requires_nearby": [], "window": 5}


def group_only_policy(name: str, *, group, mode=APPLY):
    policy = KeywordPolicyFactory(name=name, applies_to_everyone=False)
    GroupPolicySettingFactory(group=group, policy=policy, mode=mode)
    return policy


@pytest.mark.django_db
def test_the_config_lists_policies_keywords_and_settings(device_client, settings):
    settings.SAFEGUARD_CONSOLE_URL = "https://safeguard.school.test/console/"
    policy = KeywordPolicyFactory(name="Self-harm", category="self_harm", is_illegal_content=False)
    cut = KeywordFactory(policy=policy, text="cut myself", match_kind="phrase", severity="severe")
    kms = KeywordFactory(policy=policy, text="kms", match_kind="abbreviation", severity="high")
    row = AgentSettings.load()
    row.thumbnail_interval_seconds, row.confide_desktop_button = 15, True
    row.save()

    response = device_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["policies"] == [
        {
            "id": str(policy.uuid),
            "name": "Self-harm",
            "category": "self_harm",
            "illegal_content": False,
            "keywords": [
                {"id": cut.pk, "text": "cut myself", "match_kind": "phrase", "severity": "severe", **PLAIN},
                {"id": kms.pk, "text": "kms", "match_kind": "abbreviation", "severity": "high", **PLAIN},
            ],
            "allow_phrases": [],
        }
    ]
    assert body["settings"] == {
        "thumbnail_interval_seconds": 15,
        "heartbeat_interval_seconds": 60,
        "config_refresh_seconds": 300,
        "recording_seconds": 30,
        "confide_desktop_button": True,
        "console_url": "https://safeguard.school.test/console/",
    }


@pytest.mark.django_db
def test_the_pin_hash_is_never_sent(device_client):
    row = AgentSettings.load()
    row.disable_pin_hash = "pbkdf2_sha256$secret-looking-hash"
    row.save()
    assert "secret-looking-hash" not in device_client.get(URL).content.decode()


@pytest.mark.django_db
def test_version_is_the_hash_of_the_canonical_content_and_the_etag(device_client):
    KeywordFactory(text="hello")
    response = device_client.get(URL)
    body = response.json()
    content = {"policies": body["policies"], "settings": body["settings"]}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert body["version"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert response["ETag"] == f'"{body["version"]}"'
    assert not response["ETag"].startswith("W/")


@pytest.mark.django_db
def test_if_none_match_with_the_etag_gets_304_and_no_body(device_client):
    KeywordFactory()
    etag = device_client.get(URL)["ETag"]

    response = device_client.get(URL, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert device_client.get(URL, HTTP_IF_NONE_MATCH=f'"other", W/{etag}').status_code == 304


@pytest.mark.django_db
def test_a_change_changes_the_etag(device_client):
    keyword = KeywordFactory()
    etag = device_client.get(URL)["ETag"]
    keyword.severity = "low"
    keyword.save()

    response = device_client.get(URL, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response["ETag"] != etag
    assert device_client.get(URL, HTTP_IF_NONE_MATCH='"stale"').status_code == 200


@pytest.mark.django_db
def test_disabled_keywords_and_policies_are_absent(device_client):
    policy = KeywordPolicyFactory(name="Drugs")
    KeywordFactory(policy=policy, text="weed")
    KeywordFactory(policy=policy, text="retired", enabled=False)
    KeywordFactory(policy=KeywordPolicyFactory(name="Switched off", enabled=False), text="anything")

    body = config(device_client)

    assert [p["name"] for p in body["policies"]] == ["Drugs"]
    assert [k["text"] for k in body["policies"][0]["keywords"]] == ["weed"]


@pytest.mark.django_db
def test_a_year_10_policy_reaches_year_10_users_only(cast):
    group_only_policy("Year 10 only", group=cast.year10)
    KeywordPolicyFactory(name="Everyone")
    client = device_api_client(cast.device_token)

    use(cast.device, cast.pupil9)
    assert policy_names(client) == {"Everyone"}

    use(cast.device, cast.pupil10)
    assert policy_names(client) == {"Everyone", "Year 10 only"}


@pytest.mark.django_db
def test_a_policy_applied_to_a_device_group_reaches_its_devices_only(cast):
    room = DeviceGroupFactory(name="Year 10 room")
    MembershipFactory(group=room, person=None, device=cast.device10)
    group_only_policy("Room policy", group=room)
    token10 = device_token_issue(device=cast.device10)

    assert policy_names(device_api_client(token10)) == {"Room policy"}
    assert policy_names(device_api_client(cast.device_token)) == set()


@pytest.mark.django_db
def test_a_policy_applied_to_an_ancestor_group_reaches_subgroup_members(device_client):
    school = UserGroupFactory(name="Senior school")
    year10 = UserGroupFactory(name="Year 10", parent=school)
    form = UserGroupFactory(name="10B", parent=year10)
    pupil = PersonFactory()
    MembershipFactory(group=form, person=pupil)
    group_only_policy("Senior policy", group=school)

    use(device_client.device, pupil)

    assert policy_names(device_client) == {"Senior policy"}


@pytest.mark.django_db
def test_an_excluded_policy_is_absent(device_client):
    year9 = UserGroupFactory(name="Year 9")
    pupil = PersonFactory()
    MembershipFactory(group=year9, person=pupil)
    KeywordPolicyFactory(name="Gambling", applies_to_everyone=True)
    adult = KeywordPolicyFactory(name="Adult content", applies_to_everyone=True)
    GroupPolicySettingFactory(group=year9, policy=adult, mode=EXCLUDE)
    applied_elsewhere = group_only_policy("Year 9 excluded", group=UserGroupFactory(name="Year 8"))
    GroupPolicySettingFactory(group=year9, policy=applied_elsewhere, mode=EXCLUDE)

    use(device_client.device, pupil)

    assert policy_names(device_client) == {"Gambling"}


@pytest.mark.django_db
def test_a_subgroup_can_exclude_what_its_parent_applies(device_client):
    year10 = UserGroupFactory(name="Year 10")
    sixth = UserGroupFactory(name="10 Art", parent=year10)
    pupil = PersonFactory()
    MembershipFactory(group=sixth, person=pupil)
    policy = group_only_policy("Adult content", group=year10)
    GroupPolicySettingFactory(group=sixth, policy=policy, mode=EXCLUDE)

    use(device_client.device, pupil)

    assert policy_names(device_client) == set()


@pytest.mark.django_db
def test_an_explicit_apply_beats_another_user_groups_exclusion(device_client):
    """A watch group adds scrutiny even where the pupil's year group switched the policy off."""
    year9 = UserGroupFactory(name="Year 9")
    watch = UserGroupFactory(name="Watch", is_watch_group=True)
    pupil = PersonFactory()
    MembershipFactory(group=year9, person=pupil)
    MembershipFactory(group=watch, person=pupil)
    policy = KeywordPolicyFactory(name="Gambling")
    GroupPolicySettingFactory(group=year9, policy=policy, mode=EXCLUDE)
    GroupPolicySettingFactory(group=watch, policy=policy, mode=APPLY)

    use(device_client.device, pupil)

    assert policy_names(device_client) == {"Gambling"}


@pytest.mark.django_db
def test_exclusion_on_the_devices_own_group_wins_over_everything(device_client):
    staff_room = DeviceGroupFactory(name="Staff room")
    MembershipFactory(group=staff_room, person=None, device=device_client.device)
    year10 = UserGroupFactory(name="Year 10")
    pupil = PersonFactory()
    MembershipFactory(group=year10, person=pupil)
    everyone = KeywordPolicyFactory(name="Everyone policy")
    year10_policy = group_only_policy("Year 10 policy", group=year10)
    for policy in (everyone, year10_policy):
        GroupPolicySettingFactory(group=staff_room, policy=policy, mode=EXCLUDE)

    use(device_client.device, pupil)

    assert policy_names(device_client) == set()


@pytest.mark.django_db
def test_another_devices_memberships_do_not_leak_in(device_client, cast):
    """A device with no current user must not pick up every person's groups."""
    group_only_policy("Year 9 only", group=cast.year9)
    Device.objects.filter(pk=cast.device.pk).update(current_person=cast.pupil9)
    assert device_client.device.current_person_id is None
    assert policy_names(device_client) == set()


@pytest.mark.django_db
def test_query_count_does_not_grow_with_policies(device_client, django_assert_max_num_queries):
    school = UserGroupFactory(name="School")
    year = UserGroupFactory(name="Year 10", parent=school)
    pupil = PersonFactory()
    MembershipFactory(group=year, person=pupil)
    room = DeviceGroupFactory(name="Lab")
    MembershipFactory(group=room, person=None, device=device_client.device)
    use(device_client.device, pupil)

    def add_policies(count: int) -> None:
        for _ in range(count):
            policy = KeywordPolicyFactory()
            KeywordFactory.create_batch(3, policy=policy)
            GroupPolicySettingFactory(group=school, policy=KeywordPolicyFactory(applies_to_everyone=False))
            KeywordFactory.create_batch(2, policy=GroupPolicySetting.objects.latest("id").policy)

    add_policies(2)
    AgentSettings.load()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        assert len(config(device_client)["policies"]) == 4
    add_policies(20)
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = config(device_client)
    assert len(body["policies"]) == 44
    assert all(len(policy["keywords"]) in (2, 3) for policy in body["policies"])


@pytest.mark.django_db
def test_selector_returns_policies_with_only_enabled_keywords(device_client):
    policy = KeywordPolicyFactory()
    KeywordFactory(policy=policy, text="on")
    KeywordFactory(policy=policy, text="off", enabled=False)
    [found] = policy_list_for_device(device=Device.objects.get(pk=device_client.device.pk))
    assert [k.text for k in found.enabled_keywords] == ["on"]


@pytest.mark.django_db
def test_unauthenticated_config_is_refused():
    KeywordFactory(text="secret list")
    response = APIClient().get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Device"
    assert b"secret list" not in response.content


def test_config_carries_what_the_agent_engine_needs(device_client):
    from safeguard.policies.models import AllowPhrase
    from tests.factories import KeywordFactory

    keyword = KeywordFactory(text="kill", join_spaced_letters=True, requires_nearby=["myself"], nearby_window=3)
    AllowPhrase.objects.create(policy=keyword.policy, text="kill time")

    config = device_client.get("/api/v1/agent/config").json()

    policy = next(p for p in config["policies"] if p["id"] == str(keyword.policy.uuid))
    assert policy["allow_phrases"] == ["kill time"]
    assert policy["keywords"] == [
        {
            "id": keyword.pk,
            "text": "kill",
            "match_kind": "word",
            "severity": keyword.severity,
            "join_spaced": True,
            "requires_nearby": ["myself"],
            "window": 3,
        }
    ]


def test_the_agent_engine_built_from_config_honours_allow_phrases(device_client):
    from safeguard.policies.models import AllowPhrase
    from safeguard_agent.keywords.engine import KeywordEngine
    from safeguard_agent.keywords.library import config_specs
    from tests.factories import KeywordFactory

    keyword = KeywordFactory(text="kill")
    AllowPhrase.objects.create(policy=keyword.policy, text="kill time")
    keywords, allows = config_specs(device_client.get("/api/v1/agent/config").json())
    engine = KeywordEngine.build(keywords, allows)

    assert [m.keyword for m in engine.scan("i want to kill him")] == ["kill"]
    assert engine.scan("we had to kill time before the bus") == []
