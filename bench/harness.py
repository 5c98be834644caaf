"""What every HTTP benchmark shares: a PostgreSQL database, one gunicorn serving the portal and the
baselines, wrk as the load generator, and CPU accounting of the server processes.

Figures are ratios against the baselines measured in the same run; absolute numbers on these
machines are noise.

The portal's own processes, as production starts them, are started here for the benchmarks and
for the tests that need real ones (the delivery tests' worker, the two-hosts drill): `Gunicorn`,
`CeleryWorker` and `CeleryBeat`.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")

WRK_SCRIPT = r"""
local lines = {}
local i = 0
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
local file = os.getenv("BENCH_AUTH_FILE")
local auth_header = os.getenv("BENCH_AUTH_HEADER") or "Authorization"
if file then for line in io.lines(file) do lines[#lines + 1] = line end end
local extra = {}
local extra_file = os.getenv("BENCH_HEADERS_FILE")
if extra_file then
  for line in io.lines(extra_file) do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then extra[name] = value end
  end
end

request = function()
  local headers = {["Content-Type"] = "application/json"}
  for name, value in pairs(extra) do headers[name] = value end
  if #lines > 0 then
    i = i + 1
    headers[auth_header] = lines[(i % #lines) + 1]
  end
  return wrk.format(method, path, headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format(
    "\nBENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"non2xx\": %d, \"socket_errors\": %d, " ..
    "\"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_env(database_url, **extra):
    """Production settings (DEBUG off: no query log, no debug toolbar cost) over plain http."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "False",
        "SECRET_KEY": "bench-" + "k" * 50,
        "SECRET_PEPPER": "bench-pepper",
        "FERNET_KEYS": "YmVuY2gtZmVybmV0LWtleS0zMi1ieXRlcy1sb25nISE=",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "SESSION_COOKIE_SECURE": "False",
        "CSRF_COOKIE_SECURE": "False",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def ensure_wrk():
    if shutil.which("wrk"):
        return "wrk"
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return "wrk"


def create_database(admin_url, name):
    """Drops and creates database `name` on the server of admin_url; returns its URL.

    BENCH_DATABASE_SUFFIX, when set, ends the name: a run beside another on the same server (a test
    suite's `bench.run --quick` drops and creates the same names) keeps to databases of its own."""
    import psycopg

    name += os.getenv("BENCH_DATABASE_SUFFIX", "")

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def manage(env, *args):
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def prepare(env):
    """Migrates the bench database and collects static files (production settings serve them hashed)."""
    manage(env, "migrate", "-v0")
    manage(env, "collectstatic", "--noinput", "-v0")


def _cpu_seconds(pids):
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


class Gunicorn:
    """gunicorn serving bench.wsgi (the portal plus the baselines), or `app`, with a fixed worker count."""

    def __init__(self, env, workers=2, app="bench.wsgi:application", log_path=None):
        self.env = env
        self.workers = workers
        self.app = app
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", self.app, "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(self.workers), "--worker-class", "sync", "--log-level", "warning",
             "--backlog", "2048"],
            cwd=ROOT, env=self.env, stdout=log, stderr=log,
        )
        if log:
            log.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not start")
        time.sleep(1)
        return self

    def pids(self):
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [self.proc.pid, *map(int, children.split())]

    def kill(self):
        """SIGKILL to the master and its workers at once, as when its host dies: no request in
        flight is finished, nothing is shut down in order."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def __exit__(self, *exc):
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait_for(condition, *, seconds=30.0, step=0.05):
    """Polls until `condition()` is truthy; the deadline only bounds a hang, it asserts nothing about speed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


class _CeleryProcess:
    """`celery -A portal …` in a subprocess with `env`, its output in `log_path`; started when its log
    shows `ready`."""

    ready = b""

    def __init__(self, env, log_path):
        self.env = env
        self.log_path = log_path
        self.process = None

    def arguments(self):
        raise NotImplementedError

    def start(self):
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
        self.process = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "portal", *self.arguments()],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        ready = wait_for(lambda: self.ready in self.log_path.read_bytes() or self.process.poll() is not None)
        if not ready or self.process.poll() is not None:
            raise RuntimeError(f"celery {self.arguments()[0]} did not start:\n" + self.log_path.read_text()[-3000:])

    def kill(self):
        """SIGKILL: no warm shutdown, no chance to finish or acknowledge anything."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class CeleryWorker(_CeleryProcess):
    """`celery -A portal worker` (two threads) named `name` (unique per process on this host)."""

    ready = b" ready."

    def __init__(self, env, log_path, *, name="apps-test"):
        super().__init__(env, log_path)
        self.name = name

    def arguments(self):
        return [
            "worker", "--pool", "threads", "--concurrency", "2", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-l", "info", "-n", f"{self.name}-{os.getpid()}@%h",
        ]


class CeleryBeat(_CeleryProcess):
    """`celery -A portal beat` with the portal's schedule, keeping its state in `schedule_path`."""

    ready = b"beat: Starting..."

    def __init__(self, env, log_path, *, schedule_path):
        super().__init__(env, log_path)
        self.schedule_path = schedule_path

    def arguments(self):
        return ["beat", "-l", "info", "--schedule", str(self.schedule_path)]


def wrk(
    server, path, *, method="GET", body=None, auth_lines=None, auth_header="Authorization",
    seconds=10, connections=16, threads=2, headers=None,
):
    """Runs wrk against server; returns req/s, p50/p99 latency and server CPU ms per request.

    auth_lines: values of `auth_header`, one per request in turn (tokens, or session cookies);
    headers: more headers sent with every request ({name: value}: an If-None-Match)."""
    ensure_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "bench.lua")
        script.write_text(WRK_SCRIPT)
        env = {**os.environ, "BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_AUTH_HEADER": auth_header}
        if body is not None:
            env["BENCH_BODY"] = body
        if auth_lines:
            auth = Path(tmp, "auth.txt")
            auth.write_text("\n".join(auth_lines) + "\n")
            env["BENCH_AUTH_FILE"] = str(auth)
        if headers:
            extra = Path(tmp, "headers.txt")
            extra.write_text("".join(f"{name}: {value}\n" for name, value in headers.items()))
            env["BENCH_HEADERS_FILE"] = str(extra)
        pids = server.pids()
        cpu_before = _cpu_seconds(pids)
        out = subprocess.run(
            ["wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{seconds}s",
             "-s", str(script), server.url],
            capture_output=True, text=True, env=env, check=True,
        ).stdout
        cpu = _cpu_seconds(pids) - cpu_before
    line = next(line for line in out.splitlines() if line.startswith("BENCH_JSON "))
    result = json.loads(line.removeprefix("BENCH_JSON "))
    requests = max(result["requests"], 1)
    result["rps"] = round(requests / (result["duration_us"] / 1e6), 1)
    result["cpu_ms_per_request"] = round(cpu * 1000 / requests, 3)
    return result


def postgres_cpu_seconds(database):
    """CPU of the PostgreSQL backends serving `database` (each names its database in its title)."""
    found = subprocess.run(["pgrep", "-f", f"postgres: .* {database} "], capture_output=True, text=True).stdout
    return _cpu_seconds([int(pid) for pid in found.split()])


def measure(server, path, *, database, **kwargs):
    """wrk's figures plus the database's CPU per request (the bare view has none)."""
    before = postgres_cpu_seconds(database)
    result = wrk(server, path, **kwargs)
    pg_ms = (postgres_cpu_seconds(database) - before) * 1000
    result["pg_cpu_ms_per_request"] = round(pg_ms / max(result["requests"], 1), 3)
    return result


def take_turns(server, requests, *, seconds, database, rounds=4, connections=16):
    """Measures each of `requests` ({name: (path, wrk keyword arguments)}) for `seconds` in all, in
    turns of short rounds, so a machine that slows down or speeds up meanwhile moves the baseline and
    the endpoints alike instead of skewing their ratio. Returns {name: combined results}."""
    rounds = max(1, min(rounds, seconds // 2))
    per_round = {"seconds": max(1, seconds // rounds), "connections": connections}
    results = {name: [] for name in requests}
    for _ in range(rounds):
        for name, (path, kwargs) in requests.items():
            results[name].append(measure(server, path, database=database, **kwargs, **per_round))
    return {name: combine(runs) for name, runs in results.items()}


def combine(runs):
    """One result for several wrk runs of the same request: totals, and the worst tail."""
    requests = sum(r["requests"] for r in runs)
    duration_us = sum(r["duration_us"] for r in runs)
    return {
        "requests": requests,
        "rps": round(requests / (duration_us / 1e6), 1),
        "cpu_ms_per_request": round(sum(r["cpu_ms_per_request"] * r["requests"] for r in runs) / max(requests, 1), 3),
        "pg_cpu_ms_per_request": round(
            sum(r["pg_cpu_ms_per_request"] * r["requests"] for r in runs) / max(requests, 1), 3
        ),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "non2xx": sum(r["non2xx"] for r in runs),
    }


def cpu_ratio(bare, result):
    """Server CPU (web + database) of the bare view relative to `result`'s: steadier than req/s when
    other processes compete for the same cores."""
    return round(bare["cpu_ms_per_request"] / (result["cpu_ms_per_request"] + result["pg_cpu_ms_per_request"]), 3)


def print_rows(rows):
    """Prints benchmark rows (dicts with benchmark, measure, value and optional goal/met) as a table."""
    print(f"{'benchmark':<46}{'measure':<24}{'value':>12}  {'goal':<30}{'met':<5}details")
    for row in rows:
        shown = {"benchmark", "measure", "value", "goal", "met"}
        details = ", ".join(f"{key}={value}" for key, value in row.items() if key not in shown)
        met = "" if "met" not in row else ("yes" if row["met"] else "NO")
        print(
            f"{row['benchmark']:<46}{row['measure']:<24}{row['value']:>12}  {row.get('goal', ''):<30}{met:<5}{details}"
        )
