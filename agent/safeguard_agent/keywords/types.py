"""Plain data the engine is built from and returns. No Django: the server converts its rows into these."""

from dataclasses import dataclass, field

MATCH_KINDS = ("word", "phrase", "abbreviation")
SEVERITIES = ("low", "medium", "high", "severe")


@dataclass(frozen=True, slots=True)  # slots: the engine keeps one per keyword (5,000+), no __dict__ each
class KeywordSpec:
    """One keyword of one policy, as an admin or the shipped library wrote it.

    `text` may end in `*` to match any word that starts with it ("anorexi*"); the left edge still needs a
    word boundary, so Scunthorpe-style substrings never fire.
    """

    text: str
    policy: str
    category: str = "other"
    severity: str = "medium"
    match_kind: str = "word"
    join_spaced: bool = False
    requires_nearby: tuple[str, ...] = ()
    window: int = 5
    keyword_id: int | None = None
    policy_id: int | None = None
    illegal_content: bool = False

    def __post_init__(self) -> None:
        if self.match_kind not in MATCH_KINDS:
            raise ValueError(f"match_kind must be one of {MATCH_KINDS}, not {self.match_kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")
        if not self.text.strip().rstrip("*").strip():
            raise ValueError("keyword text is empty")
        object.__setattr__(self, "requires_nearby", tuple(self.requires_nearby))


@dataclass(frozen=True, slots=True)
class AllowSpec:
    """A phrase that suppresses any hit of `policy` inside it ("kill time"). policy=None: every policy."""

    text: str
    policy: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    keyword: str
    policy: str
    category: str
    severity: str
    start: int
    end: int
    matched_text: str
    explanation: str
    steps: tuple[str, ...] = ()
    keyword_id: int | None = None
    policy_id: int | None = None
    illegal_content: bool = False
    suppressed_by: str | None = field(default=None, compare=False)

    def as_dict(self) -> dict:
        """The JSON shape of `scan_text` / `safeguard-agent scan`."""
        return {
            "keyword": self.keyword,
            "policy": self.policy,
            "category": self.category,
            "severity": self.severity,
            "start": self.start,
            "end": self.end,
            "matched_text": self.matched_text,
            "explanation": self.explanation,
        }
