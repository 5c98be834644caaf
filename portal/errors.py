"""One error vocabulary for services, HTML views and JSON APIs.

Services raise ApplicationError subclasses; views turn them into form errors, and every JSON
endpoint answers {"error": {"code", "message", "fields"?}}.
"""

import logging
import math
from http import HTTPStatus

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A rule was broken by the caller's input; message is safe to show to the user."""

    code = "error"
    status = HTTPStatus.BAD_REQUEST
    message = "The request could not be completed."

    def __init__(self, message=None, *, code=None, status=None, fields=None):
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.fields = fields or {}
        super().__init__(self.message)


class ValidationError(ApplicationError):
    code = "invalid"


class NotFound(ApplicationError):
    code = "not_found"
    status = HTTPStatus.NOT_FOUND
    message = "Not found."


class Conflict(ApplicationError):
    code = "conflict"
    status = HTTPStatus.CONFLICT


class Throttled(ApplicationError):
    code = "throttled"
    status = HTTPStatus.TOO_MANY_REQUESTS
    message = "Too many attempts. Wait a while and try again."

    def __init__(self, message=None, *, retry_after=60, **kwargs):
        self.retry_after = int(retry_after)
        super().__init__(message, **kwargs)


class Refused(PermissionDenied):
    """A 403 whose message is safe to show (the friendly 403 page says it): raised where the user
    may see the thing but not act on it this way, as devices.access does for a device."""

    def __init__(self, message):
        self.message = message
        super().__init__(message)


def error_body(code, message, fields=None):
    body = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return body


def _drf_fields(detail):
    if isinstance(detail, dict):
        return {
            key: [str(item) for item in value] if isinstance(value, list) else [str(value)]
            for key, value in detail.items()
        }
    return {}


def api_exception_handler(exc, context):
    """DRF's exception handler, answering in the portal's one error shape."""
    if isinstance(exc, ApplicationError):
        response = Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
        if isinstance(exc, Throttled):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: let Django log it and answer 500
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, exceptions.Throttled):
        # DRF's wait is fractional (or None when unknown); round up so a client never retries early.
        headers["Retry-After"] = str(max(1, math.ceil(exc.wait or 1)))
    if isinstance(exc, exceptions.ValidationError):
        fields = _drf_fields(exc.detail)
        if isinstance(exc.detail, list):
            message = " ".join(str(item) for item in exc.detail)
        else:
            message = "Some fields are not valid." if fields else str(exc.detail)
        body = error_body("invalid", message, fields)
    elif isinstance(exc, exceptions.ParseError):
        # One code for a body that is not JSON, as the device protocol answers it.
        body = error_body("malformed_json", str(exc.detail))
    else:
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        body = error_body(code, str(exc.detail))
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        status = HTTPStatus.UNAUTHORIZED
    else:
        status = exc.status_code
    return Response(body, status=status, headers=headers)
