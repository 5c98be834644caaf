"""The MQTT bridge (`manage.py mqtt_bridge`): hears the devices through the broker and feeds the
device protocol's services (devices.mqtt.ingest), and keeps the broker's revocation list fresh
(devices.mqtt.revocation).

- One MQTT 5 shared subscription per topic (`$share/portal/…`): several bridges split the messages,
  each message going to one of them.
- QoS 1 in, acknowledged to the broker only once handled (paho's manual acks): a bridge that dies
  or loses the broker mid-way gets the unacknowledged messages again on reconnecting, as its session
  outlives the connection (a fixed client id per bridge, no clean start, a session expiry). paho
  reconnects with back-off (1 s doubling to 60 s).
- The database work runs in the bridge's main thread, never in paho's network thread (which keeps
  the connection alive meanwhile). A database outage holds the message and retries it with back-off.
"""

import logging
import queue
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connections
from paho.mqtt.subscribeoptions import SubscribeOptions

from . import ingest, topics
from .client import connect_properties, portal_client
from .revocation import RevocationWatch

logger = logging.getLogger(__name__)

# The broker keeps a bridge's session (its subscriptions and unacknowledged messages) this long.
SESSION_EXPIRY_SECONDS = 3600
RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS = 1, 60
DATABASE_RETRY_MAX_SECONDS = 30
# Messages handled together. The broker sends a client this many unacknowledged QoS 1 messages at
# most (max_inflight_messages in mosquitto.conf), so that bounds a batch too.
BATCH_MAX = 200


class Bridge:
    def __init__(self, *, client_id: str, host=None, port=None, directory: Path | None = None, watch=True):
        self.client = portal_client(client_id=client_id, host=host, port=port, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        self.messages = queue.Queue()
        # Which connection a message came on: message ids are per connection, so a message from an
        # earlier one is neither handled nor acknowledged (the broker hands it over again).
        self.connection = 0
        self.stopping = threading.Event()
        self.subscribed = threading.Event()
        self.handled = 0
        self.directory = Path(directory or settings.MQTT_DIR)
        self.watch = RevocationWatch(directory=self.directory, host=host, port=port) if watch else None

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            logger.error("mqtt.bridge_refused", extra={"reason": str(reason_code)})
            return
        self.connection += 1
        logger.info("mqtt.bridge_connected", extra={"session_present": flags.session_present})
        client.subscribe([(topics.shared(f), SubscribeOptions(qos=1)) for f in topics.BRIDGE_FILTERS])
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.subscribed.clear()
        if not self.stopping.is_set():
            logger.warning("mqtt.bridge_disconnected", extra={"reason": str(reason_code)})

    def _on_message(self, client, userdata, message):
        self.messages.put((self.connection, message))

    def start(self) -> None:
        host, port = self.client.portal_address
        self.client.connect_async(
            host,
            port,
            keepalive=30,
            clean_start=False,
            properties=connect_properties(session_expiry=SESSION_EXPIRY_SECONDS),
        )
        self.client.loop_start()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        """Handles messages until stop(); then disconnects (the session stays for the next run)."""
        self.start()
        try:
            while not self.stopping.is_set():
                batch = self._batch()
                if batch:
                    self._handle(batch)
                if self.watch is not None and self.watch.due():
                    try:
                        self._guarded(self.watch.check)
                    except OSError:
                        # The broker's folder unwritable, its pid file unreadable: said, tried again.
                        logger.error("mqtt.revocation_watch_failed", exc_info=True)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            connections.close_all()

    def _guarded(self, work):
        """Runs database work, retrying with back-off while the database is unreachable; None when
        the bridge stops meanwhile."""
        delay = 0.5
        while not self.stopping.is_set():
            try:
                return work()
            except (OperationalError, InterfaceError):
                logger.error("mqtt.bridge_database_error", exc_info=True)
                close_old_connections()
                connections.close_all()
                time.sleep(delay)
                delay = min(delay * 2, DATABASE_RETRY_MAX_SECONDS)
        return None

    def _batch(self) -> list:
        """The messages received meanwhile (at least one, waiting a moment for it; at most
        BATCH_MAX): handled together, their check-ins written in one statement."""
        try:
            batch = [self.messages.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(batch) < BATCH_MAX:
            try:
                batch.append(self.messages.get_nowait())
            except queue.Empty:
                break
        return [message for connection, message in batch if connection == self.connection]

    def _handle(self, batch) -> None:
        try:
            replies = self._guarded(lambda: ingest.messages_handle([(m.topic, m.payload) for m in batch]))
        except DatabaseError:
            # Not the connection: one message the database refuses must not hold back the others
            # for ever. Each is handled alone; the one refused again is logged and dropped.
            logger.error("mqtt.batch_refused", exc_info=True, extra={"messages": len(batch)})
            replies = []
            for message in batch:
                try:
                    alone = self._guarded(lambda m=message: ingest.message_handle(topic=m.topic, payload=m.payload))
                except DatabaseError:
                    logger.error("mqtt.message_dropped", exc_info=True, extra={"topic": message.topic[:128]})
                    continue
                if alone is None:
                    return  # stopping
                replies += alone
        if replies is None:
            return  # stopping: left unacknowledged, the broker hands them over again
        for topic, payload in replies:
            self.client.publish(topic, payload, qos=1)
        # Acknowledged once written: a crash before this gets them again from the broker.
        for message in batch:
            if message.qos:
                self.client.ack(message.mid, message.qos)
        self.handled += len(batch)
