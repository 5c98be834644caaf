"""Chunked request bodies (no Content-Length) through gunicorn, the production server.

Django's test client cannot send `Transfer-Encoding: chunked`, so these tests start a real gunicorn
on the test database and talk to it over a socket.
"""

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from http import HTTPStatus
from pathlib import Path

import pytest
from django.db import connection

from bench.harness import free_port
from devices.models import Device, DeviceStatus

from ..conftest import service_missing
from ..factories import DeviceFactory
from .protocol_support import CHECKIN_URL, PROVISION_URL, basic, provision_token

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gunicorn(transactional_db):
    """A gunicorn on the test database: PostgreSQL only (tests using it are marked `services`)."""
    if connection.vendor != "postgresql":
        service_missing("needs PostgreSQL: gunicorn must share the test database (set DATABASE_URL=postgres://...)")
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": url, "DATABASE_CONN_MAX_AGE": "0"},
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start")
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _chunks(data: bytes, size=4096):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _post_chunked(port, path, body: bytes, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(
            "POST", path, body=_chunks(body), encode_chunked=True,
            headers={"Content-Type": "application/json", **headers},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.services
def test_a_chunked_checkin_is_read_and_recorded(gunicorn, client, owner):
    device = DeviceFactory(owner=owner)
    token = provision_token(client, device)
    body = json.dumps({"values": {"temperature": 21.5}}).encode()
    status, answer = _post_chunked(gunicorn, CHECKIN_URL, body, _bearer(token))
    assert status == HTTPStatus.OK, answer
    assert "commands" in answer
    device = Device.objects.get(pk=device.pk)
    assert device.status == DeviceStatus.ONLINE
    assert device.values == {"temperature": 21.5}


@pytest.mark.services
def test_a_chunked_body_over_the_cap_is_413(gunicorn, client, owner):
    device = DeviceFactory(owner=owner)
    token = provision_token(client, device)
    body = json.dumps({"values": {"blob": "x" * 70_000}}).encode()
    status, answer = _post_chunked(gunicorn, CHECKIN_URL, body, _bearer(token))
    assert status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert answer["error"]["code"] == "too_large"
    assert Device.objects.get(pk=device.pk).status == DeviceStatus.NEVER_SEEN


@pytest.mark.services
def test_a_chunked_provision_poll_carries_its_body(gunicorn, owner):
    device = DeviceFactory(owner=owner)
    auth = basic(device.serial, device.raw_factory_key)["HTTP_AUTHORIZATION"]
    status, answer = _post_chunked(gunicorn, PROVISION_URL, b'{"attempt": -1}', {"Authorization": auth})
    # The body was read: its invalid attempt is refused (an unread body would have been taken as {}).
    assert status == HTTPStatus.BAD_REQUEST, answer
    assert answer["error"]["fields"] == {"attempt": ["A whole number ≥ 0."]}


@pytest.mark.django_db
def test_a_chunked_body_a_server_cannot_end_is_411_not_read(rf, owned_device):
    from devices.protocol.views import DeviceCheckinApi

    request = rf.post(
        CHECKIN_URL, data=b"", content_type="application/json",
        HTTP_AUTHORIZATION="Bearer " + "t" * 43, HTTP_TRANSFER_ENCODING="chunked",
    )
    request.META.pop("CONTENT_LENGTH", None)
    request.META["CONTENT_TYPE"] = "application/json"
    response = DeviceCheckinApi.as_view()(request)
    assert response.status_code == HTTPStatus.LENGTH_REQUIRED
    assert json.loads(response.content)["error"]["code"] == "length_required"
