"""The project's URL map: console, agent API, schema and admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from safeguard.core import twofactor

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/2fa/setup/", twofactor.setup_view, name="two_factor_setup"),
    path("accounts/2fa/verify/", twofactor.verify_view, name="two_factor_verify"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file, and our template drops the
    # inline <style>: the docs page runs under the same Content-Security-Policy as the rest.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    path("api/v1/agent/", include("safeguard.core.agent_urls")),
    path("console/", include("safeguard.console.urls")),
    path("", include("safeguard.console.root_urls")),
]

# Under /api/ a 404 is JSON in the API's error shape (safeguard.core.api.not_found).
handler404 = "safeguard.core.api.not_found"
