"""Quality gate: the default library on a labelled set of realistic lines (tests/data/keyword_eval.tsv).

A line labelled `match` counts as found only if a match of its expected category is reported; a match of
another category on it, or any match on a `none` line, is a false positive.
"""

from pathlib import Path

import pytest

from safeguard_agent.keywords.engine import KeywordEngine
from safeguard_agent.keywords.library import library_specs, load_library

EVAL = Path(__file__).resolve().parents[1] / "data" / "keyword_eval.tsv"
CATEGORIES = {policy.category for policy in load_library()}


def _rows() -> list[tuple[str, str, str]]:
    rows = []
    for number, line in enumerate(EVAL.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        expect, category, text = line.split("\t")
        assert expect in ("match", "none"), f"line {number}: {expect!r}"
        assert (category in CATEGORIES) if expect == "match" else category == "-", f"line {number}: {category!r}"
        rows.append((expect, category, text))
    return rows


@pytest.fixture(scope="module")
def scored():
    engine = KeywordEngine.build(*library_specs(load_library()))
    true_positive = false_positive = false_negative = 0
    errors = []
    for expect, category, text in _rows():
        found = {match.category for match in engine.scan(text)}
        if expect == "match":
            if category in found:
                true_positive += 1
            else:
                false_negative += 1
                errors.append(f"missed {category}: {text}")
                if found:
                    false_positive += 1
        elif found:
            false_positive += 1
            errors.append(f"false alarm {sorted(found)}: {text}")
    return true_positive, false_positive, false_negative, errors


def test_the_eval_set_is_big_and_balanced():
    rows = _rows()
    positives = [row for row in rows if row[0] == "match"]
    negatives = [row for row in rows if row[0] == "none"]
    assert len(rows) >= 200
    assert abs(len(positives) - len(negatives)) <= len(rows) // 10
    assert len({row[2] for row in rows}) == len(rows), "duplicate lines"
    assert {row[1] for row in positives} == CATEGORIES - {"illegal_content"}


def test_precision_is_at_least_95_percent(scored):
    true_positive, false_positive, _, errors = scored
    precision = true_positive / (true_positive + false_positive)
    assert precision >= 0.95, f"precision {precision:.3f}:\n" + "\n".join(errors)


def test_recall_is_at_least_95_percent(scored):
    true_positive, _, false_negative, errors = scored
    recall = true_positive / (true_positive + false_negative)
    assert recall >= 0.95, f"recall {recall:.3f}:\n" + "\n".join(errors)
