"""Commands pushed to MQTT devices at once: an outbox consumer, and the publisher it calls after commit.

A command's creation records `command.updated` (pending) with it (devices.command_queue.command_send);
the outbox relay hands it to `commands_push_consumer`, which publishes it after the relay's commit on
the device's commands topic (QoS 1, not retained), through one connection kept per process. When
the broker acknowledges the publish (PUBACK, reason "success": the device's subscription took it),
the command becomes delivered (devices.command_queue.commands_mark_pushed). A PUBACK saying "no
matching subscribers" (the device is not on MQTT, or has no session) leaves it pending: HTTP devices
get it at their next check-in as before, and an MQTT device gets its open commands again after its
next check-in (devices.mqtt.ingest). Open commands are handed again until acknowledged, by either
transport (the existing rule): a device recognises a command it already ran by its id.
"""

import logging
import threading
import time
from functools import partial

from django.db import transaction
from django.utils import timezone
from paho.mqtt.reasoncodes import ReasonCode

from ..command_queue import commands_mark_pushed
from ..models import Command, CommandStatus, DeviceEventType
from ..protocol.services import command_for_device
from . import topics
from .client import connect_and_wait, mqtt_enabled, portal_client
from .ingest import command_message

logger = logging.getLogger(__name__)

PUBACK_TIMEOUT_SECONDS = 5.0
# After the broker could not be reached, this process stops trying for a while (commands wait for
# their device's next check-in meanwhile) instead of slowing every relay by a connect timeout.
PAUSE_AFTER_BROKER_ERROR = 30.0
SUCCESS = 0


class Publisher:
    """One kept MQTT connection and the PUBACKs it received, by message id."""

    def __init__(self):
        self.client = portal_client()
        self.acks = {}
        self.acked = threading.Condition()
        self.client.on_publish = self._on_publish
        connect_and_wait(self.client)

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self.acked:
            self.acks[mid] = reason_code.value if isinstance(reason_code, ReasonCode) else SUCCESS
            self.acked.notify_all()

    def publish_all(self, messages, *, timeout=PUBACK_TIMEOUT_SECONDS) -> dict:
        """Publishes (key, topic, payload) messages at QoS 1; returns {key: PUBACK reason code} for
        those acknowledged within `timeout`."""
        with self.acked:
            # Under the lock: a PUBACK cannot be recorded before its message id is known here.
            mids = {self.client.publish(topic, payload, qos=1).mid: key for key, topic, payload in messages}
            deadline = time.monotonic() + timeout
            while set(mids) - set(self.acks) and self.acked.wait(max(0.0, deadline - time.monotonic())):
                pass
            return {key: self.acks.pop(mid) for mid, key in mids.items() if mid in self.acks}

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


_publisher = None
_publisher_lock = threading.Lock()
_paused_until = float("-inf")


def _publisher_get() -> Publisher | None:
    global _publisher, _paused_until
    if _publisher is not None and _publisher.client.is_connected():
        return _publisher
    if _publisher is not None:
        _publisher.close()  # its network thread would go on reconnecting by itself
        _publisher = None
    if time.monotonic() < _paused_until:
        return None
    try:
        _publisher = Publisher()
    except (ConnectionError, OSError):
        _paused_until = time.monotonic() + PAUSE_AFTER_BROKER_ERROR
        logger.error("mqtt.publisher_unavailable", exc_info=True)
        return None
    return _publisher


def commands_push_consumer(events) -> None:
    """Outbox consumer: new commands (command.updated, pending) are pushed after the relay commits."""
    if not mqtt_enabled():
        return
    pending = [
        e.data["command_id"]
        for e in events
        if e.type == DeviceEventType.COMMAND_UPDATED and e.data.get("status") == CommandStatus.PENDING
    ]
    if pending:
        # After commit: a network wait must not hold the relay's row locks.
        transaction.on_commit(partial(commands_push, command_ids=pending), robust=True)


def commands_push(*, command_ids) -> int:
    """Publishes the still-pending, unexpired commands among `command_ids` to their devices and
    marks delivered those the broker accepted for a subscription; returns how many."""
    commands = list(
        Command.objects.filter(pk__in=command_ids, status=CommandStatus.PENDING, expires_at__gt=timezone.now())
        .select_related("device")
        .only("id", "name", "params", "expires_at", "status", "device__serial")
    )
    if not commands:
        return 0
    with _publisher_lock:
        publisher = _publisher_get()
        if publisher is None:
            return 0
        acks = publisher.publish_all(
            [(c.pk, topics.commands(c.device.serial), command_message(command_for_device(c))) for c in commands]
        )
    accepted = [pk for pk, reason in acks.items() if reason == SUCCESS]
    pushed = commands_mark_pushed(command_ids=accepted) if accepted else 0
    logger.info("mqtt.commands_pushed", extra={"commands": len(commands), "accepted": len(accepted)})
    return pushed
