from django.apps import AppConfig


class CapturesConfig(AppConfig):
    name = "safeguard.captures"
    label = "captures"
