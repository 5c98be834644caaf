from django.conf import settings

from .views import bad_request


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
            return bad_request(request)
        return self.get_response(request)
