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


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("GET /claim/?code=7K3QM9XW2P HTTP/1.1", "/claim/?code=[redacted]"),
        ("GET /claim/?Code=7K3QM9XW2P HTTP/1.1", "/claim/?Code=[redacted]"),
        ("GET /claim/?a=1;code=7K3QM9XW2P HTTP/1.1", ";code=[redacted]"),
        ("code=7K3QM9XW2P&x=1", "code=[redacted]&x=1"),  # gunicorn's %(q)s: the query without its "?"
        ("GET /accounts/login/?next=/claim/%3FCODE%3D7K3QM9XW2P HTTP/1.1", "%3FCODE%3D[redacted]"),
    ],
)
def test_claim_codes_in_a_query_are_redacted_however_they_are_written(line, kept):
    from portal.logging import redact

    assert "7K3QM9XW2P" not in redact(line)
    assert kept in redact(line)
