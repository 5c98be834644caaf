"""Reference device agent: the device protocol as firmware implements it.

One file over 500 lines on purpose: it is the example a firmware developer reads top to bottom and
copies from, with nothing of the portal imported (HTTP and MQTT, provisioning to commands).

    python -m firmware.agent --url http://127.0.0.1:8000 --serial SN1 --key FACTORY-KEY --simulate

Power-on: poll /device/v1/provision at once, then as often as the portal's `retry_after` says
(5 s doubling up to a cap), sending a CSR for a key pair kept in the state file. Once claimed,
store the token and certificate, then check in every N seconds with values; run the commands the
portal returns (reboot, identify, set_interval) and acknowledge them. When less than a third of
the certificate's validity is left, renew it with the token and the same key pair. A refused token
(the owner reset the device, or it changed hands) means starting over from the provisioning poll.

With --mqtt, once it has a certificate the agent talks to the portal's broker instead
(docs/device-protocol.md, "MQTT"): mutual TLS with its certificate and client id = serial, a last
will on devices/<serial>/status, check-ins published on devices/<serial>/checkin, commands heard
on devices/<serial>/commands the moment they are sent and their results published on
devices/<serial>/commands/<id>/result. It reconnects with back-off; when the broker keeps refusing
it, one HTTP check-in tells whether its credentials were voided (then it starts over).

Uses only the standard library, requests, cryptography and (for --mqtt) paho-mqtt, like a small
Linux device would. It does not import Django.
"""

import argparse
import json
import logging
import os
import queue
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

logger = logging.getLogger("firmware.agent")

PROVISION_PATH = "/device/v1/provision"
CERTIFICATE_PATH = "/device/v1/certificate"
# Renewing a third before the end leaves months (at the default 365 days) to get through outages.
RENEW_WHEN_LEFT = 1 / 3
# After a refused or failed renewal, check-ins go on and renewal is tried again this much later.
RENEW_RETRY_SECONDS = 3600
HTTP_TIMEOUT = 15
MIN_INTERVAL = 1
MAX_INTERVAL = 24 * 3600
NETWORK_BACKOFF_CAP = 300
# MQTT: refusals in a row (TLS or CONNACK) before asking over HTTP whether the credentials still hold.
MQTT_REFUSALS_BEFORE_HTTP = 3
MQTT_CONNECT_WAIT = 10


class TokenRefused(Exception):
    """The portal no longer accepts our token: start over from provisioning."""


class State:
    """What survives a reboot: the key pair and the credentials, in a JSON file (mode 0600)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.data = {}
        if path and path.exists():
            self.data = json.loads(path.read_text())

    def __getitem__(self, name):
        return self.data.get(name)

    def update(self, **values):
        self.data.update(values)
        self.save()

    def forget_credentials(self):
        for name in ("token", "certificate", "ca_chain", "endpoints"):
            self.data.pop(name, None)
        self.save()

    def save(self):
        if not self.path:
            return
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.data, handle, indent=2)
        os.replace(tmp, self.path)


class Simulator:
    """Temperature and humidity drifting slowly, like a room through a day."""

    def __init__(self, seed=None):
        self.random = random.Random(seed)
        self.temperature = 21.0 + self.random.uniform(-2, 2)
        self.humidity = 45.0 + self.random.uniform(-5, 5)
        self.booted_at = time.monotonic()

    def reboot(self):
        self.booted_at = time.monotonic()

    def values(self):
        self.temperature = min(35.0, max(5.0, self.temperature + self.random.gauss(0, 0.3)))
        self.humidity = min(95.0, max(10.0, self.humidity + self.random.gauss(0, 0.8)))
        return {
            "temperature": round(self.temperature, 2),
            "humidity": round(self.humidity, 1),
            "uptime": int(time.monotonic() - self.booted_at),
        }


def values_from_command(command: str) -> dict:
    """Runs `command` and reads its output: a JSON object, or `name=value` lines."""
    output = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=True).stdout
    try:
        values = json.loads(output)
    except ValueError:
        values = {}
        for line in output.splitlines():
            name, sep, raw = line.partition("=")
            if sep and name.strip():
                try:
                    values[name.strip()] = json.loads(raw)
                except ValueError:
                    values[name.strip()] = raw.strip()
    if not isinstance(values, dict):
        raise ValueError("--values-from must print a JSON object or name=value lines")
    return values


def _utcnow():
    return datetime.now(UTC)


def certificate_due(certificate_pem: str, now: datetime) -> bool:
    """Whether less than RENEW_WHEN_LEFT of the certificate's validity is left (its notAfter says when)."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return certificate.not_valid_after_utc - now < lifetime * RENEW_WHEN_LEFT


def csr_for(key, serial: str) -> str:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


class Agent:
    def __init__(self, *, url, serial, key, state, values, interval=None, session=None, stop=None, mqtt=None):
        self.url = url.rstrip("/")
        self.serial = serial
        self.factory_key = key
        self.state = state
        self.read_values = values
        self.interval_override = interval
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"device-agent/1 ({serial})"
        self.stop = stop or threading.Event()
        self.status = None
        self.on_reboot = None
        self.done = {}  # command id → outcome, so a command handed out twice runs once
        self.renew_not_before = 0.0  # time.monotonic() before which no renewal is tried again
        self.private_key = self._load_or_create_key()
        self.csr = csr_for(self.private_key, serial)
        # None: HTTP only; "auto": the broker provisioning named; else an mqtts:// URL.
        self.mqtt = mqtt

    # Life cycle

    def run(self):
        self._announce("power-on")
        network_failures = 0
        while not self.stop.is_set():
            try:
                if self.state["token"] and self._mqtt_endpoint():
                    self.mqtt_loop()
                elif self.state["token"]:
                    self.check_in_loop()
                else:
                    self.provision_loop()
                network_failures = 0
            except TokenRefused:
                self.state.forget_credentials()
                self._announce("token-refused", "starting over from provisioning")
            except requests.RequestException as exc:
                network_failures += 1
                wait = min(5 * 2 ** min(network_failures, 10), NETWORK_BACKOFF_CAP) * random.uniform(0.8, 1.2)
                self._announce("unreachable", f"{type(exc).__name__}; retrying in {wait:.0f} s")
                self.stop.wait(wait)
        self._announce("stopped")

    def provision_loop(self):
        attempt = 0
        while not self.stop.is_set():
            response = self.session.post(
                self.url + PROVISION_PATH,
                json={"attempt": attempt, "csr": self.csr},
                auth=(self.serial, self.factory_key),
                timeout=HTTP_TIMEOUT,
            )
            body = _json(response)
            if response.status_code == 429:
                self._announce("throttled", f"waiting {_retry_after(response, body)} s")
                self.stop.wait(_retry_after(response, body))
                continue
            if response.status_code == 401:
                self._announce("refused", "serial or factory key not accepted")
                self.stop.wait(NETWORK_BACKOFF_CAP)
                continue
            if response.status_code != 200:
                self._announce("provision-error", f"HTTP {response.status_code} {_error_code(body)}")
                self.stop.wait(NETWORK_BACKOFF_CAP)
                continue
            state = body.get("state")
            if state == "claimed":
                credentials, endpoints = body["credentials"], body["endpoints"]
                self.state.update(
                    token=credentials["token"],
                    certificate=credentials.get("certificate"),
                    ca_chain=credentials.get("ca_chain"),
                    endpoints=endpoints,
                )
                self._announce(
                    "claimed",
                    "credentials received" + (" with a certificate" if credentials.get("certificate") else ""),
                )
                return
            if state == "provisioned":
                # Our credentials are in use elsewhere or were lost: only a reset by the owner helps.
                self._announce("provisioned-elsewhere", "no credentials here; the owner must reset the device")
                self.stop.wait(body.get("retry_after") or NETWORK_BACKOFF_CAP)
                continue
            wait = int(body.get("retry_after") or 5)
            self._announce("unclaimed", "waiting for an owner to claim this device")
            logger.debug("poll attempt=%s retry_after=%s", attempt, wait)
            attempt += 1
            self.stop.wait(wait)

    def check_in_loop(self):
        endpoints = self.state["endpoints"] or {}
        checkin_url = endpoints.get("checkin") or self.url + "/device/v1/checkin"
        commands_url = endpoints.get("commands") or self.url + "/device/v1/commands"
        while not self.stop.is_set():
            values = self._values()
            response = self.session.post(
                checkin_url, json={"values": values}, headers=self._bearer(), timeout=HTTP_TIMEOUT
            )
            body = _json(response)
            if response.status_code == 401:
                raise TokenRefused()
            if response.status_code == 429:
                self.stop.wait(_retry_after(response, body))
                continue
            if response.status_code != 200:
                self._announce("checkin-error", f"HTTP {response.status_code} {_error_code(body)}")
                self.stop.wait(self._interval(None))
                continue
            self._announce("online", f"checking in every {self._interval(body.get('next_checkin'))} s")
            for command in body.get("commands", []):
                self.execute(command, commands_url)
            self.renew_certificate_if_due()
            self.stop.wait(self._interval(body.get("next_checkin")))

    def renew_certificate_if_due(self) -> bool:
        """Trades the token and a CSR for a new certificate once it is due. The portal revokes the
        old one at once; if the answer is lost, the token still renews at the next try."""
        certificate = self.state["certificate"]
        if not certificate or time.monotonic() < self.renew_not_before or not certificate_due(certificate, _utcnow()):
            return False
        url = (self.state["endpoints"] or {}).get("certificate") or self.url + CERTIFICATE_PATH
        response = self.session.post(url, json={"csr": self.csr}, headers=self._bearer(), timeout=HTTP_TIMEOUT)
        body = _json(response)
        if response.status_code == 401:
            raise TokenRefused()
        if response.status_code != 200 or not body.get("certificate"):
            self.renew_not_before = time.monotonic() + RENEW_RETRY_SECONDS
            self._announce("renewal-error", f"HTTP {response.status_code} {_error_code(body)}; trying again later")
            return False
        self.state.update(certificate=body["certificate"], ca_chain=body.get("ca_chain"))
        not_after = x509.load_pem_x509_certificate(body["certificate"].encode()).not_valid_after_utc
        self._announce("certificate-renewed", f"valid until {not_after:%Y-%m-%d}")
        return True

    # MQTT

    def _mqtt_endpoint(self):
        """(host, port, broker CA PEM or None) to use, or None for HTTP: --mqtt given, a certificate
        held, and a broker named (by --mqtt URL, or by provisioning's endpoints.mqtt)."""
        if not self.mqtt or not self.state["certificate"]:
            return None
        named = (self.state["endpoints"] or {}).get("mqtt") or {}
        url = named.get("url") if self.mqtt == "auto" else self.mqtt
        if not url:
            return None
        parts = urlsplit(url)
        return parts.hostname, parts.port or 8883, named.get("ca")

    def mqtt_loop(self):
        """Check-ins and commands over MQTT until stopped, the certificate renewed (the caller
        connects again with the new one) or the credentials refused (TokenRefused)."""
        import paho.mqtt.client as mqtt

        host, port, ca_pem = self._mqtt_endpoint()
        folder = Path(tempfile.mkdtemp(prefix="agent-mqtt-"))  # mode 0700: the key stays private
        (folder / "cert.pem").write_text(self.state["certificate"])
        (folder / "key.pem").write_text(self.state["private_key"])
        if ca_pem:
            (folder / "ca.pem").write_text(ca_pem)
        commands, connected = queue.Queue(), threading.Event()
        refusals = [0]
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.serial, protocol=mqtt.MQTTv5)
        client.tls_set(
            ca_certs=str(folder / "ca.pem") if ca_pem else None,
            certfile=str(folder / "cert.pem"),
            keyfile=str(folder / "key.pem"),
        )
        # The broker publishes this when the connection drops without a DISCONNECT.
        client.will_set(f"devices/{self.serial}/status", b"offline", qos=1)
        client.reconnect_delay_set(1, NETWORK_BACKOFF_CAP)

        def on_connect(client, userdata, flags, reason_code, properties):
            if reason_code.is_failure:
                refusals[0] += 1
                return
            refusals[0] = 0
            client.subscribe(f"devices/{self.serial}/commands", qos=1)
            connected.set()

        def on_connect_fail(client, userdata):
            refusals[0] += 1  # refused during the TLS handshake, or unreachable

        def on_disconnect(client, userdata, flags, reason_code, properties):
            if not connected.is_set():
                refusals[0] += 1  # closed before CONNACK: a TLS 1.3 server refusing the certificate
            connected.clear()

        def on_message(client, userdata, message):
            try:
                commands.put(json.loads(message.payload))
            except ValueError:
                logger.warning("%s unreadable command message", self.serial)

        client.on_connect, client.on_disconnect, client.on_message = on_connect, on_disconnect, on_message
        client.on_connect_fail = on_connect_fail
        client.connect_async(host, port, keepalive=60)
        client.loop_start()
        boot, sent = os.urandom(4).hex(), 0
        try:
            while not self.stop.is_set():
                if not connected.wait(MQTT_CONNECT_WAIT):
                    self._announce("mqtt-unreachable", f"{host}:{port}; retrying with back-off")
                    if refusals[0] >= MQTT_REFUSALS_BEFORE_HTTP:
                        refusals[0] = 0
                        self._check_in_over_http()  # raises TokenRefused when the credentials are void
                    continue
                sent += 1
                # The id lets the portal recognise a copy its MQTT stack resent (QoS 1).
                body = {"id": f"{boot}/{sent}", "values": self._values()}
                client.publish(f"devices/{self.serial}/checkin", json.dumps(body), qos=1)
                interval = self._interval(None)
                self._announce("online", f"on MQTT {host}:{port}, checking in every {interval} s")
                deadline = time.monotonic() + interval
                while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
                    try:
                        command = commands.get(timeout=min(left, 1.0))
                    except queue.Empty:
                        continue
                    status, result = self.run_command(command)
                    client.publish(
                        f"devices/{self.serial}/commands/{command['id']}/result",
                        json.dumps({"status": status, "result": result}),
                        qos=1,
                    ).wait_for_publish(HTTP_TIMEOUT)
                    logger.info("%s command %s %s (over MQTT)", self.serial, command.get("name"), status)
                    if command.get("name") == "reboot" and status == "succeeded":
                        self.reboot()
                if self.renew_certificate_if_due():
                    return  # connect again with the new certificate
        finally:
            client.disconnect()
            client.loop_stop()
            shutil.rmtree(folder, ignore_errors=True)

    def _check_in_over_http(self):
        endpoints = self.state["endpoints"] or {}
        response = self.session.post(
            endpoints.get("checkin") or self.url + "/device/v1/checkin",
            json={"values": self._values()},
            headers=self._bearer(),
            timeout=HTTP_TIMEOUT,
        )
        if response.status_code == 401:
            raise TokenRefused()

    def _values(self):
        try:
            return self.read_values()
        except (subprocess.SubprocessError, ValueError, OSError) as exc:
            logger.warning("%s values unavailable: %s", self.serial, exc)
            return {}

    # Commands

    def run_command(self, command):
        """(status, result) of a command: run once, the same outcome reported again when it is
        handed out again (an acknowledgement was lost, or it came by MQTT and HTTP)."""
        name, params = command.get("name"), command.get("params") or {}
        if command["id"] in self.done:
            return self.done[command["id"]]
        handler = getattr(self, f"command_{name}", None)
        if handler is None:
            status, result = "failed", {"error": f"unsupported command {name!r}"}
        else:
            status, result = handler(params)
        self.done[command["id"]] = (status, result)
        while len(self.done) > 100:
            self.done.pop(next(iter(self.done)))
        return status, result

    def execute(self, command, commands_url):
        name = command.get("name")
        # Handed out again because our acknowledgement was lost: reported again, never rerun.
        status, result = self.run_command(command)
        response = self.session.post(
            f"{commands_url}/{command['id']}",
            json={"status": status, "result": result},
            headers=self._bearer(),
            timeout=HTTP_TIMEOUT,
        )
        if response.status_code == 401:
            raise TokenRefused()
        logger.info("%s command %s %s (ack HTTP %s)", self.serial, name, status, response.status_code)
        if name == "reboot" and status == "succeeded" and response.status_code == 200:
            self.reboot()

    def command_reboot(self, params):
        return "succeeded", {"rebooting": True}

    def command_identify(self, params):
        seconds = params.get("seconds", 10)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 600:
            return "failed", {"error": "seconds must be between 1 and 600"}
        logger.info("%s identify: blinking for %s s", self.serial, seconds)
        return "succeeded", {"blinked_for": seconds}

    def command_set_interval(self, params):
        seconds = params.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            return "failed", {"error": f"seconds must be a whole number from {MIN_INTERVAL} to {MAX_INTERVAL}"}
        self.interval_override = seconds
        self.state.update(interval=seconds)
        return "succeeded", {"interval": seconds}

    def reboot(self):
        self._announce("rebooting")
        self.stop.wait(1)
        if self.on_reboot:
            self.on_reboot()
        self._announce("power-on")

    # Helpers

    def _interval(self, suggested):
        interval = self.interval_override or self.state["interval"] or suggested or 60
        return max(MIN_INTERVAL, min(int(interval), MAX_INTERVAL))

    def _bearer(self):
        return {"Authorization": f"Bearer {self.state['token']}"}

    def _announce(self, status, detail=""):
        """One log line per state change, not per request."""
        if status != self.status:
            self.status = status
            logger.info("%s %s%s", self.serial, status, f": {detail}" if detail else "")

    def _load_or_create_key(self):
        if self.state["private_key"]:
            return serialization.load_pem_private_key(self.state["private_key"].encode(), password=None)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.state.update(private_key=pem, serial=self.serial)
        return key


def _json(response):
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_code(body):
    return (body.get("error") or {}).get("code", "")


def _retry_after(response, body):
    try:
        return max(1, int((body.get("error") or {}).get("retry_after") or response.headers.get("Retry-After") or 60))
    except ValueError:
        return 60


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m firmware.agent", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="The portal's base URL, e.g. https://portal.example.com")
    parser.add_argument("--serial", required=True)
    parser.add_argument("--key", required=True, help="The factory key flashed at manufacture.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--values-from", metavar="CMD", help="Command printing the values (JSON or name=value lines).")
    source.add_argument("--simulate", action="store_true", help="Simulated temperature and humidity (the default).")
    parser.add_argument("--state", type=Path, help="State file for the key pair and credentials (default: none kept).")
    parser.add_argument("--interval", type=int, help="Seconds between check-ins (default: what the portal says).")
    parser.add_argument(
        "--mqtt",
        nargs="?",
        const="auto",
        metavar="URL",
        help="Check in and get commands over MQTT with the issued certificate: the broker provisioning names, "
        "or mqtts://host:port (then verified against the system's CAs). HTTP otherwise.",
    )
    parser.add_argument("--verbose", action="store_true", help="Log every poll, not only state changes.")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s agent %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    stop = threading.Event()

    def request_stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if args.values_from:
        simulator = None

        def values():
            return values_from_command(args.values_from)
    else:
        simulator = Simulator()
        values = simulator.values
    agent = Agent(
        url=args.url,
        serial=args.serial,
        key=args.key,
        state=State(args.state),
        values=values,
        interval=args.interval,
        stop=stop,
        mqtt=args.mqtt,
    )
    if simulator:
        agent.on_reboot = simulator.reboot
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
