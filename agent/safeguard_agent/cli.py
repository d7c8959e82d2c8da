"""`safeguard-agent`: the endpoint agent's command line.

Subcommands: `scan` (match keywords in text on stdin). The agent issue adds `enrol`, `run` and `status`
here, and makes the cached config the default source for `scan`.
"""

import argparse
import io
import json
import sys
from collections.abc import Sequence

from safeguard_agent import __version__


def _engine_for(args: argparse.Namespace):
    from safeguard_agent.keywords.engine import KeywordEngine
    from safeguard_agent.keywords.library import config_specs, library_specs, load_library

    if args.library:
        return KeywordEngine.build(*library_specs(load_library(args.library)))
    try:
        with open(args.policies, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as error:
        raise SystemExit(f"safeguard-agent scan: cannot read {args.policies}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise SystemExit(f"safeguard-agent scan: {args.policies} is not JSON: {error}") from None
    if not isinstance(config, dict) or not isinstance(config.get("policies"), list):
        raise SystemExit(f'safeguard-agent scan: {args.policies} has no "policies" list (agent config shape)')
    try:
        return KeywordEngine.build(*config_specs(config))
    except (KeyError, TypeError, ValueError) as error:
        raise SystemExit(f"safeguard-agent scan: bad policy in {args.policies}: {error}") from None


def cmd_scan(args: argparse.Namespace) -> int:
    from safeguard_agent.keywords.lines import scan_lines

    engine = _engine_for(args)
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="")
    stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n", write_through=True)
    scan_lines(engine, stdin, stdout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safeguard-agent", description="Safeguard endpoint agent.")
    parser.add_argument("--version", action="version", version=f"safeguard-agent {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    scan = commands.add_parser(
        "scan",
        help="match keyword policies in UTF-8 lines on stdin; print one JSON object per line",
        description='Reads UTF-8 lines on stdin and prints, per line and in order, {"line": n, "matches": '
        '[{"keyword", "policy", "category", "severity", "start", "end", "matched_text", "explanation"}]}.',
    )
    source = scan.add_mutually_exclusive_group(required=True)
    source.add_argument("--policies", metavar="FILE", help="policies JSON in the shape of GET /api/v1/agent/config")
    source.add_argument("--library", metavar="NAME", help='a library shipped with the agent ("default")')
    scan.set_defaults(handler=cmd_scan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as error:
        print(f"safeguard-agent {args.command}: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
