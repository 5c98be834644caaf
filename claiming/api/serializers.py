from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from apps.api.serializers import DeviceOutput
from devices.services import PIN_MAX_LENGTH


class ClaimCreateInput(serializers.Serializer):
    user_email = serializers.EmailField(
        help_text="The user who becomes the owner; they must have connected your application."
    )
    code = serializers.CharField(
        required=False, max_length=64, help_text="A claim code from the label (any case, hyphens optional)."
    )
    serials = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        max_length=500,
        help_text="With `code`: claim only these of the devices the code covers (default: all of them).",
    )
    serial = serializers.CharField(required=False, max_length=64, help_text="With `pin`: the device's serial number.")
    pin = serializers.CharField(
        required=False, max_length=PIN_MAX_LENGTH, help_text="With `serial`: the device's claiming PIN."
    )

    def validate(self, attrs):
        by_code = "code" in attrs
        by_pin = "serial" in attrs or "pin" in attrs
        if by_code == by_pin:
            raise serializers.ValidationError("Give either a code, or a serial and a PIN.")
        if by_pin:
            missing = {
                name: ["Required with serial and PIN claiming."] for name in ("serial", "pin") if name not in attrs
            }
            if missing:
                raise serializers.ValidationError(missing)
        if "serials" in attrs and not by_code:
            raise serializers.ValidationError({"serials": ["Only with a code."]})
        return attrs


class ClaimOutput(serializers.Serializer):
    devices = DeviceOutput(many=True, help_text="The devices claimed for the user, now linked to your application.")


CLAIM_EXAMPLES = [
    OpenApiExample(
        "With a claim code", value={"user_email": "alice@example.com", "code": "7KQ2M-XD9WF"}, request_only=True
    ),
    OpenApiExample(
        "With a serial and PIN",
        value={"user_email": "alice@example.com", "serial": "SN00001234", "pin": "4711"},
        request_only=True,
    ),
]
