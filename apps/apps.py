from django.apps import AppConfig


class AppsConfig(AppConfig):
    """Applications (integrations) and webhook delivery. The odd name is the app's own: `apps`."""

    name = "apps"
    verbose_name = "Applications"

    def ready(self):
        from devices import outbox

        from .services import fanout

        outbox.register_consumer("apps.deliveries", fanout.deliveries_fan_out)
