import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path, **overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update(
        DEBUG="False",
        SECRET_KEY="x" * 20 + "a-long-random-production-secret-key-value",
        SECRET_PEPPER="a-production-pepper-value",
        FERNET_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="portal.example.com",
        PORTAL_BASE_URL="https://portal.example.com",
        PORTAL_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="portal.settings",
    )
    env.update(overrides)
    return env


def manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_in_production(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_warns_of_a_proxy_without_the_client_address_header(tmp_path):
    env = production_env(tmp_path, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO", TRUSTED_PROXY_IP_HEADER="")
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "portal.W001" in result.stderr + result.stdout
    env["TRUSTED_PROXY_IP_HEADER"] = "HTTP_X_FORWARDED_FOR"
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["SECRET_KEY", "SECRET_PEPPER", "FERNET_KEYS"])
def test_production_refuses_development_secrets(tmp_path, name):
    env = production_env(tmp_path)
    del env[name]
    result = manage(env, "check")
    assert result.returncode != 0
    assert f"{name} still has its development value" in result.stderr


def test_bad_boolean_is_refused(tmp_path):
    result = manage(production_env(tmp_path, DEBUG="maybe"), "check")
    assert "DEBUG must be true or false" in result.stderr


def test_debug_is_off_unless_turned_on(tmp_path):
    env = production_env(tmp_path)
    del env["DEBUG"]
    result = manage(env, "shell", "-c", "from django.conf import settings; print('DEBUG', settings.DEBUG)")
    assert result.returncode == 0, result.stderr
    assert "DEBUG False" in result.stdout


def test_a_deployment_that_forgets_debug_and_secrets_does_not_start(tmp_path):
    env = production_env(tmp_path)
    for name in ("DEBUG", "SECRET_KEY", "SECRET_PEPPER", "FERNET_KEYS"):
        del env[name]
    result = manage(env, "check")
    assert result.returncode != 0
    assert "DEBUG is off but SECRET_KEY, SECRET_PEPPER, FERNET_KEYS still has its development value" in result.stderr


def test_makemigrations_check_runs_on_a_bare_checkout_and_nothing_else_does(tmp_path):
    env = production_env(tmp_path)
    for name in ("DEBUG", "SECRET_KEY", "SECRET_PEPPER", "FERNET_KEYS"):
        del env[name]
    result = manage(env, "makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "No changes detected" in result.stdout
    assert manage(env, "migrate", "--plan").returncode != 0  # anything that reads data is still refused


def test_make_run_turns_debug_on_itself():
    recipe = re.search(r"^run:.*\n((?:\t.+\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    commands = [line.strip() for line in recipe.splitlines()]
    assert commands and all(command.startswith("DEBUG=True ") for command in commands), commands
