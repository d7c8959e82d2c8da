from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "safeguard.core"
    label = "core"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from safeguard.core import access_audit, twofactor

        access_audit.connect()
        user_logged_in.connect(twofactor.note_device_at_login, dispatch_uid="twofactor_note_device")
