"""The keyword engine: normalisation, an Aho-Corasick automaton and explainable matches. No Django."""

from safeguard_agent.keywords.types import AllowSpec, KeywordSpec, Match

__all__ = ["AllowSpec", "KeywordSpec", "Match"]
