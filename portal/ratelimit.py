"""Fixed-window counters on the shared cache (Redis in production) for every guessable input."""

import time

from django.core.cache import cache

from .errors import Throttled


def _key(scope: str, ident: str, window: int) -> tuple[str, int]:
    bucket = int(time.time() // window)
    reset_in = window - int(time.time() % window)
    return f"rl:{scope}:{ident}:{bucket}", reset_in


def hit(scope: str, ident: str, *, limit: int, window: int) -> None:
    """Counts one event; raises Throttled once more than `limit` happen in the window."""
    key, reset_in = _key(scope, ident, window)
    if cache.add(key, 1, timeout=window + 1):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window + 1)
            count = 1
    if count > limit:
        raise Throttled(retry_after=reset_in)


def check(scope: str, ident: str, *, limit: int, window: int) -> None:
    """Raises Throttled when the window already holds `limit` events, without counting one."""
    key, reset_in = _key(scope, ident, window)
    if (cache.get(key) or 0) >= limit:
        raise Throttled(retry_after=reset_in)


def reset(scope: str, ident: str, *, window: int) -> None:
    key, _ = _key(scope, ident, window)
    cache.delete(key)
