"""The portal's own MQTT clients (the bridge, the command publisher, the session ender): paho-mqtt's
v2 API, MQTT 5, on the broker's bridge listener with the bridge's credential (settings.MQTT_*)."""

import threading
import uuid

import paho.mqtt.client as mqtt
from django.conf import settings
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

CONNECT_TIMEOUT = 5.0


def mqtt_enabled() -> bool:
    """MQTT is on when the bridge has a credential (settings.MQTT_BRIDGE_PASSWORD)."""
    return bool(settings.MQTT_BRIDGE_PASSWORD)


def portal_client(*, client_id: str | None = None, host=None, port=None, manual_ack=False) -> mqtt.Client:
    """A paho client, not yet connected, with the bridge's credential; `host`/`port` default to the
    bridge listener (MQTT_HOST, MQTT_PORT)."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id or f"portal-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    client.username_pw_set(settings.MQTT_BRIDGE_USERNAME, settings.MQTT_BRIDGE_PASSWORD)
    client.portal_address = (host or settings.MQTT_HOST, port or settings.MQTT_PORT)
    return client


def connect_properties(*, session_expiry: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = session_expiry
    return properties


def connect_and_wait(client: mqtt.Client, *, clean_start=True, session_expiry=0, timeout=CONNECT_TIMEOUT) -> None:
    """Connects and runs the client's network thread; returns once the broker accepted the
    connection, ConnectionError when it refused it or did not answer in time."""
    accepted = threading.Event()
    outcome = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        outcome["reason"] = reason_code
        accepted.set()

    client.on_connect = on_connect
    host, port = client.portal_address
    client.connect(
        host, port, keepalive=30, clean_start=clean_start, properties=connect_properties(session_expiry=session_expiry)
    )
    client.loop_start()
    if not accepted.wait(timeout) or outcome["reason"].is_failure:
        client.loop_stop()
        client.disconnect()
        raise ConnectionError(f"The MQTT broker refused or did not answer: {outcome.get('reason')}")
