"""`safeguard-agent scan` as a real executable: stdin lines in, one JSON object per line out."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXECUTABLE = shutil.which("safeguard-agent", path=str(Path(sys.executable).parent))


def run(args: list[str], stdin: str) -> subprocess.CompletedProcess:
    assert EXECUTABLE, "safeguard-agent is not installed in this environment (pip install -e ./agent)"
    return subprocess.run([EXECUTABLE, *args], input=stdin.encode(), capture_output=True, timeout=60, check=False)


def test_scan_with_the_default_library_prints_one_object_per_line_in_order():
    result = run(["scan", "--library", "default"], "I want to k1ll mys3lf\nnothing to see\n\ns u i c i d e and kms\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [line["line"] for line in lines] == [1, 2, 3, 4]
    assert lines[1]["matches"] == [] and lines[2]["matches"] == []
    [first] = lines[0]["matches"]
    assert first == {
        "keyword": "kill myself",
        "policy": "Suicide",
        "category": "suicide",
        "severity": "severe",
        "start": 10,
        "end": 21,
        "matched_text": "k1ll mys3lf",
        "explanation": '"k1ll mys3lf" matched phrase "kill myself" of policy "Suicide": digits or symbols read as letters (1→i/l, 3→e)',
    }
    assert [m["keyword"] for m in lines[3]["matches"]] == ["suicide", "kms"]


def test_scan_reads_policies_in_the_agent_config_shape(tmp_path):
    config = {
        "version": "abc",
        "policies": [
            {
                "id": "8c6a3c36-8d0b-4d5e-9d59-1b3f1c0f2a11",
                "name": "Local words",
                "category": "bullying",
                "illegal_content": False,
                "allow_phrases": ["banana bread"],
                "keywords": [
                    {"id": 41, "text": "banana", "match_kind": "word", "severity": "low"},
                    {
                        "id": 42,
                        "text": "wobble",
                        "match_kind": "word",
                        "severity": "high",
                        "requires_nearby": ["jelly"],
                        "window": 2,
                    },
                ],
            }
        ],
        "settings": {},
    }
    policies = tmp_path / "config.json"
    policies.write_text(json.dumps(config), encoding="utf-8")
    result = run(["scan", "--policies", str(policies)], "a BANANA\nbanana bread\nwobble wobble\njelly wobble\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line)["matches"] for line in result.stdout.decode().splitlines()]
    assert [(m["keyword"], m["severity"], m["category"]) for m in lines[0]] == [("banana", "low", "bullying")]
    assert lines[1] == [] and lines[2] == []
    assert [m["keyword"] for m in lines[3]] == ["wobble"]


def test_offsets_count_characters_not_bytes_and_crlf_is_not_part_of_the_line():
    result = run(["scan", "--library", "default"], "ça va? 😀 kms\r\n")
    [line] = [json.loads(text) for text in result.stdout.decode().splitlines()]
    [match] = line["matches"]
    assert "ça va? 😀 kms"[match["start"] : match["end"]] == "kms"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan", "--library", "klingon"], "unknown keyword library"),
        (["scan", "--policies", "/nonexistent/config.json"], "cannot read"),
    ],
)
def test_bad_sources_fail_with_a_message_and_non_zero_status(args, message):
    result = run(args, "text\n")
    assert result.returncode != 0
    assert message in result.stderr.decode()


def test_scan_needs_a_source():
    result = run(["scan"], "text\n")
    assert result.returncode == 2
    assert "--policies" in result.stderr.decode()


def test_the_agent_package_never_imports_django():
    code = "import sys, safeguard_agent.cli, safeguard_agent.keywords.engine, safeguard_agent.keywords.lines; print('django' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"
    package = Path(__file__).resolve().parents[1] / "safeguard_agent"
    for path in package.rglob("*.py"):
        assert "import django" not in path.read_text() and "from django" not in path.read_text(), path
