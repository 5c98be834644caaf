"""Small HTTP helpers shared by the apps' JSON endpoints and views."""

import ipaddress
from http import HTTPStatus

from django.conf import settings
from django.http import JsonResponse

from .errors import error_body


def json_error(code, message, status=HTTPStatus.BAD_REQUEST, *, fields=None, headers=None):
    return JsonResponse(error_body(code, message, fields), status=status, headers=headers)


def client_ip(request):
    """The caller's address: REMOTE_ADDR, or the trusted proxy's header when one is configured."""
    header = settings.TRUSTED_PROXY_IP_HEADER
    if header:
        forwarded = request.META.get(header, "")
        # The proxy appends the address it saw last; earlier entries are the client's to forge.
        candidate = forwarded.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            pass
    return request.META.get("REMOTE_ADDR") or None
