"""The limits on guessing a claim code or a serial's PIN (the arithmetic is in docs/operations.md).

Every guess is counted before it is judged, so guesses sent in parallel cannot all slip under a
limit, and taken back (`ratelimit.forgive`) once it proves right: only wrong guesses count.
"""

import logging
import time

from django.core.cache import cache

from portal import ratelimit
from portal.errors import Throttled
from portal.secrets import keyed_digest

logger = logging.getLogger(__name__)

DAY = 24 * 60 * 60

# Failed guesses of any kind (wrong code, unknown serial, wrong PIN) per user and per IP.
FAILURES_PER_USER = (10, 15 * 60)
FAILURES_PER_IP = (30, 15 * 60)

# Wrong PINs for one serial, counted three ways. Whoever reads the serial on a box in a shop may
# guess, so one account or one address gets only a few guesses a day and cannot stop the buyer
# (another account, another address) from claiming. The global bound caps a guess spread over many
# accounts and addresses; reaching it pauses the serial's PIN claims for everyone for a day. All
# are counted by serial, not by device, so an unknown serial answers the same way and nothing leaks.
PIN_FAILURES_PER_SERIAL_AND_USER = (5, DAY)
PIN_FAILURES_PER_SERIAL_AND_IP = (10, DAY)
PIN_FAILURES_PER_SERIAL = (50, DAY)
PIN_LOCK_SECONDS = DAY
# Answered while more PIN attempts on one serial are being judged at once than the bound allows.
PIN_BUSY_RETRY_SECONDS = 5


def guess_count(*, user, ip) -> list[str]:
    """Counts a claim attempt against the user's and the IP's limits before it is judged (Throttled
    past them); returns the counters' keys for ratelimit.forgive."""
    counters = []
    if user is not None:
        counters.append(("claim-fail-user", str(user.pk), *FAILURES_PER_USER))
    if ip:
        counters.append(("claim-fail-ip", ip, *FAILURES_PER_IP))
    return ratelimit.attempts(counters)


def _serial_key(serial):
    # Counted as the serial is read (case and spaces ignored, as the claim's lookup does), so
    # changing the case buys no more guesses. Serials may hold characters a cache key must not;
    # a digest also keeps them out of Redis.
    return keyed_digest(serial.strip().upper(), purpose="claim-serial")[:32]


def _pin_lock_key(serial):
    return f"claim:pin-lock:{_serial_key(serial)}"


def _pin_epoch_key(serial):
    return f"claim:pin-epoch:{_serial_key(serial)}"


def pin_lock_check(serial):
    # The value is the lock's end, so the check follows the clock even where the cache's own expiry
    # (Redis TTLs) would not.
    locked_until = cache.get(_pin_lock_key(serial))
    if locked_until and locked_until > time.time():
        raise Throttled(
            "Too many wrong PINs were tried for this serial number. PIN claiming for it is paused for a day;"
            " its owner can lift the pause by setting a new PIN.",
            retry_after=int(locked_until - time.time()) + 1,
        )


def pin_guess_count(serial, *, user, ip) -> list[str]:
    """Counts a PIN attempt on `serial` before it is judged, per (serial, user), per (serial, IP)
    and for the serial as a whole; returns the keys for ratelimit.forgive and pin_wrong (the
    serial's own counter last). Throttled past a limit, with nothing left counted."""
    # The epoch is the time of the serial's last new PIN: guesses at an earlier PIN stop counting.
    epoch = cache.get(_pin_epoch_key(serial)) or 0
    ident = f"{_serial_key(serial)}:{epoch}"
    counters = [("claim-pin-serial-user", f"{ident}:{user.pk}", *PIN_FAILURES_PER_SERIAL_AND_USER)]
    if ip:
        counters.append(("claim-pin-serial-ip", f"{ident}:{ip}", *PIN_FAILURES_PER_SERIAL_AND_IP))
    try:
        keys = ratelimit.attempts(counters)
    except Throttled as exc:
        raise Throttled(
            "Too many wrong PINs were tried for this serial number from your account or network."
            " Check the PIN with whoever gave it to you, and try again tomorrow.",
            retry_after=exc.retry_after,
        ) from None
    limit, window = PIN_FAILURES_PER_SERIAL
    try:
        keys.append(ratelimit.attempt("claim-pin-serial", ident, limit=limit, window=window))
    except Throttled:
        ratelimit.forgive(*keys)
        # Over the bound only while attempts are still being judged: a wrong one among them locks
        # the serial (pin_wrong), and right ones will be taken back, so this one may try again soon.
        raise Throttled(
            "Too many PINs are being tried for this serial number right now. Try again in a few seconds.",
            retry_after=PIN_BUSY_RETRY_SECONDS,
        ) from None
    return keys


def pin_wrong(serial, keys):
    """A wrong PIN: the one that brings the serial's own count to its bound locks the serial. Only
    wrong PINs lock: people entering the right one at once are not turned into a lock."""
    if (cache.get(keys[-1]) or 0) >= PIN_FAILURES_PER_SERIAL[0]:
        cache.set(_pin_lock_key(serial), time.time() + PIN_LOCK_SECONDS, timeout=PIN_LOCK_SECONDS)
        logger.warning("claim.pin_locked", extra={"serial_key": _serial_key(serial)[:8]})


def pin_lock_clear(*, serial: str) -> None:
    """Lifts a PIN lock and starts every count afresh: the owner has just chosen a new PIN, so
    earlier guesses are moot."""
    cache.delete(_pin_lock_key(serial))
    # Kept for good: were it to expire, the counts would fall back to the earlier epoch's in the
    # middle of a day's window, and a guesser would get that day's guesses twice.
    cache.set(_pin_epoch_key(serial), time.time_ns(), timeout=None)
