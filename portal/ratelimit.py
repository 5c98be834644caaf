"""Fixed-window counters on the shared cache (Redis in production) for every guessable input."""

import contextlib
import time

from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

from .errors import Throttled


def _key(scope: str, ident: str, window: int) -> tuple[str, int]:
    bucket = int(time.time() // window)
    reset_in = window - int(time.time() % window)
    # The window ends the key, so forgive can renew the expiry of a key it only has the name of.
    return f"rl:{scope}:{ident}:{bucket}:{window}", reset_in


def _keeps_expiry() -> bool:
    # Redis's INCR and the local-memory cache keep a key's expiry. Django's other caches (the file
    # cache of the embedded default) write the new value with the default timeout, five minutes,
    # which would end an hour- or day-long window after five quiet minutes.
    return isinstance(caches["default"], RedisCache | LocMemCache)


def _add(key: str, delta: int, window: int) -> int:
    value = cache.incr(key, delta)
    if not _keeps_expiry():
        cache.touch(key, timeout=window + 1)
    return value


def _count(key: str, window: int) -> int:
    if cache.add(key, 1, timeout=window + 1):
        return 1
    try:
        return _add(key, 1, window)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window + 1)
        return 1


def hit(scope: str, ident: str, *, limit: int, window: int) -> None:
    """Counts one event; raises Throttled once more than `limit` happen in the window."""
    key, reset_in = _key(scope, ident, window)
    if _count(key, window) > limit:
        raise Throttled(retry_after=reset_in)


def attempt(scope: str, ident: str, *, limit: int, window: int) -> str:
    """Counts a guess before it is judged, so that guesses sent in parallel cannot all pass the
    limit before any of them is counted; raises Throttled past `limit`. Returns the counter's key
    for `forgive`, which takes back a guess that turned out right."""
    key, reset_in = _key(scope, ident, window)
    if _count(key, window) > limit:
        forgive(key)  # turned away before it was judged: only judged guesses count
        raise Throttled(retry_after=reset_in)
    return key


def attempts(counters) -> list[str]:
    """`attempt` on several (scope, ident, limit, window) counters at once: when one is past its
    limit, the ones already counted are taken back too, since the guess is turned away unjudged."""
    keys = []
    try:
        for scope, ident, limit, window in counters:
            keys.append(attempt(scope, ident, limit=limit, window=window))
    except Throttled:
        forgive(*keys)
        raise
    return keys


def sender_and_recipient_attempt(
    *, scope: str, sender_id, recipient_digest: str, per_sender, per_recipient, refusal: str
) -> list[str]:
    """Counts one email a person sends to an address they chose (a transfer offer, an invitation)
    against the sender's limits (`per_sender`: (limit, window) pairs, scope `<scope>-user`) and the
    address's (`per_recipient`, scope `<scope>-to`, keyed by a digest: no addresses in cache keys).
    Past any of them: Throttled with `refusal` (its `{minutes}` filled in), nothing counted."""
    counters = [(f"{scope}-user", str(sender_id), limit, window) for limit, window in per_sender]
    counters.append((f"{scope}-to", recipient_digest, *per_recipient))
    try:
        return attempts(counters)
    except Throttled as exc:
        minutes = max(1, round(exc.retry_after / 60))
        raise Throttled(refusal.format(minutes=minutes), retry_after=exc.retry_after) from None


def forgive(*keys: str) -> None:
    """Takes back one guess on each counter `attempt` returned: only wrong guesses count."""
    for key in keys:
        with contextlib.suppress(ValueError):  # the window ended meanwhile: nothing left to take back
            _add(key, -1, int(key.rsplit(":", 1)[1]))


def check(scope: str, ident: str, *, limit: int, window: int) -> None:
    """Raises Throttled when the window already holds `limit` events, without counting one."""
    key, reset_in = _key(scope, ident, window)
    if (cache.get(key) or 0) >= limit:
        raise Throttled(retry_after=reset_in)


def reset(scope: str, ident: str, *, window: int) -> None:
    key, _ = _key(scope, ident, window)
    cache.delete(key)
