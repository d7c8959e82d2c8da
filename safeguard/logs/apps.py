from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_event_partitions(sender, using: str, **kwargs) -> None:
    # Every `migrate` leaves the coming months' partitions in place (PostgreSQL; no-op elsewhere),
    # so a new install or an upgrade does not depend on beat having run yet.
    from safeguard.logs.partitions import partitions_ensure

    partitions_ensure(using=using)


class LogsConfig(AppConfig):
    name = "safeguard.logs"
    label = "logs"

    def ready(self) -> None:
        post_migrate.connect(_ensure_event_partitions, sender=self, dispatch_uid="logs.ensure_event_partitions")
