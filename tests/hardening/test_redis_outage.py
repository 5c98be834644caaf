"""Redis stopped (the cache and the broker) while devices check in and owners claim and log in:
every request still succeeds. The events wait in the outbox (tests/devices/test_outbox.py and
tests/apps/test_worker.py prove they are delivered once the broker is back)."""

import base64
import logging
from http import HTTPStatus

import pytest
from django.core.cache import cache
from django.urls import reverse

from devices.models import DeviceEvent, Reading
from devices.services import token_digest

from ..factories import ClaimCodeFactory, DeviceFactory

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def redis_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.cache.ResilientRedisCache",
            "LOCATION": DEAD_REDIS,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    settings.REDIS_URL = DEAD_REDIS
    settings.CELERY_BROKER_URL = DEAD_REDIS


def test_the_cache_answers_as_an_empty_one(redis_down, caplog, monkeypatch):
    monkeypatch.setattr("portal.cache._last_logged", 0.0)  # the warning is throttled per process
    caplog.set_level(logging.WARNING)
    assert cache.get("anything", "fallback") == "fallback"
    assert cache.add("counter", 1) is True
    cache.set("k", "v")
    assert "cache.unavailable" in caplog.text


def test_check_ins_succeed_and_are_stored(client, owner, redis_down):
    device = DeviceFactory(owner=owner, token_digest=token_digest("outage-token"))
    for n in range(3):
        response = client.post("/device/v1/checkin", {"values": {"n": n}}, content_type="application/json",
                               HTTP_AUTHORIZATION="Bearer outage-token")
        assert response.status_code == HTTPStatus.OK
    assert Reading.objects.filter(device=device).count() == 3
    assert DeviceEvent.objects.filter(device=device, type="device.data").count() == 3


def test_provisioning_polls_succeed(client, redis_down, db):
    device = DeviceFactory()
    basic = base64.b64encode(f"{device.serial}:{device.raw_factory_key}".encode()).decode()
    response = client.post("/device/v1/provision", {"attempt": 0}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == HTTPStatus.OK
    assert response.json()["state"] == "unclaimed"


def test_owners_log_in_and_claim(client, owner, redis_down, settings):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}  # allauth's limits on, as in production
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code)
    response = client.post(reverse("account_login"), {"login": owner.email, "password": "correct horse battery staple"})
    assert response.status_code == HTTPStatus.FOUND
    response = client.post(reverse("claiming:claim"), {"method": "code", "code": code.raw_code})
    assert response.status_code == HTTPStatus.FOUND
    device.refresh_from_db()
    assert device.owner == owner
