"""After every flow has run with DEBUG logging, no secret appears in a log record, in a page other
than the one that shows it once, or in an error message; and gunicorn, run as production runs it,
writes no token or claim code from a URL to its access or error log."""

import base64
import http.client
import logging
import socket
import subprocess
import sys
import time
from http import HTTPStatus

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.urls import reverse

from apps.models import AppLink
from apps.services.links import connect_link_create
from claiming.transfers import transfer_offer
from devices import codes
from devices.models import Device
from portal.secrets import random_token

from ..factories import ApplicationFactory, ClaimCodeFactory, DeviceFactory
from ..portal.test_compose import ROOT, make_recipe
from ..portal.test_settings import manage, production_env


@pytest.fixture
def secrets_world(owner, other_owner):
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code)
    pin_device = DeviceFactory(raw_pin="7394AB", claimable=True)
    application = ApplicationFactory(owner=owner)
    return {
        "code": code, "device": device, "pin_device": pin_device, "application": application,
        "secrets": {
            "claim code": code.raw_code,
            "factory key": device.raw_factory_key,
            "factory key (pin device)": pin_device.raw_factory_key,
            "PIN": "7394AB",
            "app Secret": application.raw_secret,
            "signing secret": application.raw_signing_secret,
        },
    }


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_no_secret_reaches_logs_pages_or_errors(client, owner, secrets_world, caplog):
    caplog.set_level(logging.DEBUG)
    world, seen = secrets_world, []
    device, application = world["device"], world["application"]
    client.force_login(owner)

    # Devices poll before and after the claim, with a wrong key too.
    for key in (device.raw_factory_key, "wrong-key"):
        seen.append(client.post("/device/v1/provision", {"attempt": 0}, content_type="application/json",
                                HTTP_AUTHORIZATION=_basic(device.serial, key)))
    # Claims: a wrong code, the right code, a wrong PIN, the right PIN.
    seen.append(client.post(reverse("claiming:claim"), {"method": "code", "code": "WRONG-CODE1"}))
    seen.append(client.post(reverse("claiming:claim"), {"method": "code", "code": world["code"].raw_code}))
    seen.append(client.post(reverse("claiming:claim"), {"method": "pin", "serial": world["pin_device"].serial,
                                                        "pin": "000000"}))
    seen.append(client.post(reverse("claiming:claim"), {"method": "pin", "serial": world["pin_device"].serial,
                                                        "pin": "7394AB"}))
    assert Device.objects.filter(owner=owner).count() == 2
    # The device gets its token (shown to the device once: the response is the show-once place).
    provisioned = client.post("/device/v1/provision", {"attempt": 1}, content_type="application/json",
                              HTTP_AUTHORIZATION=_basic(device.serial, device.raw_factory_key))
    token = provisioned.json()["credentials"]["token"]
    world["secrets"]["device token"] = token
    seen.append(client.post("/device/v1/checkin", {"values": {"t": 21}}, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {token}"))
    seen.append(client.post("/device/v1/checkin", {"values": {"t": {"nested": 1}}}, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {token}"))
    seen.append(client.post("/device/v1/checkin", {"values": {}}, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {token}x"))
    # The integrator, right and wrong.
    AppLink.objects.create(application=application, device=device)
    for secret in (application.raw_secret, application.raw_secret[:-1]):
        seen.append(client.get("/api/v1/devices", HTTP_AUTHORIZATION=_basic(application.app_id, secret)))
    # The owner's pages.
    for url in (reverse("devices:list"), reverse("devices:detail", args=[device.pk]), reverse("apps:list"),
                reverse("apps:detail", args=[application.app_id])):
        seen.append(client.get(url))
    assert all(response.status_code < 500 for response in seen)

    log_text = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert caplog.records, "the flows should have logged something"
    for label, secret in world["secrets"].items():
        assert secret not in log_text, f"{label} appears in the logs"
        for response in seen:
            path = response.request["PATH_INFO"]
            if label == "signing secret" and path == reverse("apps:detail", args=[application.app_id]):
                continue  # its one place, by design: the application's page, for its owner
            assert secret.encode() not in response.content, f"{label} appears in {path}"


def test_the_signing_secret_is_shown_on_the_app_page_only_to_its_owner(client, other_owner, secrets_world):
    client.force_login(other_owner)
    application = secrets_world["application"]
    response = client.get(reverse("apps:detail", args=[application.app_id]))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert application.raw_signing_secret.encode() not in response.content


# --- gunicorn in production shape ---------------------------------------------------------------

PRODUCTION_SECRET_KEY = "drill-" + "s" * 50
PRODUCTION_PEPPER = "drill-production-pepper"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gunicorn_command(port, access_log):
    """`make web`'s command (the Dockerfile's and compose's too: tests/portal/test_compose.py), bound
    to a free port, its access log to a file; the error log (gunicorn's and Django's) is stderr."""
    words = make_recipe("web")
    words[words.index("--bind") + 1] = f"127.0.0.1:{port}"
    words[words.index("--workers") + 1] = "1"
    words[words.index("--access-logfile") + 1] = str(access_log)
    return [sys.executable, "-m", *words]


@pytest.fixture
def production_gunicorn(transactional_db, requires_postgres, tmp_path, settings):
    # Digests and sessions made here must be the ones the server checks.
    settings.SECRET_PEPPER = PRODUCTION_PEPPER
    settings.SECRET_KEY = PRODUCTION_SECRET_KEY
    db = connection.settings_dict
    env = production_env(
        tmp_path,
        SECRET_KEY=PRODUCTION_SECRET_KEY,
        SECRET_PEPPER=PRODUCTION_PEPPER,
        FERNET_KEYS=f"{Fernet.generate_key().decode()},{','.join(django_settings.FERNET_KEYS)}",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="False",
        LOG_LEVEL="INFO",
        DATABASE_CONN_MAX_AGE="0",
    )
    assert manage(env, "collectstatic", "--noinput", "-v0").returncode == 0
    port, access_log, error_log = free_port(), tmp_path / "access.log", tmp_path / "error.log"
    with error_log.open("w") as stderr:
        server = subprocess.Popen(_gunicorn_command(port, access_log), cwd=ROOT, env=env, stderr=stderr)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, error_log.read_text()
            time.sleep(0.2)
    yield {"port": port, "access_log": access_log, "error_log": error_log}
    server.terminate()
    server.wait(timeout=30)


def _get(port, path, *, session=None, referer=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    if referer:
        headers["Referer"] = referer
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def _session_for(user):
    store = SessionStore()
    store.update({
        SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: user.get_session_auth_hash(),
    })
    store.create()
    return store.session_key


def test_no_secret_reaches_gunicorns_logs(production_gunicorn, owner, other_owner):
    code = ClaimCodeFactory()
    DeviceFactory(claim_code=code)
    transfer, transfer_token = transfer_offer(
        device=DeviceFactory(owner=owner), to_email=other_owner.email, actor=owner, ip="203.0.113.1"
    )
    _, connect_url = connect_link_create(application=ApplicationFactory(owner=None, managed=True))
    connect_token = connect_url.rstrip("/").rsplit("/", 1)[1]
    wrong = {"transfer": random_token(), "connect": random_token(), "code": "QWERT-YZ234"}
    secrets = [code.raw_code, codes.normalize(code.raw_code), transfer_token, connect_token, *wrong.values()]
    paths = [
        f"/c/{code.raw_code}", f"/c/{wrong['code']}",
        f"/claim/?code={code.raw_code}", f"/claim/?method=code&code={wrong['code']}",
        f"/accounts/login/?next=/claim/%3Fcode%3D{code.raw_code}",
        f"/transfer/{transfer_token}/", f"/transfer/{wrong['transfer']}/",
        f"/apps/connect/{connect_token}", f"/apps/connect/{wrong['connect']}",
    ]
    port, session = production_gunicorn["port"], _session_for(other_owner)
    statuses = [_get(port, path) for path in paths]
    statuses += [_get(port, path, session=session, referer=f"http://127.0.0.1:{port}{path}") for path in paths]
    assert HTTPStatus.NOT_FOUND in statuses  # a wrong token, logged in: Django's "Not Found" warning
    assert all(status < HTTPStatus.INTERNAL_SERVER_ERROR for status in statuses), statuses
    deadline = time.monotonic() + 5
    while len(production_gunicorn["access_log"].read_text().splitlines()) < len(statuses):
        assert time.monotonic() < deadline, "gunicorn did not log every request"
        time.sleep(0.1)

    access, errors = production_gunicorn["access_log"].read_text(), production_gunicorn["error_log"].read_text()
    assert access.count("[redacted]") >= len(statuses)
    assert "Not Found" in errors and "[redacted]" in errors
    for secret in secrets:
        assert secret not in access, f"{secret} is in gunicorn's access log"
        assert secret not in errors, f"{secret} is in the error log"
