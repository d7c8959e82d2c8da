"""Install or refresh the shipped keyword library (idempotent; never deletes or retunes keywords)."""

from django.core.management.base import BaseCommand, CommandError

from safeguard.policies.library import install_default_library


class Command(BaseCommand):
    help = "Create the shipped keyword policies and add any shipped keyword the database lacks."

    def add_arguments(self, parser):
        parser.add_argument("--library", default="default", help="which shipped library (default: default)")

    def handle(self, *args, **options):
        try:
            result = install_default_library(library=options["library"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Keyword library installed: {result}"))
