"""The documented shape of every event, as `GET /api/v1/events` lists it and a webhook POSTs it.

One serializer per event type says what its `data` holds; `EVENT_SCHEMA` joins them into a `oneOf`
told apart by `type`. `tests/apps/test_event_schema.py` records each type through the code that
really writes it and validates the webhook body and the API row against this schema, so a new key
in an event's `data` that the schema does not declare fails the suite.
"""

from drf_spectacular.utils import (
    OpenApiResponse,
    OpenApiWebhook,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers

from devices.models import CommandStatus, DeviceEventType, DeviceStatus
from devices.protocol.schema import FlatValuesField


class EventDeviceOutput(serializers.Serializer):
    """The device as it was when the event happened (read from the event)."""

    id = serializers.UUIDField(source="device_id")
    serial = serializers.CharField(source="device.serial")
    product = serializers.CharField(source="device.product.slug")
    name = serializers.CharField(source="device_name", help_text="The owner's name for the device at the event's time.")


class _Data(serializers.Serializer):
    pass


class DataData(_Data):
    values = FlatValuesField()
    recorded_at = serializers.DateTimeField()


class OnlineData(_Data):
    previous_status = serializers.ChoiceField(choices=DeviceStatus.choices)


class OfflineData(_Data):
    last_seen_at = serializers.DateTimeField(help_text="The device's last check-in.")
    previous_status = serializers.ChoiceField(choices=[DeviceStatus.ONLINE])


class ClaimedData(_Data):
    via = serializers.ChoiceField(
        choices=["code", "pin", "preclaim", "transfer"],
        help_text="A claim code (or its QR label), serial and PIN, the OEM's pre-claim, or a transfer.",
    )
    application_id = serializers.CharField(
        required=False, help_text="Present when the owner picked your application while claiming."
    )


class ReleasedData(_Data):
    reason = serializers.ChoiceField(
        choices=["reset", "new_owner", "transfer"],
        help_text="The owner reset it, someone else claimed it, or the owner transferred it.",
    )


class LinkedData(_Data):
    application_id = serializers.CharField(help_text="Your App Id: link events are their application's only.")


class UnlinkedData(LinkedData):
    reason = serializers.ChoiceField(
        choices=["unlinked", "ownership_changed", "application_deleted"],
        help_text="The owner unlinked it, the device changed hands, or the application was deleted.",
    )


class CommandUpdatedData(_Data):
    command_id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=CommandStatus.choices)
    params = serializers.DictField()
    application_id = serializers.CharField(help_text="Your App Id: you hear only of the commands you sent.")
    result = serializers.DictField(required=False, help_text="With `succeeded` or `failed`: what the device reported.")


class PingData(_Data):
    message = serializers.CharField()


DATA_BY_TYPE = {
    DeviceEventType.DATA: DataData,
    DeviceEventType.ONLINE: OnlineData,
    DeviceEventType.OFFLINE: OfflineData,
    DeviceEventType.CLAIMED: ClaimedData,
    DeviceEventType.RELEASED: ReleasedData,
    DeviceEventType.LINKED: LinkedData,
    DeviceEventType.UNLINKED: UnlinkedData,
    DeviceEventType.COMMAND_UPDATED: CommandUpdatedData,
}


class EventOutput(serializers.Serializer):
    """The body of the webhook that delivers the same event."""

    id = serializers.UUIDField(help_text="Also the `webhook-id` of the same event delivered to your callback.")
    type = serializers.ChoiceField(choices=DeviceEventType.choices)
    device = EventDeviceOutput(source="*")
    created_at = serializers.DateTimeField()
    data = serializers.DictField()


def _typed(event_type, data_class, *, device_nullable=False):
    label = event_type.replace(".", " ").title().replace(" ", "")
    fields = {
        "type": serializers.ChoiceField(choices=[event_type]),
        "data": data_class(),
        "__doc__": f"A `{event_type}` event.",
        "Meta": type("Meta", (), {"ref_name": f"{label}Event"}),
    }
    if device_nullable:
        fields["device"] = EventDeviceOutput(allow_null=True, help_text="Always null: a ping is about no device.")
    return type(f"{label}EventOutput", (EventOutput,), fields)


_TYPED = {event_type.value: _typed(event_type.value, data) for event_type, data in DATA_BY_TYPE.items()}

# What the events API lists.
EVENT_SCHEMA = PolymorphicProxySerializer(
    component_name="Event", serializers=_TYPED, resource_type_field_name="type", many=True
)
# What a webhook may POST: the same events, and the `ping` the owner sends from the application page.
WEBHOOK_SCHEMA = PolymorphicProxySerializer(
    component_name="Webhook",
    serializers={**_TYPED, "ping": _typed("ping", PingData, device_nullable=True)},
    resource_type_field_name="type",
    many=False,
)

# `webhooks` in the OpenAPI document: what the portal POSTs to an application's callback.
EVENT_WEBHOOK = OpenApiWebhook(
    name="deviceEvent",
    decorator=extend_schema(
        summary="An event of a device linked to your application, POSTed to your callback URL",
        description="Signed with Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, "
        "`webhook-signature`) and sent with the Authorization header you chose. Answer any 2xx quickly; "
        "anything else is retried, and `410 Gone` turns your callback off.",
        request=WEBHOOK_SCHEMA,
        responses={200: OpenApiResponse(description="Received.")},
    ),
)
