"""`manage.py ensure_event_partitions [--months N]`: create the coming months' event partitions now.

Beat does it daily and `migrate` does it after migrating; this is for an install that runs no
beat, or to create more months ahead before a long quiet period. PostgreSQL only: on SQLite the
events table is not partitioned and nothing happens.
"""

from django.core.management.base import BaseCommand, CommandParser

from safeguard.logs.partitions import is_partitioned, partitions_ensure, partitions_list


class Command(BaseCommand):
    help = "Create the activity event partitions for this month and the next N months (PostgreSQL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--months", type=int, default=None, help="Months ahead (default SAFEGUARD_EVENT_PARTITIONS_AHEAD)."
        )

    def handle(self, *args, months: int | None = None, **options) -> None:
        if not is_partitioned():
            self.stdout.write("The activity events table is not partitioned on this database: nothing to do.")
            return
        created = partitions_ensure(months_ahead=months)
        self.stdout.write(f"Created: {', '.join(created)}" if created else "Nothing to create.")
        months_held = [f"{partition.month:%Y-%m}" for partition in partitions_list()]
        self.stdout.write(f"Monthly partitions: {', '.join(months_held)}")
