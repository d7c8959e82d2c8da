"""`manage.py generate_load [--events N] [--captures M] ...`: fill the database with a generated school trust.

For benchmarks and sizing (docs/PERFORMANCE.md): by default the trust of issue 8, 20 schools,
20,000 pupils and computers, 10 million activity events and 200,000 captures over 90 days. On
PostgreSQL the rows go in with COPY; on SQLite with executemany (slow: keep the sizes small).
What the data looks like is described in safeguard/logs/loadgen.py. Never run it on a live
school's database: it adds made-up pupils and staff.
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from safeguard.logs.loadgen import LoadExistsError, LoadSpec, load_generate


class Command(BaseCommand):
    help = "Fill the database with a generated school trust (people, computers, groups, events, captures)."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = LoadSpec()
        parser.add_argument("--events", type=int, default=defaults.events, help="Activity events (10,000,000).")
        parser.add_argument("--captures", type=int, default=defaults.captures, help="Captures (200,000).")
        parser.add_argument("--people", type=int, default=defaults.people, help="Pupils (20,000).")
        parser.add_argument("--devices", type=int, default=defaults.devices, help="Computers (20,000).")
        parser.add_argument("--schools", type=int, default=defaults.schools, help="Schools in the trust (20).")
        parser.add_argument("--days", type=int, default=defaults.days, help="Days of history up to now (90).")
        parser.add_argument("--seed", type=int, default=defaults.seed, help="Seed: the same seed, the same rows.")

    def handle(self, *args, **options) -> None:
        try:
            spec = LoadSpec(
                events=options["events"],
                captures=options["captures"],
                people=options["people"],
                devices=options["devices"],
                schools=options["schools"],
                days=options["days"],
                seed=options["seed"],
            )
            result = load_generate(spec=spec, progress=self.stdout.write)
        except (ValueError, LoadExistsError) as error:
            raise CommandError(str(error)) from error
        total = sum(result.seconds.values())
        self.stdout.write(
            self.style.SUCCESS(
                f"Generated {result.events:,} events and {result.captures:,} captures for {result.people:,} people "
                f"from {result.start:%Y-%m-%d} to {result.end:%Y-%m-%d %H:%M} in {total:.1f} s."
            )
        )
