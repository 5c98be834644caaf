"""The embedded default in one command: web server, Celery worker with beat, and one simulated
agent per demo device, as child processes. Ctrl-C (or SIGTERM) stops them all."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

STOP_TIMEOUT = 10
WEB_START_TIMEOUT = 60


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
        for option in ("data_folder_in", "data_folder_out", "processed_folder"):
            # kombu's filesystem transport expects its folders to exist.
            if folder := settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(option):
                os.makedirs(folder, exist_ok=True)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        try:
            self._start("web", [*manage, "runserver", addr, "--noreload"], env)
            if not no_worker:
                # -B runs beat inside the worker: one process for the demo; solo pool keeps it small.
                self._start(
                    "worker",
                    [
                        sys.executable,
                        "-m",
                        "celery",
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
            if not self._wait_for_port(host, int(port)):
                raise CommandError(f"The web server did not start on {addr}.")
            url = f"http://{addr}"
            devices = [] if no_agents else self._demo_devices()
            agents_dir = settings.VAR_DIR / "agents"
            agents_dir.mkdir(exist_ok=True)
            for device in devices:
                self._start(
                    f"agent {device['serial']}",
                    [
                        sys.executable,
                        "-m",
                        "devices.agent",
                        "--url",
                        url,
                        "--serial",
                        device["serial"],
                        "--key",
                        device["factory_key"],
                        "--state",
                        str(agents_dir / f"{device['serial']}.json"),
                        "--interval",
                        str(agent_interval),
                        "--simulate",
                    ],
                    env,
                )
            self.stdout.write(
                self.style.SUCCESS(f"Portal running at {url}/ with {len(devices)} simulated device(s).")
                + " Press Ctrl-C to stop."
            )
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

    def _wait_for_port(self, host, port):
        deadline = time.monotonic() + WEB_START_TIMEOUT
        while time.monotonic() < deadline and not self.stopping:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.3)
        return False

    def _demo_devices(self):
        path = settings.VAR_DIR / "demo-devices.json"
        if not path.exists():
            self.stderr.write(f"No {path}: run `manage.py seed_demo` for simulated devices. Starting without them.")
            return []
        devices = json.loads(path.read_text())
        return [d for d in devices if isinstance(d, dict) and d.get("serial") and d.get("factory_key")]
