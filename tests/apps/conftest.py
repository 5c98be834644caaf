"""Fixtures of the applications tests: a real HTTP receiver on 127.0.0.1, an application whose
callback points at it, an independent Standard Webhooks verifier, and a real Celery worker."""

import base64
import hashlib
import hmac
import os

import pytest
from django.db import connection
from pytest_httpserver import HTTPServer

from apps.models import AppLink
from bench.harness import CeleryWorker
from devices.outbox import event_record, relay_pending

from ..factories import ApplicationFactory, DeviceFactory


@pytest.fixture
def private_targets(settings):
    """Loopback and plain http allowed: only for tests that talk to the local receiver."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True


@pytest.fixture(scope="session")
def _receiver_server():
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receiver(_receiver_server):
    """A threaded HTTP server on 127.0.0.1 that records every request it gets (cleared per test)."""
    _receiver_server.clear()
    yield _receiver_server
    _receiver_server.clear()


def hook_url(server, path="/hook"):
    return f"http://127.0.0.1:{server.port}{path}"


@pytest.fixture
def hooked_app(owner, receiver, private_targets):
    """The owner's application with its callback on the receiver, and one linked device."""
    application = ApplicationFactory(owner=owner, callback_url=hook_url(receiver))
    application.device = DeviceFactory(owner=owner)
    AppLink.objects.create(application=application, device=application.device)
    return application


def record_and_relay(device, n=1, type="device.data"):
    """`n` events of `device` recorded, then relayed (fanned out to the applications that hear it)."""
    for i in range(n):
        event_record(device=device, type=type, data={"temperature": 20 + i})
    relay_pending()


def verify_standard_webhook(request, signing_secret) -> bool:
    """Checks `webhook-signature` the way a receiver would, written apart from the portal's code."""
    message_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    key = base64.b64decode(signing_secret.split("_", 1)[1])
    expected = hmac.new(key, f"{message_id}.{timestamp}.".encode() + request.get_data(), hashlib.sha256).digest()
    for candidate in request.headers["webhook-signature"].split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(base64.b64decode(signature), expected):
            return True
    return False


@pytest.fixture
def celery_worker(requires_postgres, transactional_db, redis_url, tmp_path):
    """A real worker consuming the test broker and writing to the test database."""
    from redis import Redis

    from portal.celery import app as celery_app

    broker_url = celery_app.conf.broker_url
    # Messages left by an earlier run would be worked off against this test's database.
    Redis.from_url(broker_url).delete("celery", "unacked", "unacked_index")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url,
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "True",
        "DATABASE_CONN_MAX_AGE": "0",
    }
    worker = CeleryWorker(env, tmp_path / "worker.log")
    worker.start()
    yield worker
    worker.stop()
