"""The contract every app's admin keeps: each registered model's list, add and change pages open.

An app's tests/<app>/test_admin.py subclasses AdminPagesContract, names its app and gives one
object maker per registered model; tests/conftest.py parametrizes `admin_model` over the app's
registered models, so registering a model without a maker fails the suite.
"""

from collections.abc import Callable

from django.contrib import admin
from django.db import models
from django.urls import reverse


def admin_url(model: type[models.Model], view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def registered_models(app_label: str) -> list[type[models.Model]]:
    return sorted(
        (model for model in admin.site._registry if model._meta.app_label == app_label),
        key=lambda m: m._meta.model_name,
    )


class AdminPagesContract:
    app_label: str = ""
    # One saved object of each registered model.
    object_makers: dict[type[models.Model], Callable[[], models.Model]] = {}
    # Models whose add page is refused on purpose (403): they come from agents or services.
    add_disabled: frozenset = frozenset()
    # One-row models: the list opens the row, and a second row cannot be added.
    singletons: frozenset = frozenset()

    def test_every_registered_model_is_covered(self):
        assert set(registered_models(self.app_label)) == set(self.object_makers)

    def test_changelist_loads_with_a_row(self, superuser_client, admin_model):
        obj = self.object_makers[admin_model]()
        response = superuser_client.get(admin_url(admin_model, "changelist"))
        if admin_model in self.singletons:
            assert response.status_code == 302
            assert response["Location"] == admin_url(admin_model, "change", obj.pk)
        else:
            assert response.status_code == 200
            assert response.context["cl"].result_count >= 1

    def test_add_page_loads_or_is_refused_on_purpose(self, superuser_client, admin_model):
        response = superuser_client.get(admin_url(admin_model, "add"))
        assert response.status_code == (403 if admin_model in self.add_disabled else 200)
        if admin_model in self.singletons:
            self.object_makers[admin_model]()
            assert superuser_client.get(admin_url(admin_model, "add")).status_code == 403

    def test_change_page_loads(self, superuser_client, admin_model):
        obj = self.object_makers[admin_model]()
        response = superuser_client.get(admin_url(admin_model, "change", obj.pk))
        assert response.status_code == 200
