import re
import sys

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import render
from django.template import loader
from django.urls import Resolver404, resolve
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from .errors import Refused
from .http import json_error

_COLOR = re.compile(r"^#[0-9a-fA-F]{3,8}$")


@require_GET
def home(request):
    return render(request, "home.html")


@require_GET
@cache_control(max_age=3600, public=True)
def branding_css(request):
    """The white-label colour as a stylesheet: the CSP allows no inline styles."""
    color = settings.PORTAL_PRIMARY_COLOR if _COLOR.match(settings.PORTAL_PRIMARY_COLOR) else "#0b6bcb"
    return HttpResponse(f":root {{ --primary: {color}; }}\n", content_type="text/css")


@require_GET
def api_docs(request):
    return render(request, "api_docs.html")


def _error_page(request, status, title, message, template="error.html"):
    wants_json = request.path.startswith(("/api/", "/device/"))
    if wants_json:
        return json_error(title.lower().replace(" ", "_"), message, status)
    return render(request, template, {"status": status, "title": title, "message": message}, status=status)


def bad_request(request, exception=None):
    return _error_page(request, 400, "Bad request", "The request could not be understood.")


def nul_in_address(request):
    return _error_page(
        request, 400, "Bad request", "The address holds a NUL character (%00), which no page or API takes."
    )


def permission_denied(request, exception=None):
    """403. A refusal that says why (portal.errors.Refused, such as "Only the owner of this device
    can …") shows its message; any other keeps the generic one, since its text was not written for users."""
    message = exception.message if isinstance(exception, Refused) else "You are not allowed to do that."
    return _error_page(request, 403, "Forbidden", message, template="403.html")


def page_not_found(request, exception=None):
    return _error_page(request, 404, "Not found", "There is nothing here. Check the address, or go back home.")


@csrf_exempt
def machine_not_found(request, exception=None):
    """Any method to an unknown /api/ or /device/ path: a JSON 404, never the CSRF refusal a POST
    from a client without a session would otherwise get. A GET that only lacks its trailing slash
    (/api/docs) is sent on to the page, as APPEND_SLASH does elsewhere (this catch-all matches first)."""
    if request.method in ("GET", "HEAD") and _is_a_page(request.path_info + "/"):
        query = request.META.get("QUERY_STRING", "")
        return HttpResponsePermanentRedirect(request.path + "/" + (f"?{query}" if query else ""))
    return page_not_found(request, exception)


def _is_a_page(path):
    try:
        return resolve(path).url_name != "machine-not-found"
    except Resolver404:
        return False


def server_error(request):
    """500, or 503 when the database is down. Rendered without the request's context: the page must
    not need the session, the user or the database that may be what failed."""
    # Django calls this inside the `except` that caught the error, so the error is at hand. A
    # database outage is not a bug of ours: answer 503 and let clients retry; the portal reconnects
    # by itself once the database is back. Other database errors (bad data, a broken query) are
    # bugs of ours like any other: 500.
    if isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        status, code, template = 503, "service_unavailable", "503.html"
        message = "The portal cannot reach its database right now. Try again shortly."
    else:
        status, code, template = 500, "server_error", "500.html"
        message = "Something went wrong on our side. It has been logged; please try again."
    if request.path.startswith(("/api/", "/device/")):
        response = json_error(code, message, status)
    else:
        response = HttpResponse(loader.render_to_string(template), status=status)
    if status == 503:
        response["Retry-After"] = "5"
    return response
