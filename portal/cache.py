"""The Redis cache, degrading instead of failing while Redis is unreachable.

The cache holds only what can be lost: rate-limit counters, the last sweep's time, the relay's
debounce key. A Redis outage must not turn check-ins, claims or log-ins into 500s, so every
operation answers as an empty cache would (reads miss, writes are dropped, counters start over),
and the outage is logged, at most every few seconds per process. Rate limits therefore fail open
for the length of the outage; /healthz reports the broker (the same Redis) as down meanwhile.
"""

import logging
import time

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError)
_LOG_EVERY_SECONDS = 10
_last_logged = 0.0


def log_unavailable(operation, exc):
    global _last_logged
    now = time.monotonic()
    if now - _last_logged >= _LOG_EVERY_SECONDS:
        _last_logged = now
        logger.warning("cache.unavailable", extra={"operation": operation, "error": type(exc).__name__})


def _degrading(operation, fallback):
    def method(self, *args, **kwargs):
        try:
            return getattr(super(ResilientRedisCache, self), operation)(*args, **kwargs)
        except UNAVAILABLE as exc:
            log_unavailable(operation, exc)
            return fallback(*args, **kwargs) if callable(fallback) else fallback

    method.__name__ = operation
    return method


class KeptClientRedisCacheClient(RedisCacheClient):
    """One redis.Redis per connection pool, kept, instead of a new one per cache operation: building
    one fills a table of some 170 reply callbacks, which cost more CPU than the round trip itself.
    A redis.Redis over a pool is safe to share between threads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = KeptClientRedisCacheClient

    get = _degrading("get", lambda key, default=None, version=None: default)
    get_many = _degrading("get_many", {})
    has_key = _degrading("has_key", False)
    # add() answers True as if the key were new: a counter starts over, a lock is taken.
    add = _degrading("add", True)
    set = _degrading("set", None)
    set_many = _degrading("set_many", [])
    touch = _degrading("touch", False)
    delete = _degrading("delete", False)
    delete_many = _degrading("delete_many", None)
    incr = _degrading("incr", 1)
    clear = _degrading("clear", None)
