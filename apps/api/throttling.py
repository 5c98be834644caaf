"""Requests per application on the integrator API, counted where every web process sees one budget.

DRF's throttle keeps each application's recent request times as a pickled list in the cache: every
request reads the whole list and writes it back, two round trips whose cost grows with the rate
(an application allowed 10,000 a minute drags 10,000 floats through each request), and two web
processes that read the same list at once each write back their own, one request lost. With Redis
as the cache the same log is a sorted set, trimmed, counted and appended by one script call: one
round trip, atomic, and the same rule as DRF's (at most `rate` requests in any window of its length,
Retry-After as DRF computes it). Other caches (the embedded default's files) keep DRF's list.
"""

import secrets
from functools import cache

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import SimpleRateThrottle

from portal.cache import UNAVAILABLE, log_unavailable

# KEYS[1]: the application's log; ARGV: now, now - window (both from Python, at full precision:
# Redis would format a Lua number with 14 digits), window (s), rate, a member unique to this request.
# Drops the entries of requests at or before the window's start (as DRF pops them), then adds this
# request only if fewer than `rate` remain. Returns [allowed, entries before this request, the oldest one's
# time] (the time as a string: Redis would truncate a Lua number to an integer).
_LOG_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < tonumber(ARGV[4]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5])
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
return {allowed, count, oldest or false}
"""


@cache
def _log_script(url):
    import redis

    # One connection kept per process (locked for threaded servers): no pool checkout per request.
    client = redis.Redis.from_url(url, single_connection_client=True, socket_connect_timeout=1, socket_timeout=1)
    return client.register_script(_LOG_SCRIPT)


class ApplicationRateThrottle(SimpleRateThrottle):
    """Requests per application, `API_THROTTLE_RATE` ("<n>/second|minute|hour|day").

    The rate is read on each request (not frozen at import as DRF's THROTTLE_RATES is), so it
    follows `API_THROTTLE_RATE` from the environment and the tests' `settings` fixture.
    """

    scope = "application"
    _log = None  # (entries before this request, the oldest one's time) when counted on Redis

    def get_rate(self):
        return settings.API_THROTTLE_RATE

    def get_cache_key(self, request, view):
        application = getattr(request, "auth", None)
        if application is None:
            return None  # unauthenticated requests never reach a view; nothing to count
        return self.cache_format % {"scope": self.scope, "ident": application.app_id}

    def allow_request(self, request, view):
        if not isinstance(caches["default"], RedisCache) or not settings.REDIS_URL:
            return super().allow_request(request, view)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        try:
            # A key of its own (not DRF's pickled list under the cache's prefix), so a process of
            # an earlier release that still reads the list never meets a sorted set.
            allowed, count, oldest = _log_script(settings.REDIS_URL)(
                keys=[f"log:{self.key}"],
                args=[repr(self.now), repr(self.now - self.duration), self.duration, self.num_requests,
                      secrets.token_hex(8)],
            )
        except UNAVAILABLE as exc:
            # Fails open while Redis is down, as the cache does (portal/cache.py).
            log_unavailable("api_throttle", exc)
            return True
        self._log = (count, float(oldest) if oldest else None)
        return bool(allowed)

    def wait(self):
        if self._log is None:
            return super().wait()
        # DRF's wait(), from the log's length and its oldest entry instead of the whole list.
        count, oldest = self._log
        remaining = self.duration - (self.now - oldest) if oldest is not None else self.duration
        available = self.num_requests - count + 1
        return remaining / available if available > 0 else None
