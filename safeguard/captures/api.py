"""Agent-facing API views of this app (mounted under /api/v1/agent/)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
