"""`manage.py seed_demo`: fill the database with a demo school. Safe to run again: it adds only what is missing."""

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from safeguard.core.demo import DEMO_PASSWORD, ENROLMENT_LABEL, seed_demo

CODE_FILE = "demo-enrolment-code"


class Command(BaseCommand):
    help = (
        "Create the demo school (groups, pupils, devices, activity, captures, Confide reports) and the "
        f"demo staff accounts admin, lead and teacher with the password '{DEMO_PASSWORD}'. Idempotent."
    )

    def handle(self, *args, **options) -> None:
        result = seed_demo()
        made = ", ".join(f"{count} {name}" for name, count in result.created.items() if count)
        self.stdout.write(f"Demo data: created {made}." if made else "Demo data: already complete, nothing to add.")
        self.stdout.write(
            f"Demo logins (password '{DEMO_PASSWORD}'): admin (superuser), "
            "lead (safeguarding lead, every group), teacher (Year 9 only)."
        )
        code = self._remember_code(result.enrolment_code)
        if code:
            self.stdout.write(f"Demo enrolment code ({ENROLMENT_LABEL}, 30 devices, 30 days): {code}")
        else:
            self.stdout.write(
                "The demo enrolment code was shown when it was made; create another with "
                "`python manage.py create_enrolment_code --uses 30 --expires-in-days 7`."
            )

    def _remember_code(self, new_code: str | None) -> str | None:
        """Keep the plain demo code in the var dir (mode 0600) so later runs can show it again.

        Only the demo's code is kept: real codes from create_enrolment_code are shown once and
        only their hash is stored.
        """
        path = Path(settings.VAR_DIR) / CODE_FILE
        if new_code:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(new_code + "\n")
            return new_code
        return path.read_text().strip() if path.exists() else None
