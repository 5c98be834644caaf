from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin import apps as admin_apps
from django.core import checks


class PortalConfig(AppConfig):
    default = True
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        checks.register(proxy_client_address_check, checks.Tags.security, deploy=True)


class PortalAdminConfig(admin_apps.AdminConfig):
    default = False  # named in INSTALLED_APPS in django.contrib.admin's place; "portal" is PortalConfig
    default_site = "portal.admin_site.PortalAdminSite"


def proxy_client_address_check(app_configs, **kwargs):
    """Behind a proxy (it sets the scheme header) every request comes from the proxy's address, so
    every per-IP limit would count all clients together: one guesser would lock everyone out."""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None) and not settings.TRUSTED_PROXY_IP_HEADER:
        return [
            checks.Warning(
                "SECURE_PROXY_SSL_HEADER is set but TRUSTED_PROXY_IP_HEADER is not: behind a proxy every "
                "client would share the proxy's address in rate limits and logs.",
                hint="Set TRUSTED_PROXY_IP_HEADER to the header your proxy appends the client's address to, "
                "e.g. HTTP_X_FORWARDED_FOR.",
                id="portal.W001",
            )
        ]
    return []
