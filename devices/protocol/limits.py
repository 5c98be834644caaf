"""Rate limits of the device endpoints: per client address and per device, every request.

Same fixed windows as portal.ratelimit.hit. With Redis as the cache, both counters of a request
are counted in one pipelined round trip (SET NX EX + INCR each) instead of portal.ratelimit's
three commands and two client objects per counter: on the check-in path the limits otherwise
cost more than the database work. Any other cache falls back to portal.ratelimit.hit.
"""

import time
from functools import cache

from django.conf import settings

from portal import ratelimit
from portal.errors import Throttled

WINDOW = 60


@cache
def _redis_client(url):
    import redis

    return redis.Redis.from_url(url)


def _uses_redis() -> bool:
    backend = settings.CACHES["default"]["BACKEND"]
    return backend == "django.core.cache.backends.redis.RedisCache" and bool(settings.REDIS_URL)


def hit(*counters: tuple[str, str, int], window: int = WINDOW) -> None:
    """Counts one request against each (scope, ident, limit); Throttled when any is exceeded."""
    if not _uses_redis():
        for scope, ident, limit in counters:
            ratelimit.hit(scope, ident, limit=limit, window=window)
        return
    now = time.time()
    bucket, reset_in = int(now // window), window - int(now % window)
    pipe = _redis_client(settings.REDIS_URL).pipeline(transaction=False)
    for scope, ident, _limit in counters:
        key = f"rl:{scope}:{ident}:{bucket}"
        pipe.set(key, 0, ex=window + 1, nx=True)
        pipe.incr(key)
    results = pipe.execute()
    counts = results[1::2]
    if any(count > limit for count, (_scope, _ident, limit) in zip(counts, counters, strict=True)):
        raise Throttled(retry_after=reset_in)
