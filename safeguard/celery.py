"""The Celery application. Tasks live in each app's tasks.py and are fired on commit."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safeguard.settings")

app = Celery("safeguard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
