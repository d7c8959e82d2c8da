from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "safeguard.console"
    label = "console"
