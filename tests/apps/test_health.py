"""/healthz (apps.healthz): 200 when all is well, 503 naming each failing check."""

import json
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError
from kombu import Connection

from apps import healthz as health
from apps import sql as apps_sql
from apps.models import Delivery, DeliveryStatus
from devices import stale
from portal import celery_app
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db

URL = "/healthz"
TOKEN = "healthz-token-for-monitoring"
BEARER = f"Bearer {TOKEN}"


@pytest.fixture(autouse=True)
def _healthz_token(settings):
    settings.HEALTHZ_TOKEN = TOKEN
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def swept(clock):
    stale.devices_mark_stale()


def due_delivery(waited, **app):
    return Delivery.objects.create(
        application=ApplicationFactory(**app),
        event_type="device.data",
        status=DeliveryStatus.PENDING,
        next_attempt_at=NOW - timedelta(seconds=waited),
    )


def test_all_well_is_200_with_every_check(client, swept):
    response = client.get(URL, HTTP_AUTHORIZATION=BEARER)

    assert response.status_code == HTTPStatus.OK
    assert response["Cache-Control"].startswith("max-age=0")
    assert response.json() == {
        "status": "ok",
        "checks": {
            "database": {"status": "ok"},
            "broker": {"status": "ok"},
            "beat": {"status": "ok", "last_sweep_at": NOW.isoformat(), "age_seconds": 0},
            "deliveries": {"status": "ok", "due": 0, "due_capped": False, "oldest_due_seconds": 0},
        },
    }


def test_no_login_is_needed_and_only_reads_are_allowed(client, swept):
    assert client.head(URL).status_code == HTTPStatus.OK
    assert client.post(URL).status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_a_late_beat_is_503(client, swept, clock):
    clock.shift(181)

    response = client.get(URL, HTTP_AUTHORIZATION=BEARER)

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    body = response.json()
    assert body["status"] == "failing"
    assert body["failing"] == ["beat"]
    assert body["checks"]["beat"]["error"] == "the last stale sweep ran 181 s ago (late after 180 s)"


def test_a_fresh_install_waits_for_the_first_sweep_then_is_503(client, clock):
    assert client.get(URL, HTTP_AUTHORIZATION=BEARER).status_code == HTTPStatus.OK

    clock.shift(181)
    response = client.get(URL, HTTP_AUTHORIZATION=BEARER)

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["checks"]["beat"]["error"].startswith("no stale sweep has run")


def test_an_unreadable_heartbeat_is_503(client, swept, monkeypatch):
    def cache_down():
        raise ConnectionError("cache unreachable")

    monkeypatch.setattr(health, "last_sweep_at", cache_down)

    response = client.get(URL, HTTP_AUTHORIZATION=BEARER)

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["failing"] == ["beat"]


def test_a_database_that_does_not_answer_is_503(client, swept, monkeypatch):
    class DownConnection:
        def cursor(self):
            raise OperationalError("connection refused by db.internal:5432")

    monkeypatch.setattr(apps_sql, "connection", DownConnection())

    response = client.get(URL, HTTP_AUTHORIZATION=BEARER)

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    body = response.json()
    assert body["failing"] == ["database"]
    assert body["checks"]["database"] == {"status": "failing", "error": "the database does not answer"}
    assert "db.internal" not in response.content.decode()


def test_a_broker_that_refuses_connections_is_503(client, swept, monkeypatch):
    # Port 1 on the loopback: nothing listens, the connection is refused at once.
    monkeypatch.setattr(
        celery_app, "connection_for_write", lambda: Connection("redis://127.0.0.1:1/0", connect_timeout=1)
    )

    response = client.get(URL, HTTP_AUTHORIZATION=BEARER)

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"]["error"] == "the task broker does not accept connections"
    assert "127.0.0.1" not in response.content.decode()


def test_due_deliveries_are_counted(client, swept):
    due_delivery(30)
    due_delivery(60)

    checks = client.get(URL, HTTP_AUTHORIZATION=BEARER).json()["checks"]

    assert checks["deliveries"] == {"status": "ok", "due": 2, "due_capped": False, "oldest_due_seconds": 60}


def test_a_delivery_waiting_too_long_for_a_worker_is_503(client, swept):
    due_delivery(601)

    response = client.get(URL, HTTP_AUTHORIZATION=BEARER)

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["failing"] == ["deliveries"]
    assert "waited 601 s" in response.json()["checks"]["deliveries"]["error"]


def test_a_paused_application_s_deliveries_are_not_due(client, swept):
    due_delivery(3600, paused_at=NOW - timedelta(days=1))

    response = client.get(URL, HTTP_AUTHORIZATION=BEARER)

    assert response.status_code == HTTPStatus.OK
    assert response.json()["checks"]["deliveries"]["due"] == 0


def test_every_failure_is_named_at_once(client, clock, monkeypatch):
    cache.set(stale.LAST_SWEEP_KEY, (NOW - timedelta(hours=1)).timestamp())
    due_delivery(3600)
    monkeypatch.setattr(
        celery_app, "connection_for_write", lambda: Connection("redis://127.0.0.1:1/0", connect_timeout=1)
    )

    body = client.get(URL, HTTP_AUTHORIZATION=BEARER).json()

    assert body["failing"] == ["broker", "beat", "deliveries"]


def test_nothing_secret_or_internal_is_shown(client, swept):
    text = json.dumps(client.get(URL, HTTP_AUTHORIZATION=BEARER).json())

    for secret in (settings.SECRET_KEY, settings.DATABASES["default"]["NAME"], settings.CELERY_BROKER_URL):
        assert str(secret) not in text


def test_the_check_costs_two_queries(client, swept, django_assert_num_queries):
    with django_assert_num_queries(2):
        # 1. SELECT 1 (database); 2. count and age of due deliveries, capped (deliveries)
        client.get(URL, HTTP_AUTHORIZATION=BEARER)


def test_the_public_hears_only_ok_or_not(client, swept, clock):
    assert client.get(URL).json() == {"status": "ok"}
    due_delivery(11 * 60)
    for authorization in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}):
        response = client.get(URL, **authorization)
        assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        assert response.json() == {"status": "failing"}


def test_staff_and_the_token_hear_the_figures(client, swept, staff, settings):
    assert "checks" in client.get(URL, HTTP_AUTHORIZATION=BEARER).json()
    client.force_login(staff)
    assert client.get(URL).json()["checks"]["deliveries"]["due"] == 0


def test_staff_without_the_delivery_log_permission_hear_only_ok(client, swept, user_factory):
    from django.contrib.auth.models import Permission

    clerk = user_factory(email="clerk@example.com", username="clerk", is_staff=True)
    client.force_login(clerk)
    assert client.get(URL).json() == {"status": "ok"}
    clerk.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    client.force_login(type(clerk).objects.get(pk=clerk.pk))
    assert "checks" in client.get(URL).json()


def test_without_a_configured_token_no_bearer_is_accepted(client, swept, settings):
    settings.HEALTHZ_TOKEN = ""
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer ").json() == {"status": "ok"}
