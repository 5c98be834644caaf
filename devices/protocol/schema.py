"""OpenAPI description of the device protocol.

The endpoints are lean views (see views.py), not DRF-parsed ones; these serializers and
authentication classes exist so drf-spectacular can describe them. They never run on a request.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication

from devices.ca import ACCEPTED_KEYS_TEXT, MAX_CSR_BYTES
from devices.command_queue import MAX_STRING

from .services import MAX_VALUES


class FactoryKeyAuthentication(BaseAuthentication):
    """HTTP Basic with the device's serial and factory key (checked by the provisioning view)."""

    def authenticate(self, request):
        return None


class DeviceTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` with the token received when provisioning."""

    def authenticate(self, request):
        return None


class FactoryKeyScheme(OpenApiAuthenticationExtension):
    target_class = FactoryKeyAuthentication
    name = "deviceFactoryKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "basic",
            "description": "The device's serial as user name and its factory key as password.",
        }


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = DeviceTokenAuthentication
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The token from the `claimed` provisioning answer."}


class ErrorDetailOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)
    retry_after = serializers.IntegerField(required=False, help_text="Seconds to wait (429 only).")


class DeviceErrorOutput(serializers.Serializer):
    error = ErrorDetailOutput()


class DeviceProvisionInput(serializers.Serializer):
    attempt = serializers.IntegerField(
        min_value=0, default=0, help_text="Polls made since power-on without being claimed (0 for the first)."
    )
    csr = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="Absent or null: no certificate. A PEM certificate signing request for an EC P-256 "
        "(recommended) or P-384, Ed25519, or RSA "
        "≥ 2048-bit key (any other: csr_unsupported_key). Only its public key is used; a CN, if any, must be "
        "the device's serial.",
    )


class CredentialsOutput(serializers.Serializer):
    token = serializers.CharField(help_text="Bearer token for the other endpoints. Store it; it is shown once.")
    certificate = serializers.CharField(allow_null=True, help_text="PEM client certificate (CN = serial) or null.")
    ca_chain = serializers.CharField(allow_null=True, help_text="PEM certificate of the product CA, or null.")


class MqttEndpointOutput(serializers.Serializer):
    url = serializers.CharField(help_text="mqtts://host:port of the broker; connect with the issued certificate.")
    ca = serializers.CharField(help_text="PEM certificate of the broker CA: verify the broker against it.")


class EndpointsOutput(serializers.Serializer):
    checkin = serializers.URLField()
    commands = serializers.URLField()
    certificate = serializers.URLField(help_text="Where to renew the certificate (POST, bearer token).")
    mqtt = MqttEndpointOutput(
        required=False, help_text="When the portal runs a broker and a certificate was issued (see the device guide)."
    )


class DeviceProvisionOutput(serializers.Serializer):
    state = serializers.ChoiceField(choices=["unclaimed", "claimed", "provisioned"])
    retry_after = serializers.IntegerField(required=False, help_text="unclaimed: seconds before the next poll.")
    credentials = CredentialsOutput(required=False, help_text="claimed only.")
    endpoints = EndpointsOutput(required=False, help_text="claimed only.")


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": MAX_VALUES,
        "propertyNames": {"minLength": 1, "maxLength": 64},
        "additionalProperties": {
            "oneOf": [
                {"type": "number"},
                {"type": "string", "maxLength": MAX_STRING},
                {"type": "boolean"},
                {"type": "null"},
            ]
        },
    }
)
class FlatValuesField(serializers.DictField):
    """A device's values: a flat object, as `devices.command_queue.flat_object_errors` requires."""


class DeviceCheckinInput(serializers.Serializer):
    values = FlatValuesField(
        help_text=f"At most {MAX_VALUES} names of 1 to 64 characters, each a number, a string (at most "
        f"{MAX_STRING} characters), true, false or null: a flat object, never a list or a nested object. "
        "NaN and Infinity are not JSON: a body with them is `malformed_json`.",
    )


class DeviceCertificateRenewInput(serializers.Serializer):
    csr = serializers.CharField(
        max_length=MAX_CSR_BYTES,
        help_text="A PEM certificate signing request for the device's current key pair or a new one. Keys: "
        f"{ACCEPTED_KEYS_TEXT} (any other: csr_unsupported_key). Only its public key is used; a CN, if any, "
        "must be the device's serial (else csr_wrong_subject). Missing or not a CSR: invalid_csr.",
    )


class DeviceCertificateRenewOutput(serializers.Serializer):
    certificate = serializers.CharField(
        help_text="PEM client certificate (CN = serial), valid for the product's certificate_days from now. "
        "The certificate it replaces is on the CA's revocation list from this answer on."
    )
    ca_chain = serializers.CharField(help_text="PEM certificate of the product CA.")


class DeviceCommandOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    params = serializers.DictField(child=serializers.JSONField())
    expires_at = serializers.DateTimeField()


class DeviceCheckinOutput(serializers.Serializer):
    commands = DeviceCommandOutput(many=True)
    next_checkin = serializers.IntegerField(help_text="Seconds until the next check-in.")


class DeviceCommandListOutput(serializers.Serializer):
    commands = DeviceCommandOutput(many=True)


class DeviceCommandAckInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=["succeeded", "failed"])
    result = serializers.DictField(child=serializers.JSONField(), required=False)


class DeviceCommandAckOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
