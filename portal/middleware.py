from django.conf import settings
from django.utils.cache import patch_cache_control

from .views import nul_in_address


class SecurityHeadersMiddleware:
    """Adds the Content-Security-Policy (no inline scripts) and a Permissions-Policy to every answer."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.csp = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        if self.csp and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.csp
        response.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
        return response


class RefuseNulInAddressMiddleware:
    """Answers 400 to an address whose path or query holds a NUL (%00): no page takes one, and
    PostgreSQL could not even look it up, so a search box or URL part would otherwise end in a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path_info or "%00" in request.META.get("QUERY_STRING", ""):
            return nul_in_address(request)
        return self.get_response(request)


class NoStoreForAccountsMiddleware:
    """Cache-Control: no-store on every answer to a signed-in person and on the account pages: a
    shared computer's back button or a proxy must not show a device list, a claim code or a
    password form. An answer that sets its own Cache-Control (public assets) keeps it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Cache-Control" in response:
            return response
        user = getattr(request, "user", None)
        if (user is not None and user.is_authenticated) or request.path_info.startswith("/accounts/"):
            patch_cache_control(response, no_store=True, private=True)
        return response
