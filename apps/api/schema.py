"""OpenAPI helpers: every operation documents each error it can answer, in the one error shape."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from .serializers import ErrorOutput

_ERRORS = {
    400: (
        "The input is not valid: malformed JSON, a missing or wrong field. `fields` names each one.",
        {"code": "invalid", "message": "Some fields are not valid.", "fields": {"name": ["This field is required."]}},
    ),
    401: (
        "No credentials, a wrong App Id or Secret, or a paused application. "
        'The answer carries `WWW-Authenticate: Basic realm="api"`.',
        {"code": "authentication_failed", "message": "The App Id or Secret is wrong."},
    ),
    403: (
        "The action is not allowed for this user.",
        {"code": "email_unverified", "message": "Verify your email address before claiming a device."},
    ),
    404: (
        "Not found, or not linked to your application: the two are never told apart.",
        {"code": "device_not_found", "message": "No device with this id is linked to your application."},
    ),
    409: (
        "The state does not allow it, e.g. the device is already claimed.",
        {"code": "already_claimed", "message": "This device has already been claimed."},
    ),
    415: (
        "The body is not `application/json`.",
        {"code": "unsupported_media_type", "message": 'Unsupported media type "text/plain" in request.'},
    ),
    429: (
        "Too many requests from your application. Wait for the seconds given in `Retry-After`.",
        {"code": "throttled", "message": "Request was throttled. Expected available in 12 seconds."},
    ),
}

LIST_ERRORS = (400, 401, 429)
READ_ERRORS = (400, 401, 404, 429)
WRITE_ERRORS = (400, 401, 404, 415, 429)


def error_responses(*statuses) -> dict:
    """`responses` entries for `extend_schema`: the shared ErrorOutput with an example per status."""
    responses = {}
    for status in statuses:
        description, example = _ERRORS[status]
        responses[status] = OpenApiResponse(
            ErrorOutput,
            description=description,
            examples=[OpenApiExample(f"{status}", value={"error": example}, response_only=True, status_codes=[status])],
        )
    return responses
