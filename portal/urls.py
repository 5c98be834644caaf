"""The one module that wires every app together (the layering's one exception)."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from apps import healthz

from . import views

urlpatterns = [
    # Devices: first, because resolving walks this list in order and devices call far more often than people.
    path("device/v1/", include("devices.protocol.urls")),
    path("", views.home, name="home"),
    path("branding.css", views.branding_css, name="branding-css"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    # Owner pages
    path("", include("claiming.urls")),
    path("devices/", include("devices.urls")),
    path("devices/", include("apps.device_urls")),
    path("apps/", include("apps.urls")),
    path("", include("devices.sharing_urls")),
    # The maker's support staff: devices under their owners' live grants.
    path("support/", include("devices.support_urls")),
    # Integrators
    path("api/v1/", include("apps.api.urls")),
    path("api/v1/", include("claiming.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", views.api_docs, name="api-docs"),
    path("healthz", healthz.healthz, name="healthz"),
    # Clients of the API and the device protocol read JSON, also for a path that does not exist and
    # also under DEBUG (whose own 404 page is HTML).
    re_path(r"^(?:api|device)/", views.machine_not_found, name="machine-not-found"),
]

handler400 = "portal.views.bad_request"
handler403 = "portal.views.permission_denied"
handler404 = "portal.views.page_not_found"
handler500 = "portal.views.server_error"
