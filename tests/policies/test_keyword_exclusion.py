"""Per-group keyword exclusions: a reason is required, both ends are audited, and the agent config honours them."""

import json

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from safeguard.captures.models import Capture
from safeguard.groups.models import Device
from safeguard.logs.models import AuditEntry
from safeguard.policies.models import GroupPolicySetting, KeywordExclusion
from safeguard.policies.selectors import agent_config_for_device
from safeguard.policies.services import KeywordExclusionError, keyword_exclusion_create, keyword_exclusion_delete
from tests.captures.test_api_captures import metadata, post_capture
from tests.factories import (
    DeviceGroupFactory,
    GroupPolicySettingFactory,
    KeywordExclusionFactory,
    KeywordFactory,
    KeywordPolicyFactory,
    MembershipFactory,
    PersonFactory,
    StaffUserFactory,
    UserGroupFactory,
    png_bytes,
)

URL = "/api/v1/agent/config"


def keyword_texts(client) -> set[str]:
    response = client.get(URL)
    assert response.status_code == 200, response.content
    return {keyword["text"] for policy in response.json()["policies"] for keyword in policy["keywords"]}


def use(device: Device, person) -> Device:
    Device.objects.filter(pk=device.pk).update(current_person=person)
    device.current_person = person
    return device


@pytest.fixture
def drugs(db):
    policy = KeywordPolicyFactory(name="Drugs", category="drugs")
    return {
        "policy": policy,
        "overdose": KeywordFactory(policy=policy, text="overdose"),
        "weed": KeywordFactory(policy=policy, text="weed"),
    }


# --- the service: reason required, audited ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["", "   \n\t "])
def test_an_exclusion_needs_a_reason(drugs, reason):
    with pytest.raises(KeywordExclusionError, match="Give the reason"):
        keyword_exclusion_create(group=UserGroupFactory(), keyword=drugs["overdose"], reason=reason)
    assert not KeywordExclusion.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_the_database_refuses_an_empty_reason(drugs):
    with pytest.raises(IntegrityError), transaction.atomic():
        KeywordExclusion.objects.create(group=UserGroupFactory(), keyword=drugs["overdose"], reason="")


@pytest.mark.django_db
def test_creating_and_deleting_an_exclusion_are_audited(drugs):
    lead = StaffUserFactory(username="lead")
    nursing = UserGroupFactory(name="Health and social care")
    exclusion = keyword_exclusion_create(
        group=nursing, keyword=drugs["overdose"], reason="  Course vocabulary in Year 12 nursing  ", created_by=lead
    )
    assert exclusion.reason == "Course vocabulary in Year 12 nursing"
    assert exclusion.created_by == lead

    created = AuditEntry.objects.get(action="policy.keyword_excluded")
    assert created.actor == lead
    assert created.target_type == "keywordexclusion"
    assert created.target_id == str(exclusion.pk)
    assert created.after == {
        "group": str(nursing.uuid),
        "group_name": "Health and social care",
        "policy": str(drugs["policy"].uuid),
        "keyword_id": drugs["overdose"].pk,
        "keyword": "overdose",
        "reason": "Course vocabulary in Year 12 nursing",
    }
    assert "Course vocabulary" in created.summary

    other = StaffUserFactory(username="dsl")
    keyword_exclusion_delete(exclusion=exclusion, deleted_by=other)
    assert not KeywordExclusion.objects.exists()
    removed = AuditEntry.objects.get(action="policy.keyword_exclusion_removed")
    assert removed.actor == other
    assert removed.before == created.after
    assert removed.after is None


@pytest.mark.django_db
def test_the_same_keyword_cannot_be_excluded_twice_for_a_group(drugs):
    group = UserGroupFactory()
    keyword_exclusion_create(group=group, keyword=drugs["weed"], reason="Gardening club")
    with pytest.raises(KeywordExclusionError, match="already excluded"):
        keyword_exclusion_create(group=group, keyword=drugs["weed"], reason="Again")
    assert AuditEntry.objects.filter(action="policy.keyword_excluded").count() == 1


@pytest.mark.django_db
def test_an_illegal_content_term_is_masked_in_the_audit_log():
    licensed = KeywordPolicyFactory(name="Illegal content", category="illegal_content", is_illegal_content=True)
    term = KeywordFactory(policy=licensed, text="secretterm")
    keyword_exclusion_create(group=UserGroupFactory(), keyword=term, reason="Test list entry")
    entry = AuditEntry.objects.get(action="policy.keyword_excluded")
    assert "secretterm" not in entry.summary
    assert "secretterm" not in json.dumps(entry.after)
    assert entry.after["keyword"].startswith("s\u2022")


# --- the agent config --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_keyword_excluded_for_the_current_persons_group_is_left_out(device_client, drugs):
    pupil = PersonFactory()
    nursing = UserGroupFactory(name="Nursing")
    MembershipFactory(group=nursing, person=pupil)
    use(device_client.device, pupil)
    assert keyword_texts(device_client) == {"overdose", "weed"}

    keyword_exclusion_create(group=nursing, keyword=drugs["overdose"], reason="Course vocabulary")

    assert keyword_texts(device_client) == {"weed"}


@pytest.mark.django_db
def test_a_keyword_excluded_for_the_devices_group_is_left_out_whoever_uses_it(device_client, drugs):
    lab = DeviceGroupFactory(name="Science lab")
    MembershipFactory(group=lab, person=None, device=device_client.device)
    KeywordExclusionFactory(group=lab, keyword=drugs["weed"], reason="Botany practicals")

    assert keyword_texts(device_client) == {"overdose"}
    use(device_client.device, PersonFactory())
    assert keyword_texts(device_client) == {"overdose"}


@pytest.mark.django_db
def test_an_exclusion_on_a_parent_group_covers_its_subgroups(device_client, drugs):
    sixth_form = UserGroupFactory(name="Sixth form")
    year12 = UserGroupFactory(name="Year 12", parent=sixth_form)
    pupil = PersonFactory()
    MembershipFactory(group=year12, person=pupil)
    use(device_client.device, pupil)
    KeywordExclusionFactory(group=sixth_form, keyword=drugs["overdose"])

    assert keyword_texts(device_client) == {"weed"}


@pytest.mark.django_db
def test_an_exclusion_for_another_group_changes_nothing(device_client, drugs):
    pupil = PersonFactory()
    MembershipFactory(group=UserGroupFactory(name="Year 9"), person=pupil)
    use(device_client.device, pupil)
    KeywordExclusionFactory(group=UserGroupFactory(name="Nursing"), keyword=drugs["overdose"])
    # A previous user's group does not count either: only the current person's groups are searched.
    assert keyword_texts(device_client) == {"overdose", "weed"}


@pytest.mark.django_db
def test_the_policy_stays_when_all_its_keywords_are_excluded_and_others_are_untouched(device_client, drugs):
    other = KeywordFactory(policy=KeywordPolicyFactory(name="Weapons"), text="overdose")  # same text, other policy
    pupil = PersonFactory()
    group = UserGroupFactory()
    MembershipFactory(group=group, person=pupil)
    use(device_client.device, pupil)
    KeywordExclusionFactory(group=group, keyword=drugs["overdose"])
    KeywordExclusionFactory(group=group, keyword=drugs["weed"])

    policies = {p["name"]: [k["id"] for k in p["keywords"]] for p in device_client.get(URL).json()["policies"]}
    assert policies == {"Drugs": [], "Weapons": [other.pk]}


@pytest.mark.django_db
def test_removing_the_exclusion_brings_the_keyword_back_and_changes_the_etag(device_client, drugs):
    pupil = PersonFactory()
    group = UserGroupFactory()
    MembershipFactory(group=group, person=pupil)
    use(device_client.device, pupil)
    exclusion = keyword_exclusion_create(group=group, keyword=drugs["weed"], reason="Gardening club")
    etag = device_client.get(URL)["ETag"]

    keyword_exclusion_delete(exclusion=exclusion)

    response = device_client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert keyword_texts(device_client) == {"overdose", "weed"}


@pytest.mark.django_db
def test_exclusions_work_with_group_applied_policies(device_client):
    pupil = PersonFactory()
    watch = UserGroupFactory(name="Watch")
    MembershipFactory(group=watch, person=pupil)
    use(device_client.device, pupil)
    policy = KeywordPolicyFactory(name="Extra scrutiny", applies_to_everyone=False)
    GroupPolicySettingFactory(group=watch, policy=policy, mode=GroupPolicySetting.Mode.APPLY)
    kept = KeywordFactory(policy=policy, text="kept")
    dropped = KeywordFactory(policy=policy, text="dropped")
    KeywordExclusionFactory(group=watch, keyword=dropped)

    config = agent_config_for_device(device=device_client.device)
    assert [[k["id"] for k in p["keywords"]] for p in config["policies"]] == [[kept.pk]]


def queries_for(device: Device) -> int:
    with CaptureQueriesContext(connection) as queries:
        agent_config_for_device(device=device)
    return len(queries)


@pytest.mark.django_db
def test_the_query_count_does_not_grow_with_exclusions_keywords_or_groups(device_client):
    pupil = PersonFactory()
    device = use(device_client.device, pupil)
    groups = [UserGroupFactory(name="G0")]
    MembershipFactory(group=groups[0], person=pupil)
    policy = KeywordPolicyFactory()
    KeywordExclusionFactory(group=groups[0], keyword=KeywordFactory(policy=policy))
    agent_config_for_device(device=device)  # the first call creates the AgentSettings row
    baseline = queries_for(device)

    for index in range(1, 6):
        group = UserGroupFactory(name=f"G{index}")
        MembershipFactory(group=group, person=pupil)
        other = KeywordPolicyFactory()
        for _ in range(3):
            KeywordExclusionFactory(group=group, keyword=KeywordFactory(policy=other))
            KeywordFactory(policy=other)

    assert queries_for(device) == baseline


# --- ingestion does not second-guess an older config -----------------------------------------------


@pytest.mark.django_db
def test_a_capture_of_an_excluded_keyword_from_an_older_config_is_still_accepted(device_client, drugs):
    pupil = PersonFactory(username="SCHOOL\\nurse12")
    group = UserGroupFactory()
    MembershipFactory(group=group, person=pupil)
    use(device_client.device, pupil)
    KeywordExclusionFactory(group=group, keyword=drugs["overdose"])

    response = post_capture(
        device_client,
        metadata("overdose", user="SCHOOL\\nurse12", policy=str(drugs["policy"].uuid)),
        screenshot=png_bytes(),
    )

    assert response.status_code == 201, response.content
    capture = Capture.objects.get()
    assert capture.keyword == drugs["overdose"]
    assert capture.policy == drugs["policy"]
