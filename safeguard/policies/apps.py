from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "safeguard.policies"
    label = "policies"
