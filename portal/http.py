"""Small HTTP helpers shared by the apps' JSON endpoints and views."""

import base64
import binascii
import ipaddress
from http import HTTPStatus

from django.conf import settings
from django.http import JsonResponse

from .errors import error_body
from .text import storable


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


class BadBasicCredentials(ValueError):
    """An `Authorization: Basic` header that does not hold `user:password` within bounds.

    `reason` is "base64" (not valid base64 of UTF-8), "shape" (no colon, an empty part, a part over its
    bound) or "name" (a user name no stored row could hold); each caller words its own answer."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def basic_credentials(request, *, max_user: int, max_password: int) -> tuple[str, str] | None:
    """The (user, password) of the request's `Authorization: Basic` header; None when the header is
    absent or of another scheme; BadBasicCredentials when it is Basic but malformed. The one parser of
    HTTP Basic for the device protocol (serial:factory key) and the integrator API (AppId:Secret)."""
    scheme, _, encoded = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise BadBasicCredentials("base64") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user or not password or len(user) > max_user or len(password) > max_password:
        raise BadBasicCredentials("shape")
    if not storable(user):  # no row holds such a name; the database could not even look it up
        raise BadBasicCredentials("name")
    return user, password
