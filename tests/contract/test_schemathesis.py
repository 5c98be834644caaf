"""schemathesis, run as an integrator or a firmware developer would run it from outside: every check
and every phase (examples, coverage, fuzzing, stateful) against a live portal, on the integrator API
and on the device protocol. A failure prints schemathesis's own report with a curl line to replay."""

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.apps.api_support import api_world_make, auth
from tests.devices.protocol_support import provision_token
from tests.factories import DeviceFactory

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
# A fixed seed keeps CI repeatable; SCHEMATHESIS_SEED=random (or a number) explores further.
SEED = os.getenv("SCHEMATHESIS_SEED", "20261203")
MAX_EXAMPLES = os.getenv("SCHEMATHESIS_MAX_EXAMPLES", "25")

pytestmark = pytest.mark.services


@pytest.fixture
def world(transactional_db, settings, owner, client):
    # Thousands of requests in a minute: the limits are tested elsewhere and would answer 429 here.
    settings.API_THROTTLE_RATE = "100000/minute"
    settings.DEVICE_RATE_LIMIT_PER_DEVICE = settings.DEVICE_RATE_LIMIT_PER_IP = 100000
    application, _ = api_world_make(owner)
    firmware = DeviceFactory(owner=owner)
    return {
        "api": auth(application)["HTTP_AUTHORIZATION"],
        "provision": "Basic " + base64.b64encode(f"{firmware.serial}:{firmware.raw_factory_key}".encode()).decode(),
        "device": "Bearer " + provision_token(client, firmware),
    }


def _schemathesis(live_server, tmp_path, *, paths, authorization):
    command = [
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{live_server.url}/api/schema/?format=json",
        "--url", live_server.url, "--header", f"Authorization: {authorization}",
        "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
        "--include-path-regex", paths, "--max-examples", MAX_EXAMPLES, "--seed", SEED,
        "--report", "junit", "--report-dir", str(tmp_path), "--no-color",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=480, check=False)  # noqa: S603
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
    return run.stdout


def test_the_integrator_api_answers_as_its_schema_says(live_server, world, tmp_path):
    report = _schemathesis(live_server, tmp_path, paths="^/api/v1/", authorization=world["api"])
    assert re.search(r"Tested: 9\b", report), report
    # The stateful phase follows links between operations (a listed device's id into its readings, a
    # sent command's id into its status): a run that followed none tested each operation alone.
    covered = re.search(r"API Links:\s+(\d+) covered", report)
    assert covered and int(covered.group(1)) >= 4, report


def test_provisioning_answers_as_its_schema_says(live_server, world, tmp_path):
    _schemathesis(live_server, tmp_path, paths="^/device/v1/provision$", authorization=world["provision"])


def test_check_in_commands_and_renewal_answer_as_their_schema_says(live_server, world, tmp_path):
    paths = "^/device/v1/(checkin|commands|certificate)"
    report = _schemathesis(live_server, tmp_path, paths=paths, authorization=world["device"])
    assert "Tested: 4" in report, report[-3000:]
