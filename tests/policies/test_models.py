"""Constraints and helpers of keyword policies."""

import pytest
from django.db import IntegrityError, transaction

from safeguard.policies.models import AgentSettings, GroupPolicySetting, Keyword, Severity
from tests.factories import KeywordFactory, KeywordPolicyFactory, UserGroupFactory


def test_severities_are_ordered_from_low_to_severe():
    assert Severity.rank("low") < Severity.rank("medium") < Severity.rank("high") < Severity.rank("severe")
    assert Severity.at_least("high") == ["high", "severe"]


@pytest.mark.django_db
def test_a_keyword_appears_once_per_policy_ignoring_case():
    keyword = KeywordFactory(text="Self Harm")
    with pytest.raises(IntegrityError), transaction.atomic():
        Keyword.objects.create(policy=keyword.policy, text="self harm")
    Keyword.objects.create(policy=KeywordPolicyFactory(), text="self harm")  # another policy may


@pytest.mark.django_db
def test_a_policy_is_set_once_per_group():
    group, policy = UserGroupFactory(), KeywordPolicyFactory()
    GroupPolicySetting.objects.create(group=group, policy=policy)
    with pytest.raises(IntegrityError), transaction.atomic():
        GroupPolicySetting.objects.create(group=group, policy=policy, mode="exclude")


@pytest.mark.django_db
def test_agent_settings_load_returns_the_one_row():
    first = AgentSettings.load()
    first.recording_seconds = 12
    first.save()
    assert AgentSettings.load().recording_seconds == 12
    assert AgentSettings.objects.count() == 1
