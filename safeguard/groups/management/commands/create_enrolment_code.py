"""`manage.py create_enrolment_code`: issue a code that agents trade for a device token."""

from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from safeguard.groups.models import GroupKind, MonitoringGroup
from safeguard.groups.services import enrolment_code_create


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Create an enrolment code for installing the agent. The code is printed once, as the last "
        "line of output (so scripts can take it with `tail -n 1`); only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--uses", type=_positive_int, default=1, help="How many devices may enrol with it (1).")
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument(
            "--expires-in-days", type=_positive_int, metavar="D", help="The code stops working after D days."
        )
        expiry.add_argument(
            "--expires",
            metavar="ISO",
            help="The code stops working at this time, e.g. 2026-09-01T08:00 (local time unless an offset is given).",
        )
        parser.add_argument("--label", default="", help="A note for admins, e.g. 'Library PCs, Sept 2026'.")
        parser.add_argument(
            "--device-group", metavar="NAME", help="Devices enrolled with the code join this device group."
        )

    def handle(self, *args, **options) -> None:
        expires_at = self._expiry(options)
        device_group = self._device_group(options["device_group"]) if options["device_group"] else None
        record, code = enrolment_code_create(
            label=options["label"], max_uses=options["uses"], expires_at=expires_at, device_group=device_group
        )
        uses = "1 device" if record.max_uses == 1 else f"{record.max_uses} devices"
        expiry = f"until {timezone.localtime(expires_at):%Y-%m-%d %H:%M %Z}" if expires_at else "with no expiry"
        self.stdout.write(f"Enrolment code for {uses}, valid {expiry}.")
        if device_group is not None:
            self.stdout.write(f"Devices will join the device group '{device_group.name}'.")
        self.stdout.write("It is shown only now; the server keeps only its hash.")
        self.stdout.write(code)

    def _expiry(self, options: dict) -> datetime | None:
        if options["expires_in_days"]:
            return timezone.now() + timedelta(days=options["expires_in_days"])
        if not options["expires"]:
            return None
        try:
            moment = parse_datetime(options["expires"])
        except ValueError:
            moment = None
        if moment is None:
            raise CommandError(f"--expires: '{options['expires']}' is not an ISO 8601 date and time.")
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        if moment <= timezone.now():
            raise CommandError("--expires: that time has already passed.")
        return moment

    def _device_group(self, name: str) -> MonitoringGroup:
        groups = list(MonitoringGroup.objects.filter(kind=GroupKind.DEVICE, name=name))
        if not groups:
            raise CommandError(f"--device-group: no device group is named '{name}'.")
        if len(groups) > 1:
            raise CommandError(f"--device-group: {len(groups)} device groups are named '{name}'; rename one.")
        return groups[0]
