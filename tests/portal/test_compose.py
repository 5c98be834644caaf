"""docker-compose.yml and the Dockerfile, read as files (no Docker engine runs here): the services
exist, start in the right order, and run the same commands as the Makefile's targets."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ["migrate", "web", "worker", "beat"]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def make_recipe(target):
    """The first command of a Makefile target, without the venv's bin/ prefix."""
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:.*\n\t(.+)$", text, re.MULTILINE)
    assert match, f"Makefile has no {target} target"
    words = shlex.split(match.group(1))
    words[0] = words[0].replace("$(BIN)/", "")
    return words


def command_words(service):
    command = service["command"]
    return command if isinstance(command, list) else shlex.split(command)


def test_has_every_service(services):
    assert {"postgres", "redis", *APP_SERVICES} <= set(services)


@pytest.mark.parametrize("name", ["web", "worker", "beat", "mqtt-bridge"])
def test_runs_the_makefile_command(services, name):
    assert command_words(services[name]) == make_recipe(name)


def test_migrate_runs_migrations(services):
    assert command_words(services["migrate"])[:3] == ["python", "manage.py", "migrate"]
    assert services["migrate"].get("restart") == "no"


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_starts_after_migrate_postgres_and_redis(services, name):
    depends = services[name]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_the_image_and_configuration(services, name):
    service = services[name]
    assert service["build"] == "."
    environment = service["environment"]
    for variable in ["DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SECRET_PEPPER", "FERNET_KEYS", "ALLOWED_HOSTS"]:
        assert variable in environment
    assert environment["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    assert environment["DEBUG"] == "0"


def test_secrets_come_from_the_environment(services):
    environment = services["web"]["environment"]
    for variable in ["SECRET_KEY", "SECRET_PEPPER", "FERNET_KEYS"]:
        assert environment[variable].startswith(f"${{{variable}:?")  # compose refuses to start without it


def test_web_is_health_checked_on_healthz(services):
    web = services["web"]
    assert any("/healthz" in part for part in web["healthcheck"]["test"])
    bind = command_words(web)[command_words(web).index("--bind") + 1]
    port = bind.rsplit(":", 1)[1]
    # Only the host's loopback: clients come through the proxy, whose X-Forwarded-For the portal trusts.
    assert web["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert web["environment"]["TRUSTED_PROXY_IP_HEADER"].endswith("HTTP_X_FORWARDED_FOR}")


def test_databases_are_checked_and_kept(services, compose):
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert {"postgres-data", "redis-data"} <= set(compose["volumes"])


def test_dockerfile_installs_the_project_and_collects_static():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN pip install \.$", dockerfile, re.MULTILINE)
    assert "manage.py collectstatic --noinput" in dockerfile
    assert re.search(r"^USER \w+$", dockerfile, re.MULTILINE)  # not root at run time
    cmd = re.search(r"^CMD (.+)$", dockerfile, re.MULTILINE).group(1)
    assert yaml.safe_load(cmd) == make_recipe("web")


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var"} <= set(ignored)
