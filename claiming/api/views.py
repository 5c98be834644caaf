"""POST /api/v1/claims: an application claims devices for a user who connected it.

It lives in claiming (the highest app) because it runs claiming's services, and reuses the
integrator API's authentication, throttle and error shape from `apps.api`. The rules, the limits
on guessing and the audit trail are the owner's form's: the same service functions run.
"""

import logging

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.api.schema import error_responses
from apps.api.serializers import ErrorOutput
from apps.api.views import ERROR_HEADERS, ApplicationApi
from apps.models import Connection
from portal.errors import ValidationError
from portal.http import client_ip

from .. import services
from .serializers import CLAIM_EXAMPLES, ClaimCreateInput, ClaimOutput

logger = logging.getLogger(__name__)

NOT_CONNECTED = "No user with this email address has connected your application. Send them a connect link first."


def connected_user_get(application, email):
    """The user with `email` who connected `application`; the same error whether the address is unknown or not."""
    connection = (
        Connection.objects.filter(application=application, user__email__iexact=email).select_related("user").first()
    )
    if connection is None:
        raise ValidationError(NOT_CONNECTED, code="user_not_connected", fields={"user_email": [NOT_CONNECTED]})
    return connection.user


CLAIM_CONFLICT = OpenApiResponse(
    ErrorOutput,
    description="`already_claimed`: someone else owns the device, or its maker pre-claimed it for another "
    "email address. `already_yours`: the user owns every device the request names already (a retried claim "
    "whose first answer was lost lands here: the devices are the user's and linked to your application).",
    examples=[
        OpenApiExample(
            "already_claimed",
            value={"error": {"code": "already_claimed", "message": "This device has already been claimed."}},
            response_only=True,
            status_codes=[409],
        ),
        OpenApiExample(
            "already_yours",
            value={"error": {"code": "already_yours", "message": "You already own this device."}},
            response_only=True,
            status_codes=[409],
        ),
    ],
)


class ClaimCreateApi(ApplicationApi):
    """Claim devices for a user who connected your application; they are linked to it at once."""

    @extend_schema(
        operation_id="claims_create",
        summary="Claim devices for a user",
        description="With `code` (optionally narrowed by `serials`) or with `serial` and `pin`, for the user "
        "`user_email`, who must have connected your application through a connect link. The same rules and "
        "limits on failed attempts as the portal's claim form: a wrong code, serial or PIN gets one message, "
        "repeated failures a 429. The claimed devices are linked to your application.",
        request=ClaimCreateInput,
        examples=CLAIM_EXAMPLES,
        parameters=ERROR_HEADERS,
        responses={201: ClaimOutput, **error_responses(400, 401, 403, 415, 429), 409: CLAIM_CONFLICT},
        tags=["claims"],
    )
    def post(self, request):
        data = self.body_input(ClaimCreateInput)
        user = connected_user_get(self.application, data["user_email"])
        ip = client_ip(request)
        if "code" in data:
            devices = services.device_claim_by_code(
                user=user, code=data["code"], serials=data.get("serials"), application=self.application, ip=ip
            )
        else:
            device = services.device_claim_by_pin(
                user=user, serial=data["serial"], pin=data["pin"], application=self.application, ip=ip
            )
            devices = [device]
        logger.info(
            "api.claimed", extra={"app_id": self.application.app_id, "user_id": user.pk, "devices": len(devices)}
        )
        return Response(ClaimOutput({"devices": devices}).data, status=status.HTTP_201_CREATED)
