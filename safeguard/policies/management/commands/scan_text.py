"""Match keyword policies in text on stdin, one JSON object per input line (see safeguard_agent.keywords.lines)."""

import io
import sys

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        'Read UTF-8 lines on stdin and print, per line and in order, {"line": n, "matches": [{"keyword", '
        '"policy", "category", "severity", "start", "end", "matched_text", "explanation"}]}, using the '
        "database's enabled policies, or with --library the shipped library (no database needed)."
    )
    # call_command(..., stdin=...) lets tests and other code feed text without a pipe.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("--library", metavar="NAME", help='scan with a shipped library ("default") instead')

    def handle(self, *args, **options):
        from safeguard_agent.keywords.lines import scan_lines

        if options["library"]:
            from safeguard_agent.keywords.engine import KeywordEngine
            from safeguard_agent.keywords.library import library_specs, load_library

            try:
                engine = KeywordEngine.build(*library_specs(load_library(options["library"])))
            except ValueError as error:
                raise CommandError(str(error)) from None
        else:
            from safeguard.policies.library import engine_for_policies

            engine = engine_for_policies()
        stdin = options.get("stdin")
        if stdin is None:
            stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="")
        scan_lines(engine, stdin, self.stdout)
