from django.apps import AppConfig


class LogsConfig(AppConfig):
    name = "safeguard.logs"
    label = "logs"
