"""Keyed digests, constant-time comparison, encryption at rest and random secrets.

Factory keys, PINs, claim-code lookups and device tokens are stored only as HMAC-SHA256 digests
keyed with SECRET_PEPPER; values that must be recovered (an application's Secret, a CA key,
a claim code for reprinting labels) are encrypted with MultiFernet so keys can rotate.
"""

import hashlib
import hmac
import secrets
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def keyed_digest(value: str, *, purpose: str) -> str:
    """Hex HMAC-SHA256 of value; purpose separates the digests of different kinds of secret."""
    key = f"{settings.SECRET_PEPPER}:{purpose}".encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def digests_match(value: str, digest: str, *, purpose: str) -> bool:
    if not digest:
        return False
    return hmac.compare_digest(keyed_digest(value, purpose=purpose), digest)


def random_token(nbytes=32) -> str:
    return secrets.token_urlsafe(nbytes)


def random_crockford(length: int) -> str:
    return "".join(secrets.choice(CROCKFORD) for _ in range(length))


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(value: str) -> str:
    return _fernet(tuple(settings.FERNET_KEYS)).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(tuple(settings.FERNET_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("stored secret cannot be decrypted with the configured FERNET_KEYS") from None


def reencrypt(token: str) -> str:
    """Re-encrypts with the first (newest) key, for key rotation."""
    return _fernet(tuple(settings.FERNET_KEYS)).rotate(token.encode()).decode()
