"""The embedded default in one command: web server, Celery worker with beat, and one simulated
agent per demo device, as child processes. Ctrl-C (or SIGTERM) stops them all."""

import json
import os
import signal
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
        try:
            self._start("web", [*manage, "runserver", addr, "--noreload"], web_env)
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
            for device in devices:
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
                    ],
                    env,
                )
            self._pause(SETTLE_SECONDS)
            self._print_welcome(url, len(devices))
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

    def _print_welcome(self, url, device_count):
        """The logins and a code to try, framed: seed_demo printed them too, before the servers'
        and devices' start-up lines pushed them off the screen."""
        lines = saved_summary(url) or ["  No demo logins yet: run `manage.py seed_demo`."]
        out = self.stdout.write
        out(FRAME)
        out(self.style.SUCCESS(f"Portal running at {url}/ with {device_count} simulated device(s)."))
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
