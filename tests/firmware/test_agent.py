"""The reference agent: its pieces, and the real process against a live server end to end."""

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings as django_settings

from devices.command_queue import command_send
from devices.models import Command, CommandStatus, Device, DeviceStatus, Reading, RevokedCertificate
from devices.services import device_credentials_revoke
from firmware import agent as agent_module
from firmware.agent import Agent, Simulator, State, certificate_due, values_from_command

from ..factories import ClaimCodeFactory, DeviceFactory

# Generous: the agent waits for what the server says (1 s here); this only bounds a hung test.
WAIT_SECONDS = 60


def test_simulated_values_drift_within_bounds():
    simulator = Simulator(seed=1)
    series = [simulator.values() for _ in range(500)]
    temperatures = [v["temperature"] for v in series]
    assert all(5 <= t <= 35 for t in temperatures)
    assert all(10 <= v["humidity"] <= 95 for v in series)
    assert len(set(temperatures)) > 10
    assert max(abs(a - b) for a, b in zip(temperatures, temperatures[1:], strict=False)) < 3


@pytest.mark.parametrize(
    "output,expected",
    [
        ('{"t": 21.5, "door": "open"}', {"t": 21.5, "door": "open"}),
        ("t=21.5\ndoor=open\n", {"t": 21.5, "door": "open"}),
    ],
    ids=["json", "lines"],
)
def test_values_from_a_command(tmp_path, output, expected):
    (tmp_path / "out.txt").write_text(output)
    assert values_from_command(f"cat {tmp_path / 'out.txt'}") == expected


def test_state_file_is_private_and_survives_a_restart(tmp_path):
    path = tmp_path / "state.json"
    agent = Agent(url="http://x", serial="S1", key="k", state=State(path), values=dict)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Agent(url="http://x", serial="S1", key="k", state=State(path), values=dict)
    assert again.csr != agent.csr  # a fresh signature…
    assert again.private_key.public_key().public_numbers() == agent.private_key.public_key().public_numbers()


@pytest.mark.parametrize(
    "name,params,status",
    [
        ("set_interval", {"seconds": 30}, "succeeded"),
        ("set_interval", {"seconds": 0}, "failed"),
        ("set_interval", {"seconds": "30"}, "failed"),
        ("identify", {}, "succeeded"),
        ("identify", {"seconds": 9999}, "failed"),
        ("reboot", {}, "succeeded"),
    ],
)
def test_demo_commands(name, params, status):
    agent = Agent(url="http://x", serial="S1", key="k", state=State(None), values=dict)
    assert getattr(agent, f"command_{name}")(params)[0] == status


def test_set_interval_changes_the_check_in_period():
    agent = Agent(url="http://x", serial="S1", key="k", state=State(None), values=dict)
    assert agent._interval(60) == 60
    agent.command_set_interval({"seconds": 5})
    assert agent._interval(60) == 5


class _FakeResponse:
    status_code = 200

    def json(self):
        return {}


class _RecordingSession:
    def __init__(self):
        self.headers = {}
        self.posts = []

    def post(self, url, **kwargs):
        self.posts.append((url, kwargs["json"]))
        return _FakeResponse()


def test_a_command_handed_out_twice_runs_once_and_is_acknowledged_twice(monkeypatch):
    session = _RecordingSession()
    agent = Agent(url="http://x", serial="S1", key="k", state=State(None), values=dict, session=session)
    runs = []
    monkeypatch.setattr(agent, "command_identify", lambda params: runs.append(params) or ("succeeded", {"n": 1}))
    command = {"id": "c1", "name": "identify", "params": {}}
    agent.execute(command, "http://x/device/v1/commands")
    agent.execute(command, "http://x/device/v1/commands")
    assert len(runs) == 1
    assert session.posts == [("http://x/device/v1/commands/c1", {"status": "succeeded", "result": {"n": 1}})] * 2


def test_unknown_commands_are_reported_failed():
    session = _RecordingSession()
    agent = Agent(url="http://x", serial="S1", key="k", state=State(None), values=dict, session=session)
    agent.execute({"id": "c2", "name": "self_destruct", "params": {}}, "http://x/c")
    assert session.posts[0][1]["status"] == "failed"


# Certificate renewal


def _self_signed(days_before, days_after):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "S1")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - timedelta(days=days_before))
        .not_valid_after(now + timedelta(days=days_after)).sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM).decode()
    )  # fmt: skip


@pytest.mark.parametrize(
    "days_before,days_after,due", [(0, 365, False), (240, 125, False), (250, 115, True), (400, -35, True)]
)
def test_a_certificate_is_due_when_less_than_a_third_of_its_life_is_left(days_before, days_after, due):
    assert certificate_due(_self_signed(days_before, days_after), datetime.now(UTC)) is due


def _check_in_once(agent):
    def values():
        agent.stop.set()  # the loop checks in, renews if due, then ends instead of waiting
        return {"t": 1}

    agent.read_values = values
    agent.stop.clear()
    agent.check_in_loop()


@pytest.mark.django_db(transaction=True)
def test_the_agent_renews_its_certificate_once_it_is_due(live_server, owner, monkeypatch):
    device = DeviceFactory(owner=owner)
    agent = Agent(url=live_server.url, serial=device.serial, key=device.raw_factory_key, state=State(None), values=dict)
    agent.provision_loop()
    first_pem = agent.state["certificate"]
    first = x509.load_pem_x509_certificate(first_pem.encode())

    _check_in_once(agent)
    assert agent.state["certificate"] == first_pem  # two thirds of its life left: kept

    monkeypatch.setattr(agent_module, "_utcnow", lambda: first.not_valid_after_utc - timedelta(days=30))
    _check_in_once(agent)
    renewed = x509.load_pem_x509_certificate(agent.state["certificate"].encode())
    assert renewed.serial_number != first.serial_number
    assert renewed.public_key() == first.public_key()  # the same key pair, kept in the state file
    device.refresh_from_db()
    assert device.certificate_pem == agent.state["certificate"]
    assert RevokedCertificate.objects.filter(serial_number=format(first.serial_number, "x")).exists()


def test_a_refused_renewal_is_tried_again_an_hour_later_not_at_every_check_in():
    class Refusing(_RecordingSession):
        def post(self, url, **kwargs):
            self.posts.append((url, kwargs["json"]))
            response = _FakeResponse()
            response.status_code = 400
            return response

    session = Refusing()
    agent = Agent(url="http://x", serial="S1", key="k", state=State(None), values=dict, session=session)
    agent.state.update(token="t", certificate=_self_signed(300, 65))
    assert agent.renew_certificate_if_due() is False
    assert agent.renew_certificate_if_due() is False
    assert [url for url, _body in session.posts] == ["http://x/device/v1/certificate"]
    assert agent.renew_not_before - time.monotonic() > 3500
    agent.renew_not_before = time.monotonic() - 1  # the hour has passed
    agent.renew_certificate_if_due()
    assert len(session.posts) == 2


# End to end: the real agent process against the live server.


def _claim(code, owner):
    """Claims through the claiming service (what the owner's form calls)."""
    from claiming.services import device_claim_by_code

    device_claim_by_code(user=owner, code=code, ip="127.0.0.1")


def _wait_for(condition, what, log):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; agent log:\n{log.read_text()}")


@pytest.fixture
def agent_process(live_server, tmp_path):
    processes = []

    def start(device):
        log = tmp_path / f"{device.serial}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "firmware.agent",
                "--url",
                live_server.url,
                "--serial",
                device.serial,
                f"--key={device.raw_factory_key}",  # one argument: a random key may begin with "-"
                "--state",
                str(tmp_path / "state.json"),
                "--interval",
                "1",
            ],
            cwd=Path(django_settings.BASE_DIR),
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        processes.append(process)
        return process, log

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.django_db(transaction=True)
def test_agent_provisions_checks_in_and_completes_a_command(agent_process, settings, owner, tmp_path):
    settings.DEVICE_POLL_BASE_SECONDS = 1
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code, product__checkin_interval=1)
    process, log = agent_process(device)

    _wait_for(lambda: "unclaimed" in log.read_text(), "the first poll", log)
    _claim(code.raw_code, owner)

    def online():
        device.refresh_from_db()
        return device.status == DeviceStatus.ONLINE and Reading.objects.filter(device=device).exists()

    _wait_for(online, "the first check-in", log)
    assert device.token_used_at is not None
    assert set(device.values) == {"temperature", "humidity", "uptime"}
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["certificate"] == device.certificate_pem
    assert state["certificate"].startswith("-----BEGIN CERTIFICATE-----")

    command = command_send(device=device, name="set_interval", params={"seconds": 2})
    _wait_for(
        lambda: Command.objects.get(pk=command.pk).status == CommandStatus.SUCCEEDED,
        "the command's acknowledgement",
        log,
    )
    assert Command.objects.get(pk=command.pk).result == {"interval": 2}

    # A reset voids the token: the agent starts over and waits for the next owner.
    Device.objects.filter(pk=device.pk).update(owner=None)
    device_credentials_revoke(device=device)
    _wait_for(lambda: "token-refused" in log.read_text(), "the agent to notice the reset", log)
    _wait_for(lambda: log.read_text().count("unclaimed") >= 2, "the agent to poll again", log)

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=WAIT_SECONDS) == 0
    assert "stopped" in log.read_text()


# The demo runner: children start, and Ctrl-C stops every one of them.


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rundemo_starts_agents_and_ctrl_c_stops_everything(tmp_path):
    env = {**os.environ, "PORTAL_VAR_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)  # its own SQLite file in tmp_path, not the test database
    root = Path(django_settings.BASE_DIR)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)
    seeded = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"], cwd=root, env=env, check=True, capture_output=True, text=True
    ).stdout
    devices = json.loads((tmp_path / "demo-devices.json").read_text())
    # One more agent whose device the portal does not know: its refused polls are worth a line.
    devices.append({"serial": "DEMO-UNKNOWN", "factory_key": "k"})
    (tmp_path / "demo-devices.json").write_text(json.dumps(devices))
    port = _free_port()
    log = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "rundemo", "--addr", f"127.0.0.1:{port}", "--no-worker", "--agent-interval", "1"],
        cwd=root,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(lambda: "DEMO-UNKNOWN refused" in log.read_text(), "the unknown agent's first poll", log)
        _wait_for(lambda: "DEMO-0001 online" in log.read_text(), "the owned device's first check-in", log)
        _wait_for(lambda: log.read_text().count("=" * 20) >= 2, "the logins printed again", log)
        time.sleep(3)  # a few more check-ins and polls
        children = subprocess.run(["pgrep", "-P", str(demo.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 7  # web and six agents
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=WAIT_SECONDS) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
    output = log.read_text()
    assert "DEMO-0001 stopped" in output and "DEMO-UNKNOWN stopped" in output
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()

    # The logins and the code to try come again, framed, once the server answers and the agents
    # have said their first lines, so that they are what the terminal shows.
    block = output[output.index("=" * 20) : output.rindex("=" * 20)]
    assert output.index("Starting development server") < output.index(block)
    assert output.index("DEMO-0005 unclaimed") < output.index(block)
    assert f"http://127.0.0.1:{port}/" in block and "6 simulated device(s)" in block
    for pattern in (r"owner@example.com / \S+", r"admin@example.com / \S+", r"Claim code to try: \S+", r"/c/\S+"):
        assert re.search(pattern, seeded).group(0) in block, pattern
    # The devices' successful requests stay off the terminal; a refused one is still shown.
    assert '/device/v1/checkin HTTP/1.1\\" 200' not in output
    assert '/device/v1/provision HTTP/1.1\\" 200' not in output
    assert re.search(r'/device/v1/provision HTTP/1.1\\" 4\d\d', output)


def test_a_factory_key_beginning_with_a_dash_is_passed_as_one_argument():
    # token_urlsafe keys begin with "-" one time in 64; rundemo passes --key=KEY for that reason
    # (as two arguments, argparse took the key for an option and the agent exited).
    args = agent_module.parse_args(["--url=http://127.0.0.1:8000", "--serial=DEMO-0001", "--key=-Kx9"])
    assert args.key == "-Kx9"
