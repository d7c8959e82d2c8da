from django.apps import AppConfig


class GroupsConfig(AppConfig):
    name = "safeguard.groups"
    label = "groups"
