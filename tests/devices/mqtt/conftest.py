"""A Mosquitto of the test's own, on free ports, with the configuration the portal writes, and MQTT
devices that connect with the certificates the portal issued them (tests marked `services`: they
skip without Debian's `mosquitto` and fail under CI, which installs it)."""

import getpass
import json
import queue
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from allauth.account.models import EmailAddress
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from claiming.services import device_claim_by_code
from devices.mqtt import topics
from devices.mqtt.bridge import Bridge
from devices.mqtt.broker import BROKER_CA, broker_config_write

from ...conftest import service_missing
from ...factories import ClaimCodeFactory, DeviceFactory, ProductFactory
from ..protocol_support import csr_pem, provision

BRIDGE_PASSWORD = "test-bridge-password"
WAIT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout=WAIT, every=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(every)
    return condition()


def _listening(port) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Broker:
    directory: Path
    tls_port: int
    bridge_port: int
    process: subprocess.Popen

    @property
    def log(self) -> str:
        return (self.directory / "broker.log").read_text()

    def kill(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def restart(self):
        """Stops the broker and starts it again on the same configuration (its persistence kept)."""
        self.kill()
        self.process = subprocess.Popen(
            [self.process.args[0], "-c", str(self.directory / "mosquitto.conf")],
            stdout=(self.directory / "broker.log").open("a"),
            stderr=subprocess.STDOUT,
        )
        assert wait_until(lambda: _listening(self.tls_port)), self.log


@pytest.fixture(autouse=True)
def _fresh_publisher():
    """Each test's broker is new: the command publisher connects afresh, without a pause left by
    another test."""
    from devices.mqtt import push

    push._paused_until = float("-inf")
    yield
    if push._publisher is not None:
        push._publisher.close()
    push._publisher, push._paused_until = None, float("-inf")


@pytest.fixture
def products(transactional_db):
    """Two products, so two product CAs (and their two revocation lists) on one broker."""
    return (
        ProductFactory(slug="thermo", name="Thermo", commands=["reboot"]),
        ProductFactory(slug="meter", name="Meter", commands=["reboot"]),
    )


@pytest.fixture
def product(products):
    return products[0]


@pytest.fixture
def mqtt_settings(settings, tmp_path):
    settings.MQTT_BRIDGE_PASSWORD = BRIDGE_PASSWORD
    settings.MQTT_DIR = tmp_path / "mqtt"
    settings.MQTT_HOST = "127.0.0.1"
    settings.MQTT_PORT = free_port()
    settings.MQTT_TLS_PORT = free_port()
    settings.MQTT_DEVICE_URL = f"mqtts://localhost:{settings.MQTT_TLS_PORT}"
    return settings


@pytest.fixture
def mosquitto(product, mqtt_settings):
    """A broker running the portal's configuration, for `product`'s devices."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        service_missing("needs Mosquitto: apt-get install mosquitto")
    directory = mqtt_settings.MQTT_DIR
    # As the user running the tests: the broker reads files under the test's private tmp_path.
    conf = broker_config_write(server_names=["localhost", "127.0.0.1"], user=getpass.getuser())
    log = open(directory / "broker.log", "w")  # noqa: SIM115 - closed with the broker
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    broker = Broker(directory, mqtt_settings.MQTT_TLS_PORT, mqtt_settings.MQTT_PORT, process)

    assert wait_until(lambda: _listening(broker.tls_port)), broker.log
    yield broker
    broker.kill()
    log.close()


class RunningBridge:
    def __init__(self, client_id):
        import threading

        self.bridge = Bridge(client_id=client_id)
        self.thread = threading.Thread(target=self.bridge.run, daemon=True)
        self.thread.start()
        assert self.bridge.subscribed.wait(WAIT), "the bridge did not connect"
        time.sleep(0.2)  # its SUBSCRIBE answered

    def stop(self):
        self.bridge.stop()
        self.thread.join(WAIT)


@pytest.fixture
def bridge_factory(mosquitto):
    running = []

    def start(client_id="bridge-1"):
        running.append(RunningBridge(client_id))
        return running[-1].bridge

    yield start
    for bridge in running:
        bridge.stop()


@pytest.fixture
def bridge(bridge_factory):
    return bridge_factory()


class MqttDevice:
    """A device's MQTT side as firmware would run it: client id = serial, its issued certificate,
    a will on its status topic, subscribed to its commands."""

    def __init__(self, *, serial, certificate, key_pem, broker: Broker, folder: Path, client_id=None):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cert.pem").write_text(certificate)
        (folder / "key.pem").write_text(key_pem)
        self.serial, self.broker = serial, broker
        self.messages = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or serial, protocol=mqtt.MQTTv5
        )
        self.client.tls_set(
            ca_certs=str(broker.directory / BROKER_CA),
            certfile=str(folder / "cert.pem"),
            keyfile=str(folder / "key.pem"),
        )
        self.client.will_set(topics.status(serial), topics.OFFLINE_PAYLOAD, qos=1)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload, time.monotonic()))
        self.connack = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.disconnected = queue.Queue()
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnected.put(rc)

    def connect(self) -> bool:
        """True when the broker accepted the connection (CONNACK success)."""
        try:
            self.client.connect("localhost", self.broker.tls_port, keepalive=30)
        except OSError:  # the TLS handshake refused (ssl.SSLError is an OSError)
            return False
        self.client.loop_start()
        try:
            accepted = not self.connack.get(timeout=WAIT).is_failure
        except queue.Empty:
            accepted = False
        if accepted:
            self.client.subscribe(topics.commands(self.serial), qos=1)
            time.sleep(0.2)
        else:
            self.client.loop_stop()
        return accepted

    def publish(self, topic, body) -> None:
        info = self.client.publish(topic, json.dumps(body), qos=1)
        info.wait_for_publish(WAIT)

    def checkin(self, values) -> None:
        self.publish(topics.checkin(self.serial), {"values": values})

    def kill(self):
        """The connection drops without a DISCONNECT (power lost): the broker sends the will."""
        # shutdown first: close alone waits for the network thread's select to let go of the socket.
        sock = self.client.socket()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def provisioned(client, product, owner, mosquitto, tmp_path):
    """Claim a device, provision it with a CSR through the provisioning endpoint, and return an
    MqttDevice for it (not yet connected)."""
    made = []

    def make(serial="MQ-0001", *, of=None, device=None):
        """`device` given: provision it again (after a reset or a revocation), with a new key."""
        if device is None:
            EmailAddress.objects.get_or_create(
                user=owner, email=owner.email, defaults={"verified": True, "primary": True}
            )
            code = ClaimCodeFactory()
            device = DeviceFactory(serial=serial, product=of or product, claim_code=code)
            device_claim_by_code(user=owner, code=code.raw_code, ip="203.0.113.1")
        serial = device.serial
        key = ec.generate_private_key(ec.SECP256R1())
        response = provision(client, device, {"attempt": 0, "csr": csr_pem(serial, key=key)})
        assert response.status_code == 200, response.content
        credentials = response.json()["credentials"]
        # Provisioning names the broker and the CA to verify it with.
        assert response.json()["endpoints"]["mqtt"] == {
            "url": f"mqtts://localhost:{mosquitto.tls_port}",
            "ca": (mosquitto.directory / BROKER_CA).read_text(),
        }
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        mqtt_device = MqttDevice(
            serial=serial,
            certificate=credentials["certificate"],
            key_pem=key_pem,
            broker=mosquitto,
            folder=tmp_path / f"{serial}-{len(made)}",
        )
        mqtt_device.device = device
        mqtt_device.token = credentials["token"]
        made.append(mqtt_device)
        return mqtt_device

    yield make
    for mqtt_device in made:
        mqtt_device.client.loop_stop()
