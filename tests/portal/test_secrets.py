import pytest
from cryptography.fernet import Fernet

from portal import secrets


def test_digest_depends_on_purpose():
    assert secrets.keyed_digest("abc", purpose="pin") != secrets.keyed_digest("abc", purpose="factory-key")


def test_digest_depends_on_pepper(settings):
    before = secrets.keyed_digest("abc", purpose="pin")
    settings.SECRET_PEPPER = "another pepper"
    assert secrets.keyed_digest("abc", purpose="pin") != before


def test_digests_match_only_the_right_value():
    digest = secrets.keyed_digest("right", purpose="pin")
    assert secrets.digests_match("right", digest, purpose="pin")
    assert not secrets.digests_match("wrong", digest, purpose="pin")
    assert not secrets.digests_match("right", "", purpose="pin")


def test_encryption_survives_key_rotation(settings):
    old = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [old]
    token = secrets.encrypt("app secret")
    new = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new, old]
    assert secrets.decrypt(token) == "app secret"
    rotated = secrets.reencrypt(token)
    settings.FERNET_KEYS = [new]
    assert secrets.decrypt(rotated) == "app secret"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        secrets.decrypt(token)


def test_request_lines_of_the_development_server_are_redacted():
    import logging

    from portal.logging import RedactSecretsFilter

    handler = logging.getLogger("django.server").handlers[0]
    assert any(isinstance(f, RedactSecretsFilter) for f in handler.filters)
    record = logging.makeLogRecord(
        {"name": "django.server", "msg": '"%s" %s %s', "args": ("GET /transfer/tok3n-v4lue/ HTTP/1.1", "302", "0")}
    )
    handler.filter(record)
    assert "tok3n-v4lue" not in record.getMessage()
    assert "/transfer/[redacted]/" in record.getMessage()
