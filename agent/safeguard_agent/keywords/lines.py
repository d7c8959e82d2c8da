"""The line protocol shared by `safeguard-agent scan` and `manage.py scan_text`."""

import json
from collections.abc import Iterable
from typing import TextIO

from safeguard_agent.keywords.engine import KeywordEngine


def scan_lines(engine: KeywordEngine, lines: Iterable[str], out: TextIO) -> int:
    """Print one JSON object per input line, in order: {"line": n, "matches": [...]}. Returns the line count.

    Offsets are in characters of the line without its line ending. Output is flushed per line so a caller
    can stream text through a pipe.
    """
    count = 0
    for count, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        matches = [match.as_dict() for match in engine.scan(text)]
        out.write(json.dumps({"line": count, "matches": matches}, ensure_ascii=False) + "\n")
        out.flush()
    return count
