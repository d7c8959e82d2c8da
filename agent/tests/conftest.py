"""Agent tests need neither Django nor a database."""

import pytest

from safeguard_agent.keywords.engine import KeywordEngine
from safeguard_agent.keywords.library import library_specs, load_library
from safeguard_agent.keywords.types import AllowSpec, KeywordSpec


@pytest.fixture(scope="session")
def library_engine() -> KeywordEngine:
    return KeywordEngine.build(*library_specs(load_library()))


def engine_of(*keywords: KeywordSpec | str, allow: tuple[AllowSpec, ...] = ()) -> KeywordEngine:
    specs = [
        k if isinstance(k, KeywordSpec) else KeywordSpec(text=k, policy="Test", category="other") for k in keywords
    ]
    return KeywordEngine.build(specs, allow)
