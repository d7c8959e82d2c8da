"""Import keywords into a policy from a CSV file (text,match_kind,severity[,enabled]) or a plain list."""

import io
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from safeguard.policies.library import PlainListError, keyword_import_plain_list
from safeguard.policies.models import KeywordPolicy, Severity
from safeguard.policies.services import KeywordCsvError, keyword_import_csv


def _looks_like_csv(head: str) -> bool:
    """A CSV file starts with a header naming a `text` column."""
    for line in head.splitlines():
        line = line.strip().lstrip("\ufeff")
        if line:
            return "," in line and "text" in [cell.strip().strip('"').lower() for cell in line.split(",")]
    return False


class Command(BaseCommand):
    help = (
        "Import keywords into a policy, all or nothing: a CSV file with a header (text, match_kind, severity, "
        "enabled) or a plain list with one term per line ('#' starts a comment). Use it to load a list your "
        "school is licensed to use into the 'Illegal content' policy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--policy", required=True, help="the policy's name, e.g. 'Illegal content'")
        parser.add_argument("file", help="the CSV or plain-list file (UTF-8)")
        parser.add_argument("--format", choices=["auto", "csv", "list"], default="auto")
        parser.add_argument(
            "--severity", choices=Severity.values, default=Severity.HIGH, help="severity for a plain list"
        )

    def handle(self, *args, **options):
        try:
            policy = KeywordPolicy.objects.get(name=options["policy"])
        except KeywordPolicy.DoesNotExist:
            raise CommandError(f"No keyword policy named {options['policy']!r}.") from None
        path = Path(options["file"])
        try:
            content = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {path}: {error}") from None
        kind = options["format"]
        if kind == "auto":
            kind = "csv" if _looks_like_csv(content[:4096]) else "list"
        if kind == "csv":
            try:
                result = keyword_import_csv(policy=policy, file=io.StringIO(content))
            except KeywordCsvError as error:
                raise CommandError(f"Nothing imported. {error}") from None
            self.stdout.write(
                self.style.SUCCESS(
                    f"{policy.name}: {result.created} created, {result.updated} updated, "
                    f"{result.unchanged} unchanged (CSV)."
                )
            )
            return
        try:
            result = keyword_import_plain_list(policy=policy, lines=content.splitlines(), severity=options["severity"])
        except PlainListError as error:
            raise CommandError(f"Nothing imported. {error}") from None
        self.stdout.write(
            self.style.SUCCESS(f"{policy.name}: {result.created} created, {result.unchanged} already present (list).")
        )
