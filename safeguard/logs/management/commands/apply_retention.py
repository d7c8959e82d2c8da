"""`manage.py apply_retention [--dry-run]`: apply the retention periods now (beat does it nightly).

For the embedded mode, which runs no Celery beat (schedule it with cron), and for an admin who
wants to see or apply a change of the periods at once. `--dry-run` prints what would be removed
and removes nothing (the same report as the admin's "Preview the next run").
"""

from django.core.management.base import BaseCommand, CommandParser

from safeguard.logs.retention import retention_apply, retention_plan


class Command(BaseCommand):
    help = "Delete what is past its retention period (rows and files); --dry-run only counts it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would be removed; remove nothing.")

    def handle(self, *args, dry_run: bool = False, **options) -> None:
        if dry_run:
            for plan in retention_plan():
                self.stdout.write(f"{plan.key}: {plan.rows} rows, {plan.files} files would be {plan.action}")
            return
        for key, counts in retention_apply().items():
            self.stdout.write(f"{key}: {counts['rows']} rows, {counts['files']} files removed")
