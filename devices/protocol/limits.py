"""Rate limits of the device endpoints: per client address and per device, every request.

Same fixed windows as portal.ratelimit.hit. With Redis as the cache, both counters of a request
are counted by one script call (one round trip, one reply) instead of portal.ratelimit's three
commands and two client objects per counter: on the check-in path the limits otherwise cost
more than the database work. Any other cache falls back to portal.ratelimit.hit.
"""

import time
from functools import cache

from django.conf import settings

from portal import ratelimit
from portal.cache import UNAVAILABLE, log_unavailable
from portal.errors import Throttled

WINDOW = 60
REDIS_BACKENDS = ("portal.cache.ResilientRedisCache", "django.core.cache.backends.redis.RedisCache")


# Counts every key of a request in one command: INCR each key, setting its expiry when it is new;
# returns the counts in key order.
_COUNT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
    local count = redis.call('INCR', key)
    if count == 1 then redis.call('EXPIRE', key, ARGV[1]) end
    counts[i] = count
end
return counts
"""


@cache
def _count_script(url):
    import redis

    # One connection kept per process (locked for threaded servers): no pool checkout per call.
    client = redis.Redis.from_url(url, single_connection_client=True, socket_connect_timeout=1, socket_timeout=1)
    return client.register_script(_COUNT_SCRIPT)


def _uses_redis() -> bool:
    backend = settings.CACHES["default"]["BACKEND"]
    return backend in REDIS_BACKENDS and bool(settings.REDIS_URL)


def _counted(counters, window) -> tuple[list[bool], int] | None:
    """Counts one event against each (scope, ident, limit) on Redis in one call: whether each is
    within its limit, and the seconds left in the window; None while Redis is down."""
    now = time.time()
    bucket, reset_in = int(now // window), window - int(now % window)
    keys = [f"rl:{scope}:{ident}:{bucket}" for scope, ident, _limit in counters]
    try:
        counts = _count_script(settings.REDIS_URL)(keys=keys, args=[window + 1])
    except UNAVAILABLE as exc:
        # Limits fail open while Redis is down, as the cache does (portal/cache.py).
        log_unavailable("device_limits", exc)
        return None
    return [count <= limit for count, (_scope, _ident, limit) in zip(counts, counters, strict=True)], reset_in


def hit(*counters: tuple[str, str, int], window: int = WINDOW) -> None:
    """Counts one request against each (scope, ident, limit); Throttled when any is exceeded."""
    if not _uses_redis():
        for scope, ident, limit in counters:
            ratelimit.hit(scope, ident, limit=limit, window=window)
        return
    counted = _counted(counters, window)
    if counted is not None and not all(counted[0]):
        raise Throttled(retry_after=counted[1])


def within(counters: list[tuple[str, str, int]], *, window: int = WINDOW) -> list[bool]:
    """One event each against many (scope, ident, limit) counters (a batch of MQTT messages, one
    Redis call): whether each is within its limit."""
    if not _uses_redis():
        allowed = []
        for scope, ident, limit in counters:
            try:
                ratelimit.hit(scope, ident, limit=limit, window=window)
            except Throttled:
                allowed.append(False)
            else:
                allowed.append(True)
        return allowed
    counted = _counted(counters, window) if counters else ([], 0)
    return [True] * len(counters) if counted is None else counted[0]
