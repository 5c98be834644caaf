"""What the bridge does with a message a device published: the MQTT twin of the device endpoints,
as thin as they are. The same checks, in the same order (rate limit, credentials, body, work), and
the same services: devices.protocol.services for check-ins, devices.command_queue.command_ack for
results, devices.stale.device_mark_offline for the last will.

The broker authenticated the device (its certificate, whose CN is the serial in the topic: the ACL
lets it publish only there); the services refuse a device whose certificate is no longer in force.
A refused message is logged and dropped (acknowledged to the broker): MQTT has no answer to send.
"""

import json
import logging

from django.conf import settings

from portal.errors import ApplicationError

from ..command_queue import command_ack
from ..protocol import limits, services
from ..protocol.bodies import json_object_parse
from ..stale import device_mark_offline
from . import topics

logger = logging.getLogger(__name__)


def _limit(scope: str, serial: str) -> None:
    # Per device, as the HTTP endpoints count per token; the broker's address is the bridge's, so
    # there is no per-address counter (the broker limits connections).
    limits.hit((f"dev-mqtt-{scope}", serial, settings.DEVICE_RATE_LIMIT_PER_DEVICE))


def command_message(command: dict) -> bytes:
    """A command as it is published on the device's commands topic: the check-in answer's shape."""
    return json.dumps(command, separators=(",", ":")).encode()


def message_handle(*, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
    """Handles one message; returns what to publish in reply (topic, payload): a check-in's open
    commands, one message each on the device's commands topic, as HTTP answers them."""
    parsed = topics.parse(topic)
    if parsed is None:
        logger.warning("mqtt.message_refused", extra={"code": "unknown_topic", "topic": topic[:128]})
        return []
    kind, serial, command_id = parsed
    try:
        if kind == "checkin":
            _limit("checkin", serial)
            body = json_object_parse(payload)
            answer = services.device_checkin_by_certificate(serial=serial, values=services.checkin_values(body))
            return [(topics.commands(serial), command_message(c)) for c in answer["commands"]]
        if kind == "result":
            _limit("commands", serial)
            device = services.device_for_certificate(serial=serial)
            body = json_object_parse(payload)
            command_ack(device=device, command_id=command_id, status=body.get("status"), result=body.get("result"))
        elif kind == "status" and payload.strip().lower() == topics.OFFLINE_PAYLOAD:
            device_mark_offline(serial=serial)
    except ApplicationError as exc:
        logger.warning("mqtt.message_refused", extra={"code": exc.code, "kind": kind, "serial": serial[:64]})
    return []
