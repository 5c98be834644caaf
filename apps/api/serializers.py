"""Inputs and outputs of the integrator API: `<Entity>Output`, `<Entity><Action>Input`."""

from drf_spectacular.utils import OpenApiExample, extend_schema_field
from rest_framework import serializers

from devices.command_definitions import BUILT_IN
from devices.command_queue import MAX_TTL
from devices.models import DeviceStatus, ProductFieldKind

from .selectors import DEVICE_ROW_COLUMNS

# --- errors ------------------------------------------------------------------------------------


class ApiErrorDetailOutput(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `not_found`, `invalid`, `throttled`.")
    message = serializers.CharField(help_text="A sentence for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors by input field (400 only).",
    )


class ErrorOutput(serializers.Serializer):
    """The one error shape of every 4xx answer."""

    error = ApiErrorDetailOutput()


# --- devices -----------------------------------------------------------------------------------


_DATETIME = serializers.DateTimeField()


class DeviceOutput(serializers.Serializer):
    id = serializers.UUIDField()
    serial = serializers.CharField()
    product = serializers.CharField(source="product.slug", help_text="The product's slug.")
    name = serializers.CharField(help_text="The owner's nickname for the device; may be empty.")
    status = serializers.ChoiceField(choices=DeviceStatus.choices)
    last_seen_at = serializers.DateTimeField(allow_null=True)
    last_ip = serializers.CharField(allow_null=True, help_text="Address of the last check-in.")

    # The fields above describe the schema; the device list renders pages of 100, where DRF's
    # per-field machinery was most of the request's CPU, so the representation is built directly,
    # from a row of selectors.LinkedDeviceRows (the list) or a Device (the detail).
    # tests/apps/test_api_devices.py and test_api_device_rows.py check it against the declared fields.
    def to_representation(self, device):
        if not isinstance(device, dict):
            row = {name: getattr(device, name) for name in DEVICE_ROW_COLUMNS}
            device = {**row, "product_slug": device.product.slug}
        last_seen_at = device["last_seen_at"]
        return {
            "id": str(device["id"]),
            "serial": device["serial"],
            "product": device["product_slug"],
            "name": device["name"],
            "status": device["status"],
            "last_seen_at": last_seen_at and _DATETIME.to_representation(last_seen_at),
            "last_ip": device["last_ip"],
        }


class ProductFieldOutput(serializers.Serializer):
    key = serializers.CharField(help_text="The key of `values` this field describes.")
    label = serializers.CharField()
    unit = serializers.CharField(help_text="May be empty.")
    kind = serializers.ChoiceField(choices=ProductFieldKind.choices)
    decimals = serializers.IntegerField(help_text="Decimals the portal shows of a number.")
    expected_min = serializers.FloatField(allow_null=True, help_text="Expected range, low end (display only).")
    expected_max = serializers.FloatField(allow_null=True, help_text="Expected range, high end (display only).")
    states = serializers.DictField(
        child=serializers.CharField(), help_text="For kind `states`: each value (as text) to its name; else empty."
    )
    primary = serializers.BooleanField(help_text="One of the product's (at most two) primary fields.")


class DeviceDetailOutput(DeviceOutput):
    values = serializers.DictField(help_text="The latest values the device reported.")
    fields = serializers.SerializerMethodField(
        method_name="field_definitions",
        help_text="What the device's product declares its values mean, in the product's order. A key of "
        "`values` that no field declares is still reported; webhook bodies carry values alone.",
    )

    @extend_schema_field(ProductFieldOutput(many=True))
    def field_definitions(self, device):
        # context["fields"]: the product's fields (devices.product_fields.fields_for_product), read by the view.
        return [ProductFieldOutput(field).data for field in self.context["fields"]]

    def to_representation(self, device):
        return {**super().to_representation(device), "values": device.values, "fields": self.field_definitions(device)}


class DeviceFilterInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=DeviceStatus.choices, required=False)
    product = serializers.SlugField(required=False, help_text="A product's slug.")
    seen_since = serializers.DateTimeField(
        required=False, help_text="Only devices that checked in at or after this time (ISO 8601)."
    )


# --- readings ----------------------------------------------------------------------------------


class ReadingOutput(serializers.Serializer):
    recorded_at = serializers.DateTimeField()
    values = serializers.DictField()


class ReadingFilterInput(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Readings recorded at or after this time.")
    until = serializers.DateTimeField(required=False, help_text="Readings recorded before this time.")

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["Must be later than since."]})
        return attrs


# --- commands ----------------------------------------------------------------------------------


class CommandOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    params = serializers.DictField()
    status = serializers.CharField(help_text="`pending` → `delivered` → `succeeded` | `failed`, or `expired`.")
    result = serializers.DictField(help_text="What the device reported with `succeeded` or `failed`.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="Not delivered by then, the command expires.")


class CommandSendInput(serializers.Serializer):
    name = serializers.CharField(max_length=64, help_text="One of the commands the device's product accepts.")
    params = serializers.DictField(
        required=False,
        default=dict,
        help_text="A flat object of numbers, strings, booleans and nulls that fits the command's parameters: "
        + "; ".join(d.describe() for d in BUILT_IN.values())
        + ". A parameter that does not fit is a 400 naming `params.<name>`; defaults are filled in.",
    )
    ttl = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=int(MAX_TTL.total_seconds()),
        help_text="Seconds the command waits for the device before it expires (default 3600).",
    )


COMMAND_SEND_EXAMPLE = OpenApiExample(
    "Set the reporting interval", value={"name": "set_interval", "params": {"seconds": 30}, "ttl": 600}
)


# --- events ------------------------------------------------------------------------------------


# The events themselves, one shape per type: `apps/api/event_schema.py`.


class EventFilterInput(serializers.Serializer):
    since = serializers.DateTimeField(
        required=False, help_text="Events recorded at or after this time (default: the last 24 hours)."
    )


# --- connect links -----------------------------------------------------------------------------


class ConnectLinkOutput(serializers.Serializer):
    url = serializers.URLField(help_text="Send the user here: signed in, they add your application in one step.")
    expires_at = serializers.DateTimeField()
