"""Shared fixtures: personas (owner, other_owner, staff) and the rule for outside services.

Tests that need PostgreSQL, Redis, Mosquitto or a Celery worker skip on a bare laptop but FAIL under CI
(CI=true), where .ci/run guarantees the services are there. They are marked `services` (those
using a fixture below that asks for one are marked here), so CI's second run, on SQLite with
`-m "not services"`, deselects them instead of failing them.
"""

import os
import threading

import pytest
from django.core.cache import cache
from django.db import connection

from .factories import DeviceFactory, UserFactory

IN_CI = os.getenv("CI", "").lower() in ("1", "true", "yes")
# Fixtures that need an outside service: a test using one, even through another fixture, is a
# `services` test.
SERVICE_FIXTURES = {"requires_postgres", "redis_url", "mosquitto"}


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by -m
def pytest_collection_modifyitems(items):
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def service_missing(reason):
    if IN_CI:
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _clean_cache():
    # Rate-limit counters live in the cache; with Redis they would leak from test to test.
    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _process_state(monkeypatch):
    """Process-wide state starts fresh in each test and is put back after it: the outbox relay's
    debounce (it would skip publishing right after another test's event), the outbox consumers (a test
    that registers one takes it away with it), the check-in's kept cursor (it belongs to a connection a
    test may close) and the webhook HTTP session (its pools and adapters)."""
    from apps.services import sending
    from devices import outbox, sql

    monkeypatch.setattr(outbox, "_last_relay_scheduled", float("-inf"))
    monkeypatch.setattr(outbox, "_consumers", dict(outbox._consumers))
    monkeypatch.setattr(sql, "_kept", threading.local())
    monkeypatch.setattr(sending, "_http_session", None)


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.ACCOUNT_RATE_LIMITS = False  # allauth's own limits; the portal's are tested directly
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Password hashing is deliberately slow; tests do not test it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def requires_postgres(db):
    if connection.vendor != "postgresql":
        service_missing("needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def redis_url():
    url = os.getenv("REDIS_URL")
    if not url:
        service_missing("needs Redis: set REDIS_URL=redis://...")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError:
        service_missing(f"Redis at {url} does not answer")
    return url


@pytest.fixture
def user_factory(db):
    return UserFactory


@pytest.fixture
def owner(db):
    return UserFactory(email="alice@example.com", username="alice")


@pytest.fixture
def other_owner(db):
    return UserFactory(email="charlie@example.com", username="charlie")


@pytest.fixture
def staff(db):
    return UserFactory(email="oem@example.com", username="oem", is_staff=True, is_superuser=True)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def device(db):
    return DeviceFactory()


@pytest.fixture
def owned_device(owner):
    return DeviceFactory(owner=owner)
