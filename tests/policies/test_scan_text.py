"""`manage.py scan_text`: stdin lines in, one JSON object per line out, from the database or the shipped library."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from safeguard.policies.library import install_default_library
from safeguard.policies.models import AllowPhrase, Keyword, KeywordPolicy
from tests.factories import KeywordFactory, KeywordPolicyFactory

ROOT = Path(__file__).resolve().parents[2]


def scan(*args: str, text: str) -> list[dict]:
    out = io.StringIO()
    call_command("scan_text", *args, stdin=io.StringIO(text), stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.django_db
def test_database_mode_uses_the_databases_enabled_policies_and_keywords():
    policy = KeywordPolicyFactory(name="School words", category="bullying")
    KeywordFactory(policy=policy, text="wobbly", severity="high")
    KeywordFactory(policy=policy, text="jelly", enabled=False)
    KeywordFactory(policy=KeywordPolicyFactory(name="Off", enabled=False), text="custard")
    AllowPhrase.objects.create(policy=policy, text="wobbly table")

    lines = scan(text="a w0bbly jelly\ncustard\nthe wobbly table\n")

    assert [line["line"] for line in lines] == [1, 2, 3]
    [match] = lines[0]["matches"]
    assert match == {
        "keyword": "wobbly",
        "policy": "School words",
        "category": "bullying",
        "severity": "high",
        "start": 2,
        "end": 8,
        "matched_text": "w0bbly",
        "explanation": '"w0bbly" matched word "wobbly" of policy "School words": digits or symbols read as letters (0→o)',
    }
    assert lines[1]["matches"] == [] and lines[2]["matches"] == []


@pytest.mark.django_db
def test_database_mode_after_installing_the_library_matches_like_the_shipped_library():
    install_default_library()
    text = "i want to k1ll mys3lf\nsmoking weed\nweed the garden\nclass in Scunthorpe\n"
    assert scan(text=text) == scan("--library", "default", text=text)
    Keyword.objects.filter(text="kill myself").update(enabled=False)
    assert scan(text="i want to k1ll mys3lf\n")[0]["matches"] == []


@pytest.mark.django_db
def test_library_mode_needs_no_keywords_in_the_database():
    assert KeywordPolicy.objects.count() == 0
    [line] = scan("--library", "default", text="go kys\n")
    assert [(m["keyword"], m["category"]) for m in line["matches"]] == [("kys", "bullying")]


def test_library_mode_runs_without_any_database_at_all(tmp_path):
    """As a real process whose database does not exist: nothing may touch it."""
    env = dict(os.environ)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'missing' / 'no.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "manage.py", "scan_text", "--library", "default"],
        input=b"s u i c i d e\nnothing\n",
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [m["keyword"] for m in lines[0]["matches"]] == ["suicide"]
    assert lines[1] == {"line": 2, "matches": []}
    assert not (tmp_path / "missing").exists()


def test_an_unknown_library_is_an_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown keyword library"):
        call_command("scan_text", "--library", "nope", stdin=io.StringIO("x\n"), stdout=io.StringIO())
