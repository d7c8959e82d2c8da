"""Reads for keyword policies: which apply to a device, and the config an agent downloads."""

import hashlib
import json
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, Q

from safeguard.groups.models import Device, MonitoringGroup
from safeguard.groups.selectors import device_group_ids_direct, group_ancestor_chains
from safeguard.policies.models import (
    AgentSettings,
    AllowPhrase,
    GroupPolicySetting,
    Keyword,
    KeywordExclusion,
    KeywordPolicy,
)


def _branch_verdicts(chains: list[list[int]], modes: dict[int, dict[int, str]]) -> dict[int, set[str]]:
    """Per policy, the verdicts ("apply"/"exclude") of the given branches, nearest setting first."""
    verdicts: dict[int, set[str]] = {}
    for chain in chains:
        decided: dict[int, str] = {}
        for group_id in chain:  # the group itself, then its ancestors: the nearest setting wins
            for policy_id, mode in modes.get(group_id, {}).items():
                decided.setdefault(policy_id, mode)
        for policy_id, mode in decided.items():
            verdicts.setdefault(policy_id, set()).add(mode)
    return verdicts


def policy_list_for_device(*, device: Device) -> list[KeywordPolicy]:
    """The enabled keyword policies that apply to this device and its current user, keywords prefetched.

    The rule, for each policy:

    * The groups that count are the device's own groups and its current person's groups
      (`device.current_person`; people who used it earlier are not searched for, to keep this
      cheap). Each such group is a *branch*: the group and its ancestors.
    * A branch's verdict is the setting (apply or exclude) on the group nearest to the member,
      so a subgroup can exclude what its parent applies, or apply what its parent excludes.
    * **Exclude wins on the device's own groups**: if any device branch says exclude, the policy
      is off for this device, whoever is logged on (e.g. a staff-room PC).
    * Otherwise an explicit apply in any branch switches it on — an apply beats a person-group
      exclude, so a watch group can add scrutiny that another of the pupil's groups turned off.
    * Otherwise a policy with `applies_to_everyone` is on unless a person branch excludes it.

    Only enabled policies and (in the prefetched `enabled_keywords`) enabled keywords count, less the
    keywords excluded (KeywordExclusion) for any group in those branches.
    Query count does not grow with the number of policies or keywords, only with tree depth.
    """
    device_groups, person_groups = device_group_ids_direct(device=device)
    chains = group_ancestor_chains(group_ids=device_groups | person_groups)
    every_group = {group_id for chain in chains.values() for group_id in chain}

    modes: dict[int, dict[int, str]] = {}
    if every_group:
        for group_id, policy_id, mode in GroupPolicySetting.objects.filter(group_id__in=every_group).values_list(
            "group_id", "policy_id", "mode"
        ):
            modes.setdefault(group_id, {})[policy_id] = mode

    device_verdicts = _branch_verdicts([chains[g] for g in device_groups if g in chains], modes)
    person_verdicts = _branch_verdicts([chains[g] for g in person_groups if g in chains], modes)
    apply, exclude = GroupPolicySetting.Mode.APPLY, GroupPolicySetting.Mode.EXCLUDE
    device_excluded = {p for p, seen in device_verdicts.items() if exclude in seen}
    applied = {p for verdicts in (device_verdicts, person_verdicts) for p, seen in verdicts.items() if apply in seen}
    person_excluded = {p for p, seen in person_verdicts.items() if exclude in seen}

    # Keywords a group switched off (KeywordExclusion): an exclusion on any group of either kind of
    # branch, or on an ancestor of one, counts, as a group's members include its subgroups' members.
    excluded_keywords: set[int] = set()
    if every_group:
        excluded_keywords = set(
            KeywordExclusion.objects.filter(group_id__in=every_group).values_list("keyword_id", flat=True)
        )
    enabled_keywords = Keyword.objects.filter(enabled=True).exclude(pk__in=excluded_keywords).order_by("text", "id")
    return list(
        KeywordPolicy.objects.filter(enabled=True)
        .filter(Q(pk__in=applied) | (Q(applies_to_everyone=True) & ~Q(pk__in=person_excluded)))
        .exclude(pk__in=device_excluded)
        .prefetch_related(
            Prefetch("keywords", queryset=enabled_keywords, to_attr="enabled_keywords"),
            Prefetch("allow_phrases", queryset=AllowPhrase.objects.order_by("text", "id"), to_attr="allow_list"),
        )
        .order_by("name", "pk")
    )


def agent_settings_for_device(*, device: Device) -> dict[str, Any]:
    """The settings block of the agent config (the same for every device today)."""
    row = AgentSettings.load()
    return {
        "thumbnail_interval_seconds": row.thumbnail_interval_seconds,
        "heartbeat_interval_seconds": row.heartbeat_interval_seconds,
        "config_refresh_seconds": row.config_refresh_seconds,
        "recording_seconds": row.recording_seconds,
        "confide_desktop_button": row.confide_desktop_button,
        "console_url": settings.SAFEGUARD_CONSOLE_URL,
    }


def _keyword_for_agent(keyword: Keyword) -> dict[str, Any]:
    """A keyword as the agent's engine reads it (safeguard_agent.keywords.library.config_specs)."""
    return {
        "id": keyword.pk,
        "text": keyword.text,
        "match_kind": keyword.match_kind,
        "severity": keyword.severity,
        "join_spaced": keyword.join_spaced_letters,
        "requires_nearby": list(keyword.requires_nearby or []),
        "window": keyword.nearby_window,
    }


def agent_config_for_device(*, device: Device) -> dict[str, Any]:
    """What `GET /api/v1/agent/config` returns: policies, settings, and a version that hashes both.

    The version is the SHA-256 of the canonical JSON (sorted keys, no spaces) of the policies
    and settings, so it changes exactly when what the agent would receive changes; it doubles
    as the response's strong ETag.
    """
    policies = [
        {
            "id": str(policy.uuid),
            "name": policy.name,
            "category": policy.category,
            "illegal_content": policy.is_illegal_content,
            "keywords": [_keyword_for_agent(keyword) for keyword in policy.enabled_keywords],
            "allow_phrases": [phrase.text for phrase in policy.allow_list],
        }
        for policy in policy_list_for_device(device=device)
    ]
    content = {"policies": policies, "settings": agent_settings_for_device(device=device)}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {"version": hashlib.sha256(canonical.encode()).hexdigest(), **content}


def policy_list_for_group(*, group: MonitoringGroup) -> tuple[list[KeywordPolicy], set[int]]:
    """The enabled policies a member of `group` gets, and the keyword ids excluded for it.

    The device rule of `policy_list_for_device` with one branch (the group and its ancestors): the
    nearest apply/exclude setting decides, else `applies_to_everyone`. For the admin's "test text"
    page, to show what a group's devices would match.
    """
    chain = group_ancestor_chains(group_ids={group.pk}).get(group.pk, [group.pk])
    modes: dict[int, dict[int, str]] = {}
    for group_id, policy_id, mode in GroupPolicySetting.objects.filter(group_id__in=chain).values_list(
        "group_id", "policy_id", "mode"
    ):
        modes.setdefault(group_id, {})[policy_id] = mode
    verdicts = _branch_verdicts([chain], modes)
    applied = {p for p, seen in verdicts.items() if GroupPolicySetting.Mode.APPLY in seen}
    excluded = {p for p, seen in verdicts.items() if GroupPolicySetting.Mode.EXCLUDE in seen}
    policies = list(
        KeywordPolicy.objects.filter(enabled=True)
        .filter(Q(pk__in=applied) | (Q(applies_to_everyone=True) & ~Q(pk__in=excluded)))
        .order_by("name", "pk")
    )
    excluded_keywords = set(KeywordExclusion.objects.filter(group_id__in=chain).values_list("keyword_id", flat=True))
    return policies, excluded_keywords


def keyword_engine_for_test(*, policy: KeywordPolicy | None = None, group: MonitoringGroup | None = None):
    """The engine the admin's "test text against policies" page scans with.

    Every enabled policy by default; or one policy; or what `group`'s config holds (its policies less
    its excluded keywords); or both (that policy, if the group gets it). Built from the database rows
    the way the agent's config builds it, via `safeguard.policies.library.specs_for_policies`.
    """
    from safeguard.policies.library import specs_for_policies
    from safeguard_agent.keywords.engine import KeywordEngine

    policies = KeywordPolicy.objects.filter(enabled=True)
    excluded_keywords: set[int] = set()
    if group is not None:
        group_policies, excluded_keywords = policy_list_for_group(group=group)
        policies = policies.filter(pk__in=[p.pk for p in group_policies])
    if policy is not None:
        policies = policies.filter(pk=policy.pk)
    keyword_specs, allow_specs = specs_for_policies(policies)
    keyword_specs = [spec for spec in keyword_specs if spec.keyword_id not in excluded_keywords]
    return KeywordEngine.build(keyword_specs, allow_specs)
