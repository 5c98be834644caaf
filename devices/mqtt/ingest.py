"""What the bridge does with the messages devices published: the MQTT twin of the device endpoints,
as thin as they are. The same checks, in the same order (rate limit, credentials, body, work), and
the same services: devices.protocol.services for check-ins, devices.command_queue.command_ack for
results, devices.stale.device_mark_offline for the last will.

The broker authenticated the device (its certificate, whose CN is the serial in the topic: the ACL
lets it publish only there); the services refuse a device whose certificate is no longer in force.
A refused message is logged and dropped (acknowledged to the broker): MQTT has no answer to send.
Check-ins come in batches (what the bridge has received meanwhile), written together.
"""

import hashlib
import json
import logging

from django.conf import settings
from django.core.cache import cache

from portal.errors import ApplicationError, Throttled

from ..command_queue import command_ack
from ..protocol import limits, services
from ..protocol.bodies import json_object_parse
from ..stale import device_mark_offline
from . import topics

logger = logging.getLogger(__name__)

# A check-in's copy is recognised this long after it was stored (a device's MQTT stack resending,
# the broker handing a bridge's unacknowledged messages over again).
DUPLICATE_SECONDS = 3600
MAX_ID_LENGTH = 64


def _counter(scope: str, serial: str) -> tuple[str, str, int]:
    # Per device, as the HTTP endpoints count per token; the broker's address is the bridge's, so
    # there is no per-address counter (the broker limits connections).
    return (f"dev-mqtt-{scope}", serial, settings.DEVICE_RATE_LIMIT_PER_DEVICE)


def _refused(exc: ApplicationError, kind: str, serial: str) -> None:
    logger.warning("mqtt.message_refused", extra={"code": exc.code, "kind": kind, "serial": serial[:64]})


def command_message(command: dict) -> bytes:
    """A command as it is published on the device's commands topic: the check-in answer's shape."""
    return json.dumps(command, separators=(",", ":")).encode()


def message_handle(*, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
    """Handles one message; returns what to publish in reply (see messages_handle)."""
    return messages_handle([(topic, payload)])


def messages_handle(messages) -> list[tuple[str, bytes]]:
    """Handles (topic, payload) messages in order, their check-ins together; returns what to
    publish in reply (topic, payload): each check-in's open commands, one message each on the
    device's commands topic, as HTTP answers them."""
    replies, checkins = [], []
    for topic, payload in messages:
        parsed = topics.parse(topic)
        if parsed is None:
            logger.warning("mqtt.message_refused", extra={"code": "unknown_topic", "topic": topic[:128]})
        elif parsed[0] == "checkin":
            checkins.append((parsed[1], payload))
        else:
            # The check-ins before it first: a will after a check-in must leave the device offline.
            if checkins:
                replies += _checkins_handle(checkins)
                checkins = []
            _other_handle(*parsed, payload)
    if checkins:
        replies += _checkins_handle(checkins)
    return replies


def _seen_key(serial: str, body: dict) -> str | None:
    """The key recording a check-in that names its own `id` (docs/device-protocol.md): a copy of it
    (QoS 1 is at least once) is recognised and not stored again."""
    message_id = body.get("id")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_ID_LENGTH:
        return None
    return f"mqtt:checkin:{hashlib.sha256(f'{serial}/{message_id}'.encode()).hexdigest()[:32]}"


def _checkins_handle(checkins) -> list[tuple[str, bytes]]:
    allowed = limits.within([_counter("checkin", serial) for serial, _payload in checkins])
    parsed = []
    for (serial, payload), within in zip(checkins, allowed, strict=True):
        try:
            if not within:
                raise Throttled(retry_after=limits.WINDOW)
            body = json_object_parse(payload)
            parsed.append((serial, services.checkin_values(body), _seen_key(serial, body)))
        except ApplicationError as exc:
            _refused(exc, "checkin", serial)
    # Recorded once stored (below): a batch retried after a database error is not taken for copies.
    seen = set(cache.get_many([key for _s, _v, key in parsed if key]))
    valid, keys = [], []
    for serial, values, key in parsed:
        if key and key in seen:
            logger.info("mqtt.duplicate_dropped", extra={"serial": serial[:64]})
            continue
        seen.add(key)
        valid.append((serial, values))
        keys.append(key)
    replies, stored = [], {}
    outcomes = services.devices_checkin_by_certificate(checkins=valid)
    for (serial, _values), key, outcome in zip(valid, keys, outcomes, strict=True):
        if isinstance(outcome, ApplicationError):
            _refused(outcome, "checkin", serial)
            continue
        if key:
            stored[key] = 1
        replies += [(topics.commands(serial), command_message(c)) for c in outcome["commands"]]
    if stored:
        cache.set_many(stored, timeout=DUPLICATE_SECONDS)
    return replies


def _other_handle(kind, serial, command_id, payload) -> None:
    try:
        if kind == "result":
            limits.hit(_counter("commands", serial))
            device = services.device_for_certificate(serial=serial)
            body = json_object_parse(payload)
            command_ack(device=device, command_id=command_id, status=body.get("status"), result=body.get("result"))
        elif kind == "status" and payload.strip().lower() == topics.OFFLINE_PAYLOAD:
            device_mark_offline(serial=serial)
    except ApplicationError as exc:
        _refused(exc, kind, serial)
