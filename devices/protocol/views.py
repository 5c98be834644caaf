"""HTTP endpoints of the device protocol (/device/v1/…): JSON in, JSON out, one error shape.

They are DRF APIView classes only so drf-spectacular documents them: `dispatch` is replaced by a
lean one that skips DRF's request wrapping, content negotiation and renderers, which would cost
more than the check-in itself. Checks run in a fixed order: rate limits, credentials, body, work.
"""

import logging
from http import HTTPStatus

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.views import APIView

from portal.errors import ApplicationError, Throttled, ValidationError, error_body
from portal.http import BadBasicCredentials, basic_credentials, client_ip, json_error

from ..ca import product_ca_ensure, product_crl_cached
from ..command_queue import command_ack
from ..models import Product
from ..mqtt.broker import mqtt_endpoint
from ..services import token_digest
from . import limits, renewal, schema, services
from .bodies import BadBody, json_object_parse, too_large
from .services import Unauthenticated

logger = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 200
MAX_SERIAL_LENGTH = 64


def _error_response(exc: ApplicationError, *, challenge=None) -> JsonResponse:
    body = error_body(exc.code, exc.message, exc.fields)
    headers = {}
    if isinstance(exc, Throttled):
        body["error"]["retry_after"] = exc.retry_after
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthenticated) and challenge:
        headers["WWW-Authenticate"] = challenge
    return JsonResponse(body, status=exc.status, headers=headers)


def _declared_length(request, limit) -> int | None:
    """The body's Content-Length, refused past the cap before anything is read; None when chunked."""
    meta = request.META
    if not meta.get("CONTENT_LENGTH") and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadBody("Content-Length is not a number.") from None
    if length > limit:
        raise too_large(limit)
    return length


def _read_capped(request, limit, *, chunked) -> bytes:
    """At most limit + 1 bytes of the body: enough to tell one over the cap, never more.

    A chunked body has no Content-Length, so Django's request stream reads as empty: it is read
    from the server's input, which gunicorn ends where the body ends (wsgi.input_terminated).
    """
    stream = request
    if chunked:
        if not request.META.get("wsgi.input_terminated"):
            raise BadBody(
                "Send the body with a Content-Length header.",
                code="length_required",
                status=HTTPStatus.LENGTH_REQUIRED,
            )
        stream = request.META["wsgi.input"]
    parts, size = [], 0
    while size <= limit:
        part = stream.read(limit + 1 - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def read_json_object(request, *, required=True) -> dict:
    """The request's JSON object body, refused once it is over the cap: from Content-Length before
    it is read, or while a chunked body is read."""
    limit = settings.DEVICE_CHECKIN_MAX_BYTES
    length = _declared_length(request, limit)
    if length == 0 and not required:
        return {}
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise BadBody(
            "Send the body as JSON with Content-Type: application/json.",
            code="unsupported_media_type",
            status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        )
    raw = _read_capped(request, limit, chunked=length is None)
    if not raw and not required:
        return {}
    return json_object_parse(raw)


def _limit(request, scope, device_ident):
    limits.hit(
        (f"dev-ip-{scope}", client_ip(request) or "-", settings.DEVICE_RATE_LIMIT_PER_IP),
        (f"dev-{scope}", device_ident, settings.DEVICE_RATE_LIMIT_PER_DEVICE),
    )


def _bearer_token(request) -> str:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("Send the device token as Authorization: Bearer <token>.")
    return token


def _basic_credentials(request) -> tuple[str, str]:
    try:
        credentials = basic_credentials(request, max_user=MAX_SERIAL_LENGTH, max_password=MAX_TOKEN_LENGTH)
    except BadBasicCredentials:
        raise Unauthenticated() from None
    if credentials is None:
        raise Unauthenticated("Send the serial and factory key with HTTP Basic authentication.")
    return credentials


class DeviceEndpoint(APIView):
    """Base of the device endpoints: a lean dispatch answering ApplicationErrors as JSON errors."""

    permission_classes = []
    challenge = 'Bearer realm="device"'
    scope = "device"

    def dispatch(self, request, *args, **kwargs):
        method = request.method.lower()
        handler = getattr(type(self), method, None) if method in ("get", "post") else None
        if handler is None:
            allowed = ", ".join(m.upper() for m in ("get", "post") if hasattr(type(self), m))
            response = JsonResponse(
                error_body("method_not_allowed", f"Use {allowed}."),
                status=HTTPStatus.METHOD_NOT_ALLOWED,
                headers={"Allow": allowed},
            )
            return response
        try:
            return handler(self, request, *args, **kwargs)
        except ApplicationError as exc:
            if isinstance(exc, Unauthenticated | BadBody | ValidationError):
                logger.warning(
                    "device.request_refused",
                    extra={"endpoint": self.scope, "code": exc.code, "ip": client_ip(request)},
                )
            return _error_response(exc, challenge=self.challenge)


def _device_from_token(request, scope):
    try:
        token = _bearer_token(request)
    except Unauthenticated:
        # Still counted against the address: guessing tokens must be limited too.
        limits.hit((f"dev-ip-{scope}", client_ip(request) or "-", settings.DEVICE_RATE_LIMIT_PER_IP))
        raise
    _limit(request, scope, token_digest(token)[:32])
    return token


_ERRORS = {
    400: OpenApiResponse(schema.DeviceErrorOutput, description="Malformed body or invalid values."),
    401: OpenApiResponse(schema.DeviceErrorOutput, description="Unknown device or wrong/void credentials."),
    411: OpenApiResponse(schema.DeviceErrorOutput, description="Chunked body a server in front cannot pass on."),
    413: OpenApiResponse(schema.DeviceErrorOutput, description="Body over 64 KiB (declared or read)."),
    415: OpenApiResponse(schema.DeviceErrorOutput, description="Body not sent as application/json."),
    429: OpenApiResponse(schema.DeviceErrorOutput, description="Rate limited; see retry_after and Retry-After."),
}


class DeviceProvisionApi(DeviceEndpoint):
    authentication_classes = [schema.FactoryKeyAuthentication]
    challenge = 'Basic realm="device"'
    scope = "provision"

    @extend_schema(
        tags=["device protocol"],
        operation_id="device_provision",
        summary="Poll until claimed, then receive credentials",
        request=schema.DeviceProvisionInput,
        responses={200: schema.DeviceProvisionOutput, **_ERRORS},
    )
    def post(self, request):
        try:
            serial, key = _basic_credentials(request)
        except Unauthenticated:
            limits.hit((f"dev-ip-{self.scope}", client_ip(request) or "-", settings.DEVICE_RATE_LIMIT_PER_IP))
            raise
        _limit(request, self.scope, serial)
        body = read_json_object(request, required=False)
        attempt = body.get("attempt", 0)
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise ValidationError("attempt must be a whole number ≥ 0.", fields={"attempt": ["A whole number ≥ 0."]})
        csr = body.get("csr")
        answer = services.device_provision(
            serial=serial, factory_key=key, attempt=attempt, csr_pem=csr, ip=client_ip(request)
        )
        if answer["state"] == "claimed":
            answer["endpoints"] = {
                "checkin": request.build_absolute_uri(reverse("device-protocol:checkin")),
                "commands": request.build_absolute_uri(reverse("device-protocol:commands")),
                "certificate": request.build_absolute_uri(reverse("device-protocol:certificate")),
            }
            if answer["credentials"]["certificate"] and (mqtt := mqtt_endpoint()):
                answer["endpoints"]["mqtt"] = mqtt
        return JsonResponse(answer)


class DeviceCheckinApi(DeviceEndpoint):
    authentication_classes = [schema.DeviceTokenAuthentication]
    scope = "checkin"

    @extend_schema(
        tags=["device protocol"],
        operation_id="device_checkin",
        summary="Report values, receive open commands",
        request=schema.DeviceCheckinInput,
        responses={200: schema.DeviceCheckinOutput, **_ERRORS},
    )
    def post(self, request):
        token = _device_from_token(request, self.scope)
        body = read_json_object(request)
        answer = services.device_checkin(token=token, values=services.checkin_values(body), ip=client_ip(request))
        return JsonResponse(answer)


class DeviceCertificateRenewApi(DeviceEndpoint):
    authentication_classes = [schema.DeviceTokenAuthentication]
    scope = "certificate"

    @extend_schema(
        tags=["device protocol"],
        operation_id="device_certificate_renew",
        summary="Renew the client certificate (the replaced one is revoked at once)",
        request=schema.DeviceCertificateRenewInput,
        responses={
            200: schema.DeviceCertificateRenewOutput,
            **_ERRORS,
            400: OpenApiResponse(
                schema.DeviceErrorOutput,
                description="Malformed body, or a CSR refused: invalid_csr, csr_unsupported_key, csr_wrong_subject.",
            ),
        },
    )
    def post(self, request):
        token = _device_from_token(request, self.scope)
        body = read_json_object(request)
        return JsonResponse(renewal.device_certificate_renew(token=token, csr_pem=body.get("csr")))


class DeviceCommandListApi(DeviceEndpoint):
    authentication_classes = [schema.DeviceTokenAuthentication]
    scope = "commands"

    @extend_schema(
        tags=["device protocol"],
        operation_id="device_commands_list",
        summary="Fetch open commands (pending ones become delivered)",
        responses={200: schema.DeviceCommandListOutput, 401: _ERRORS[401], 429: _ERRORS[429]},
    )
    def get(self, request):
        token = _device_from_token(request, self.scope)
        device = services.device_for_token(token=token)
        return JsonResponse({"commands": services.device_commands_fetch(device=device)})


class DeviceCommandAckApi(DeviceEndpoint):
    authentication_classes = [schema.DeviceTokenAuthentication]
    scope = "commands"

    @extend_schema(
        tags=["device protocol"],
        operation_id="device_command_ack",
        summary="Report a command's outcome",
        request=schema.DeviceCommandAckInput,
        responses={
            200: schema.DeviceCommandAckOutput,
            404: OpenApiResponse(schema.DeviceErrorOutput, description="No such command for this device."),
            409: OpenApiResponse(schema.DeviceErrorOutput, description="Already final with another outcome."),
            **_ERRORS,
        },
    )
    def post(self, request, command_id):
        token = _device_from_token(request, self.scope)
        body = read_json_object(request)
        device = services.device_for_token(token=token)
        command = command_ack(
            device=device, command_id=command_id, status=body.get("status"), result=body.get("result")
        )
        return JsonResponse({"id": str(command.id), "status": command.status})


def _pem_response(request, slug, render) -> HttpResponse:
    if request.method != "GET":
        return JsonResponse(error_body("method_not_allowed", "Use GET."), status=405, headers={"Allow": "GET"})
    product = Product.objects.filter(slug=slug).first()
    if product is None:
        return json_error("not_found", "No such product.", HTTPStatus.NOT_FOUND)
    if not product.ca_certificate_pem:
        # A public GET writes nothing: the CA is made when the first device provisions with a CSR
        # (or by `manage.py product_ca`), and until then no certificate of it exists to revoke.
        return json_error("no_ca", "This product has issued no certificates yet.", HTTPStatus.NOT_FOUND)
    response = HttpResponse(render(product), content_type="application/x-pem-file")
    response["Cache-Control"] = "public, max-age=300"
    return response


def product_ca_certificate(request, slug):
    """The product CA's certificate (PEM): the trust anchor for its devices' client certificates."""
    return _pem_response(request, slug, lambda product: product_ca_ensure(product=product))


def product_ca_crl(request, slug):
    """The product CA's revocation list (PEM), for whatever verifies its devices' certificates."""
    return _pem_response(request, slug, lambda product: product_crl_cached(product=product))
