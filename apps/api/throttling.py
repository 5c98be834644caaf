from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class ApplicationRateThrottle(SimpleRateThrottle):
    """Requests per application, counted on the shared cache so every web process sees one budget.

    The rate is read on each request (not frozen at import as DRF's THROTTLE_RATES is), so it
    follows `API_THROTTLE_RATE` from the environment and the tests' `settings` fixture.
    """

    scope = "application"

    def get_rate(self):
        return settings.API_THROTTLE_RATE

    def get_cache_key(self, request, view):
        application = getattr(request, "auth", None)
        if application is None:
            return None  # unauthenticated requests never reach a view; nothing to count
        return self.cache_format % {"scope": self.scope, "ident": application.app_id}
