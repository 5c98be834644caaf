"""A window of an hour or a day holds for all of it on every cache the portal runs on, the embedded
default's file cache included (Django's other caches write an incremented value with the default
five-minute timeout)."""

import datetime as dt

import pytest
import time_machine
from django.core.cache import caches

from portal import ratelimit
from portal.errors import Throttled

WINDOW = 24 * 3600


@pytest.fixture(params=["file", "locmem"])
def any_cache(request, settings, tmp_path):
    backends = {
        "file": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)},
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "windows"},
    }
    settings.CACHES = {"default": backends[request.param]}
    caches["default"].clear()
    yield
    caches["default"].clear()


def test_a_days_count_survives_quiet_minutes(any_cache):
    with time_machine.travel(dt.datetime(2026, 3, 2, 0, 5, tzinfo=dt.UTC), tick=False) as clock:
        for _ in range(3):
            ratelimit.hit("windows", "someone", limit=3, window=WINDOW)
        clock.shift(dt.timedelta(minutes=30))
        with pytest.raises(Throttled):
            ratelimit.hit("windows", "someone", limit=3, window=WINDOW)


def test_a_forgiven_guess_keeps_the_rest_of_the_days_count(any_cache):
    with time_machine.travel(dt.datetime(2026, 3, 2, 0, 5, tzinfo=dt.UTC), tick=False) as clock:
        keys = [ratelimit.attempt("windows", "guesser", limit=3, window=WINDOW) for _ in range(3)]
        ratelimit.forgive(keys[-1])
        clock.shift(dt.timedelta(minutes=30))
        ratelimit.attempt("windows", "guesser", limit=3, window=WINDOW)  # the third again
        with pytest.raises(Throttled):
            ratelimit.attempt("windows", "guesser", limit=3, window=WINDOW)
