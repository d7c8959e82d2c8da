"""The shipped keyword library on the server: installing it, importing plain lists, building engines from rows.

The data and the matching engine live in the agent package (`safeguard_agent.keywords`), so the agent and the
server match text identically; this module only moves them in and out of the database.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Lower

from safeguard.policies.models import AllowPhrase, Keyword, KeywordPolicy, KeywordSource, MatchKind, Severity
from safeguard_agent.keywords.library import load_library
from safeguard_agent.keywords.types import AllowSpec, KeywordSpec

PLAIN_LIST_MAX_TERMS = 20_000


@dataclass(frozen=True)
class LibraryInstallResult:
    policies_created: int
    policies_updated: int
    keywords_created: int
    keywords_kept: int
    allow_phrases_created: int

    def __str__(self) -> str:
        return (
            f"policies: {self.policies_created} created, {self.policies_updated} updated; "
            f"keywords: {self.keywords_created} created, {self.keywords_kept} already present (left as they are); "
            f"allow-list phrases: {self.allow_phrases_created} created"
        )


def install_default_library(*, library: str = "default") -> LibraryInstallResult:
    """Create or refresh the shipped policies and add any shipped keyword the database lacks.

    Idempotent: a second run creates nothing. It never deletes a keyword and never changes one that exists,
    so an admin's severity, enabled flag or combination rule on a shipped keyword survives a reinstall.
    The policy's description, category and language follow the shipped data. The empty "Illegal content"
    policy is created with is_illegal_content=True; a school imports its licensed list into it.
    """
    policies_created = policies_updated = keywords_created = keywords_kept = allows_created = 0
    with transaction.atomic():
        for shipped in load_library(library):
            policy, created = KeywordPolicy.objects.get_or_create(
                name=shipped.name,
                defaults={
                    "category": shipped.category,
                    "language": shipped.language,
                    "description": shipped.description,
                    "is_illegal_content": shipped.is_illegal_content,
                },
            )
            if created:
                policies_created += 1
            else:
                changed = False
                for field, value in (
                    ("category", shipped.category),
                    ("language", shipped.language),
                    ("description", shipped.description),
                ):
                    if getattr(policy, field) != value:
                        setattr(policy, field, value)
                        changed = True
                if shipped.is_illegal_content and not policy.is_illegal_content:
                    policy.is_illegal_content = True
                    changed = True
                if changed:
                    policy.save()
                    policies_updated += 1

            existing = set(
                Keyword.objects.filter(policy=policy).annotate(lower=Lower("text")).values_list("lower", flat=True)
            )
            new_keywords = []
            for item in shipped.keywords:
                if item.text.lower() in existing:
                    keywords_kept += 1
                    continue
                existing.add(item.text.lower())
                new_keywords.append(
                    Keyword(
                        policy=policy,
                        text=item.text,
                        match_kind=item.match_kind,
                        severity=item.severity,
                        join_spaced_letters=item.join_spaced,
                        requires_nearby=list(item.requires_nearby),
                        nearby_window=item.window,
                        source=KeywordSource.LIBRARY,
                    )
                )
            Keyword.objects.bulk_create(new_keywords)
            keywords_created += len(new_keywords)

            existing_allows = set(
                AllowPhrase.objects.filter(policy=policy).annotate(lower=Lower("text")).values_list("lower", flat=True)
            )
            new_allows = [
                AllowPhrase(policy=policy, text=text, source=KeywordSource.LIBRARY)
                for text in dict.fromkeys(shipped.allow_phrases)
                if text.lower() not in existing_allows
            ]
            AllowPhrase.objects.bulk_create(new_allows)
            allows_created += len(new_allows)
    return LibraryInstallResult(policies_created, policies_updated, keywords_created, keywords_kept, allows_created)


class PlainListError(ValueError):
    """The list was refused; nothing was written."""


@dataclass(frozen=True)
class PlainListImportResult:
    created: int
    unchanged: int


def keyword_import_plain_list(
    *, policy: KeywordPolicy, lines: Iterable[str], severity: str = Severity.HIGH, match_kind: str | None = None
) -> PlainListImportResult:
    """Add one keyword per non-blank line (all or nothing); lines starting with '#' are comments.

    Used for lists a school is licensed to use, which usually come as bare terms. A term already in the
    policy (ignoring case) is left as it is. Terms with a space become phrases unless `match_kind` says.
    """
    if severity not in Severity.values:
        raise PlainListError(f"severity must be one of {', '.join(Severity.values)}")
    if match_kind is not None and match_kind not in MatchKind.values:
        raise PlainListError(f"match kind must be one of {', '.join(MatchKind.values)}")
    max_length = Keyword._meta.get_field("text").max_length
    terms: dict[str, str] = {}
    errors = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip().lstrip("\ufeff").strip()
        if not text or text.startswith("#"):
            continue
        if len(text) > max_length:
            errors.append(f"line {number}: longer than {max_length} characters")
            continue
        terms.setdefault(text.lower(), text)
        if len(terms) > PLAIN_LIST_MAX_TERMS:
            raise PlainListError(f"more than {PLAIN_LIST_MAX_TERMS} terms")
    if errors:
        raise PlainListError("; ".join(errors))
    with transaction.atomic():
        existing = set(
            Keyword.objects.filter(policy=policy).annotate(lower=Lower("text")).values_list("lower", flat=True)
        )
        new = [
            Keyword(
                policy=policy,
                text=text,
                match_kind=match_kind or (MatchKind.PHRASE if " " in text else MatchKind.WORD),
                severity=severity,
                source=KeywordSource.IMPORT,
            )
            for lower, text in terms.items()
            if lower not in existing
        ]
        Keyword.objects.bulk_create(new)
    return PlainListImportResult(created=len(new), unchanged=len(terms) - len(new))


def specs_for_policies(policies: QuerySet[KeywordPolicy]) -> tuple[list[KeywordSpec], list[AllowSpec]]:
    """The enabled keywords and allow-list phrases of the given enabled policies, as engine specs."""
    policies = policies.filter(enabled=True)
    keywords = Keyword.objects.filter(policy__in=policies, enabled=True).select_related("policy").order_by("id")
    keyword_specs = [
        KeywordSpec(
            text=keyword.text,
            policy=keyword.policy.name,
            category=keyword.policy.category,
            severity=keyword.severity,
            match_kind=keyword.match_kind,
            join_spaced=keyword.join_spaced_letters,
            requires_nearby=tuple(keyword.requires_nearby or ()),
            window=keyword.nearby_window,
            keyword_id=keyword.pk,
            policy_id=keyword.policy_id,
            illegal_content=keyword.policy.is_illegal_content,
        )
        for keyword in keywords
    ]
    allows = AllowPhrase.objects.filter(policy__in=policies).select_related("policy").order_by("id")
    allow_specs = [AllowSpec(text=allow.text, policy=allow.policy.name) for allow in allows]
    return keyword_specs, allow_specs


def engine_for_policies(policies: QuerySet[KeywordPolicy] | None = None):
    """A KeywordEngine over the enabled keywords of `policies` (default: every policy)."""
    from safeguard_agent.keywords.engine import KeywordEngine

    keyword_specs, allow_specs = specs_for_policies(policies if policies is not None else KeywordPolicy.objects.all())
    return KeywordEngine.build(keyword_specs, allow_specs)
