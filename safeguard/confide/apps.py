from django.apps import AppConfig


class ConfideConfig(AppConfig):
    name = "safeguard.confide"
    label = "confide"
