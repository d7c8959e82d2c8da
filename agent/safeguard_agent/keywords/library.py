"""The default keyword library shipped as data: one JSON file per category under `library/`.

Each file: {"category", "language", "policy": {"name", "description", optional "is_illegal_content"},
"allow_phrases": [...], "keywords": [{"text", "match_kind", "severity", optional "join_spaced",
"requires_nearby", "window"}]}. More languages are added as more files with another "language".
"""

import json
from dataclasses import dataclass
from pathlib import Path

from safeguard_agent.keywords.types import AllowSpec, KeywordSpec

LIBRARY_DIR = Path(__file__).with_name("library")
LIBRARIES = {"default": LIBRARY_DIR}


@dataclass(frozen=True)
class LibraryKeyword:
    text: str
    match_kind: str
    severity: str
    join_spaced: bool = False
    requires_nearby: tuple[str, ...] = ()
    window: int = 5


@dataclass(frozen=True)
class LibraryPolicy:
    name: str
    category: str
    language: str
    description: str
    is_illegal_content: bool
    allow_phrases: tuple[str, ...]
    keywords: tuple[LibraryKeyword, ...]


def load_library(name: str = "default", *, language: str | None = None) -> list[LibraryPolicy]:
    """Read every category file of a shipped library, in file-name order (stable across runs)."""
    try:
        directory = LIBRARIES[name]
    except KeyError:
        raise ValueError(f"unknown keyword library {name!r}; known: {', '.join(sorted(LIBRARIES))}") from None
    policies = []
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if language and data.get("language", "en") != language:
            continue
        keywords = tuple(
            LibraryKeyword(
                text=item["text"],
                match_kind=item.get("match_kind", "word"),
                severity=item.get("severity", "medium"),
                join_spaced=bool(item.get("join_spaced", False)),
                requires_nearby=tuple(item.get("requires_nearby", ())),
                window=int(item.get("window", 5)),
            )
            for item in data["keywords"]
        )
        policies.append(
            LibraryPolicy(
                name=data["policy"]["name"],
                category=data["category"],
                language=data.get("language", "en"),
                description=data["policy"].get("description", ""),
                is_illegal_content=bool(data["policy"].get("is_illegal_content", False)),
                allow_phrases=tuple(data.get("allow_phrases", ())),
                keywords=keywords,
            )
        )
    return policies


def library_specs(policies: list[LibraryPolicy]) -> tuple[list[KeywordSpec], list[AllowSpec]]:
    """Turn loaded library policies into what `KeywordEngine.build` takes."""
    keywords: list[KeywordSpec] = []
    allows: list[AllowSpec] = []
    for policy in policies:
        for item in policy.keywords:
            keywords.append(
                KeywordSpec(
                    text=item.text,
                    policy=policy.name,
                    category=policy.category,
                    severity=item.severity,
                    match_kind=item.match_kind,
                    join_spaced=item.join_spaced,
                    requires_nearby=item.requires_nearby,
                    window=item.window,
                    illegal_content=policy.is_illegal_content,
                )
            )
        allows.extend(AllowSpec(text=text, policy=policy.name) for text in policy.allow_phrases)
    return keywords, allows


def config_specs(config: dict) -> tuple[list[KeywordSpec], list[AllowSpec]]:
    """Specs from the server's agent config (`GET /api/v1/agent/config`): {"policies": [{"name", "category",
    "illegal_content", "keywords": [{"id", "text", "match_kind", "severity"}]}]}.

    Optional fields the engine also understands: a policy's "allow_phrases", a keyword's "join_spaced",
    "requires_nearby" and "window".
    """
    keywords: list[KeywordSpec] = []
    allows: list[AllowSpec] = []
    for policy in config.get("policies", []):
        name = policy["name"]
        for item in policy.get("keywords", []):
            keywords.append(
                KeywordSpec(
                    text=item["text"],
                    policy=name,
                    category=policy.get("category", "other"),
                    severity=item.get("severity", "medium"),
                    match_kind=item.get("match_kind", "word"),
                    join_spaced=bool(item.get("join_spaced", False)),
                    requires_nearby=tuple(item.get("requires_nearby", ())),
                    window=int(item.get("window", 5)),
                    keyword_id=item.get("id"),
                    illegal_content=bool(policy.get("illegal_content", False)),
                )
            )
        allows.extend(AllowSpec(text=text, policy=name) for text in policy.get("allow_phrases", ()))
    return keywords, allows
