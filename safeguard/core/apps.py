from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "safeguard.core"
    label = "core"

    def ready(self) -> None:
        from safeguard.core import access_audit

        access_audit.connect()
