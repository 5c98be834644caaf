"""The JSON bodies devices send, over HTTP or MQTT: one parser, one size cap, the same refusals."""

import json
import math
from http import HTTPStatus

from django.conf import settings

from portal.errors import ApplicationError


class BadBody(ApplicationError):
    code = "invalid_body"


class _NotAJsonNumber(ValueError):
    pass


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise _NotAJsonNumber(text)
    return value


def _no_constant(name):
    raise _NotAJsonNumber(name)


def too_large(limit) -> BadBody:
    return BadBody(
        f"The body is larger than {limit} bytes.", code="too_large", status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    )


def json_object_parse(raw: bytes) -> dict:
    """A device's body as a JSON object: at most DEVICE_CHECKIN_MAX_BYTES, numbers finite (NaN and
    Infinity are not JSON); BadBody otherwise."""
    limit = settings.DEVICE_CHECKIN_MAX_BYTES
    if len(raw) > limit:
        raise too_large(limit)
    try:
        data = json.loads(raw, parse_float=_finite_float, parse_constant=_no_constant)
    except _NotAJsonNumber:
        message = "NaN, Infinity and numbers beyond ±1.8e308 are not JSON numbers: send a finite number or null."
        raise BadBody(message, code="malformed_json") from None
    except (ValueError, RecursionError):
        raise BadBody("The body is not valid JSON.", code="malformed_json") from None
    if not isinstance(data, dict):
        raise BadBody("The body must be a JSON object.")
    return data
