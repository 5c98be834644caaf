from django.apps import AppConfig


class AppsConfig(AppConfig):
    """Applications (integrations) and webhook delivery. The odd name is the app's own: `apps`."""

    name = "apps"
    verbose_name = "Applications"

    def ready(self):
        from devices import access, outbox, panels

        from . import device_views
        from .services import fanout

        outbox.register_consumer("apps.deliveries", fanout.deliveries_fan_out)
        panels.register(
            "applications",
            "apps/device_panels/applications.html",
            context=device_views.applications_context,
            order=400,
            capability=access.MANAGE,
        )
