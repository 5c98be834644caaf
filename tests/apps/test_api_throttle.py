"""The integrator API's throttle: with Redis one sorted-set log per application, counted by one script
call; with any other cache DRF's own list. Both follow the same rule and say the same Retry-After."""

import logging
from http import HTTPStatus

import pytest
from django.core.cache.backends.locmem import LocMemCache
from rest_framework.throttling import SimpleRateThrottle

from apps.api.throttling import ApplicationRateThrottle

from ..hardening.test_redis_outage import redis_down  # noqa: F401 - the fixture: Redis stopped
from .api_support import auth

pytest_plugins = ["tests.apps.api_fixtures"]

DEVICES_URL = "/api/v1/devices"

# Seconds after the first request, with a rate of 3 a minute: three pass, then the window slides.
# 60.0 drops the request at 0 (DRF drops those at or before now - 60); 60.5 finds 1, 2 and 60.
TIMES = [0.0, 1.0, 2.0, 3.0, 59.9, 60.0, 60.5, 61.0, 61.0, 200.0]
START = 1_800_000_000.25


class _Request:
    def __init__(self, application):
        self.auth = application


class _DrfListThrottle(SimpleRateThrottle):
    """DRF's own throttle on a local cache: the reference for what the Redis log must answer."""

    cache = LocMemCache("drf-reference", {})
    get_rate = ApplicationRateThrottle.get_rate
    get_cache_key = ApplicationRateThrottle.get_cache_key


@pytest.fixture(autouse=True)
def _fresh_reference():
    _DrfListThrottle.cache.clear()


def _answers(throttle_class, application):
    answers = []
    for offset in TIMES:
        throttle = throttle_class()
        throttle.timer = lambda offset=offset: START + offset
        allowed = throttle.allow_request(_Request(application), view=None)
        answers.append((offset, allowed, None if allowed else round(throttle.wait(), 6)))
    return answers


def test_the_redis_log_answers_as_drfs_list(redis_url, application, settings):
    settings.API_THROTTLE_RATE = "3/minute"
    redis_answers = _answers(ApplicationRateThrottle, application)
    assert redis_answers == _answers(_DrfListThrottle, application)
    assert [allowed for _, allowed, _ in redis_answers] == [
        True, True, True, False, False, True, False, True, False, True,
    ]  # fmt: skip
    assert redis_answers[3] == (3.0, False, 57.0)  # the first request leaves the window in 57 s


def test_the_redis_log_keeps_no_more_than_the_window(redis_url, application, settings):
    import redis

    settings.API_THROTTLE_RATE = "3/minute"
    _answers(ApplicationRateThrottle, application)
    log = f"log:throttle_application_{application.app_id}"
    client = redis.Redis.from_url(redis_url)
    assert client.zcard(log) == 1  # only the request at 200 s is within a minute of the last
    assert 0 < client.ttl(log) <= 60


@pytest.mark.parametrize("throttle_class", [ApplicationRateThrottle, _DrfListThrottle])
def test_past_a_lowered_rate_the_wait_is_unknown(redis_url, application, settings, throttle_class):
    # DRF answers None (and the API a Retry-After of 1) when the log holds more than the new rate.
    settings.API_THROTTLE_RATE = "3/minute"
    _answers(throttle_class, application)  # the log ends with the request at 200 s
    settings.API_THROTTLE_RATE = "1/minute"
    throttle = throttle_class()
    throttle.timer = lambda: START + 200.5
    assert throttle.allow_request(_Request(application), view=None) is False
    assert throttle.wait() == pytest.approx(59.5)
    settings.API_THROTTLE_RATE = "3/minute"
    for _ in range(2):
        throttle = throttle_class()
        throttle.timer = lambda: START + 201
        assert throttle.allow_request(_Request(application), view=None) is True
    settings.API_THROTTLE_RATE = "1/minute"
    throttle = throttle_class()
    throttle.timer = lambda: START + 202
    assert throttle.allow_request(_Request(application), view=None) is False
    assert throttle.wait() is None


@pytest.mark.usefixtures("redis_down")
def test_while_redis_is_down_requests_pass_and_the_outage_is_logged(
    client, application, linked_device, settings, caplog, monkeypatch
):
    settings.API_THROTTLE_RATE = "1/minute"
    monkeypatch.setattr("portal.cache._last_logged", 0.0)  # the warning is throttled per process
    caplog.set_level(logging.WARNING)
    for _ in range(2):  # the throttle fails open, as the cache does
        assert client.get(DEVICES_URL, **auth(application)).status_code == HTTPStatus.OK
    assert "cache.unavailable" in caplog.text
