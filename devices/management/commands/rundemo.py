"""The embedded default in one command: web server, Celery worker with beat, and one simulated
agent per demo device, as child processes. Ctrl-C (or SIGTERM) stops them all.

Where Debian's `mosquitto` is installed, the worker comes with a broker (the portal's generated
configuration, in var/mqtt) and the MQTT bridge, and the first demo device talks MQTT."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from devices.demo import saved_summary

STOP_TIMEOUT = 10
WEB_START_TIMEOUT = 60
# After the agents start: their first lines (power-on, unclaimed) and the worker's come within a
# second or two, and the logins are printed after them, so that they stay on the screen.
SETTLE_SECONDS = 3
FRAME = "=" * 78


class Command(BaseCommand):
    help = "Runs the portal with a Celery worker and beat and a simulated agent for each demo device."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="Address for the web server (host:port).")
        parser.add_argument(
            "--agent-interval", type=int, default=5, help="Seconds between the simulated devices' check-ins."
        )
        parser.add_argument("--no-worker", action="store_true", help="Do not start the Celery worker and beat.")
        parser.add_argument("--no-agents", action="store_true", help="Do not start simulated devices.")

    def handle(self, *args, addr, agent_interval, no_worker, no_agents, **options):
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise CommandError("--addr must look like 127.0.0.1:8000")
        self.children = []  # (name, Popen), started in order, stopped in reverse
        self.stopping = False
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # A line per device request every few seconds would bury everything else; errors still show.
        web_env = {"LOG_DEVICE_REQUESTS": "False", **env}
        for option in ("data_folder_in", "data_folder_out", "processed_folder"):
            # kombu's filesystem transport expects its folders to exist.
            if folder := settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(option):
                os.makedirs(folder, exist_ok=True)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        # MQTT needs the worker: its outbox relay pushes the commands.
        mqtt = None if no_worker else self._mqtt_prepare()
        if mqtt:
            env.update(mqtt["env"])
            web_env.update(mqtt["env"])
        try:
            self._start("web", [*manage, "runserver", addr, "--noreload"], web_env)
            if mqtt:
                self._start("mqtt broker", [mqtt["binary"], "-c", str(mqtt["conf"])], env)
                self._start("mqtt bridge", [*manage, "mqtt_bridge", "--client-id", "portal-bridge-demo"], env)
            if not no_worker:
                # -B runs beat inside the worker: one process for the demo; solo pool keeps it small.
                self._start(
                    "worker",
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "--quiet",  # no start-up banner
                        "-A",
                        "portal",
                        "worker",
                        "-B",
                        "--pool",
                        "solo",
                        "--loglevel",
                        "WARNING",
                    ],
                    env,
                )
            url = f"http://{addr}"
            if not self._wait_for_http(url):
                raise CommandError(f"The web server did not start on {addr}.")
            devices = [] if no_agents else self._demo_devices()
            agents_dir = settings.VAR_DIR / "agents"
            agents_dir.mkdir(exist_ok=True)
            for index, device in enumerate(devices):
                # The first demo device on MQTT, when the broker runs; the others on HTTP.
                transport = ["--mqtt"] if mqtt and index == 0 else []
                self._start(
                    f"agent {device['serial']}",
                    [
                        sys.executable,
                        "-m",
                        "firmware.agent",
                        "--url",
                        url,
                        # One argument each: a key may begin with "-" (token_urlsafe), which
                        # argparse would take for an option if it came on its own.
                        f"--serial={device['serial']}",
                        f"--key={device['factory_key']}",
                        "--state",
                        str(agents_dir / f"{device['serial']}.json"),
                        "--interval",
                        str(agent_interval),
                        "--simulate",
                        *transport,
                    ],
                    env,
                )
            self._pause(SETTLE_SECONDS)
            self._print_welcome(url, len(devices), mqtt=mqtt, no_worker=no_worker)
            return self._supervise()
        finally:
            self._stop_all()

    def _request_stop(self, signum, frame):
        self.stopping = True

    def _start(self, name, command, env):
        # A session of its own: Ctrl-C reaches this command only, which then stops children in order.
        process = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, start_new_session=True)
        self.children.append((name, process))
        return process

    def _supervise(self):
        essential = {"web", "worker"}
        while not self.stopping:
            for name, process in list(self.children):
                code = process.poll()
                if code is None:
                    continue
                self.children.remove((name, process))
                if name in essential:
                    self.stderr.write(f"{name} exited with status {code}; stopping the demo.")
                    self.stopping = True
                else:
                    self.stderr.write(f"{name} exited with status {code}.")
            time.sleep(0.5)

    def _stop_all(self):
        for _, process in reversed(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, process in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in {STOP_TIMEOUT} s; killing it.")
                process.kill()
                process.wait()
        self.children = []

    def _wait_for_http(self, url):
        """True once the web server answers a request (any status), False after WEB_START_TIMEOUT."""
        deadline = time.monotonic() + WEB_START_TIMEOUT
        while time.monotonic() < deadline and not self.stopping:
            try:
                requests.get(f"{url}/", timeout=2)
                return True
            except requests.RequestException:
                time.sleep(0.3)
        return False

    def _pause(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.1)

    def _mqtt_prepare(self):
        """The broker's configuration and the environment of the processes that use it, or None
        (and how to enable it) when Mosquitto is not installed."""
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else "")
        if not binary:
            return None
        from devices.mqtt.broker import broker_config_write

        bridge_port, tls_port = _port_or_free(settings.MQTT_PORT), _port_or_free(settings.MQTT_TLS_PORT)
        # A demo-only credential, new each run (the password file is written again).
        password = settings.MQTT_BRIDGE_PASSWORD or secrets.token_urlsafe(16)
        conf = broker_config_write(
            tls_port=tls_port, bridge_host="127.0.0.1", bridge_port=bridge_port, bridge_password=password
        )
        env = {
            "MQTT_BRIDGE_PASSWORD": password,
            "MQTT_PORT": str(bridge_port),
            "MQTT_TLS_PORT": str(tls_port),
            "MQTT_DEVICE_URL": f"mqtts://localhost:{tls_port}",
        }
        return {"binary": binary, "conf": conf, "env": env, "tls_port": tls_port}

    def _print_welcome(self, url, device_count, *, mqtt=None, no_worker=False):
        """The logins and a code to try, framed: seed_demo printed them too, before the servers'
        and devices' start-up lines pushed them off the screen."""
        lines = saved_summary(url) or ["  No demo logins yet: run `manage.py seed_demo`."]
        out = self.stdout.write
        out(FRAME)
        out(self.style.SUCCESS(f"Portal running at {url}/ with {device_count} simulated device(s)."))
        if mqtt:
            out(f"MQTT: broker on mqtts://localhost:{mqtt['tls_port']}, bridge running; the first device uses MQTT.")
        elif not no_worker:
            out("MQTT: off. Install Mosquitto (apt-get install mosquitto) and `make run` starts a broker, the bridge")
            out("      and one simulated device on MQTT.")
        for line in lines:
            out(line)
        out("Press Ctrl-C to stop.")
        out(FRAME)

    def _demo_devices(self):
        path = settings.VAR_DIR / "demo-devices.json"
        if not path.exists():
            self.stderr.write(f"No {path}: run `manage.py seed_demo` for simulated devices. Starting without them.")
            return []
        devices = json.loads(path.read_text())
        return [d for d in devices if isinstance(d, dict) and d.get("serial") and d.get("factory_key")]


def _port_or_free(port: int) -> int:
    """`port` when nothing listens there on this host, else one the system picks."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
