import base64
import json
from datetime import timedelta
from http import HTTPStatus

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devices.models import Device
from devices.protocol.services import retry_after_seconds
from devices.services import device_credentials_revoke, token_digest

from ..factories import DeviceFactory
from .protocol_support import PROVISION_URL, basic, checkin, csr_pem, provision, provision_token

pytestmark = pytest.mark.django_db


# Backoff


@pytest.mark.parametrize("attempt", range(8))
def test_retry_after_doubles_per_attempt_within_jitter(settings, attempt):
    settings.DEVICE_POLL_BASE_SECONDS = 5
    ideal = min(5 * 2**attempt, 300)
    waits = {retry_after_seconds(attempt=attempt, cap=300) for _ in range(200)}
    assert min(waits) >= round(ideal * 0.8)
    assert max(waits) <= round(ideal * 1.2)


def test_retry_after_is_jittered():
    assert len({retry_after_seconds(attempt=4, cap=300) for _ in range(100)}) > 1


def test_retry_after_stops_at_the_cap_even_for_huge_attempts():
    waits = [retry_after_seconds(attempt=10**9, cap=120) for _ in range(100)]
    assert max(waits) <= 144
    assert min(waits) >= 96


def test_unclaimed_poll_uses_the_products_cap(client):
    device = DeviceFactory(product__poll_cap=30)
    response = provision(client, device, {"attempt": 12})
    assert response.status_code == HTTPStatus.OK
    assert response.json()["state"] == "unclaimed"
    assert 24 <= response.json()["retry_after"] <= 36


# Authentication


def test_unclaimed_device_is_told_to_wait(client, device):
    response = provision(client, device)
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["state"] == "unclaimed"
    assert 4 <= body["retry_after"] <= 6
    assert "credentials" not in body


def test_unknown_serial_and_wrong_key_get_the_same_answer(client, device):
    unknown = client.post(PROVISION_URL, data="{}", content_type="application/json", **basic("NOPE", "x"))
    wrong = client.post(PROVISION_URL, data="{}", content_type="application/json", **basic(device.serial, "x"))
    assert unknown.status_code == wrong.status_code == HTTPStatus.UNAUTHORIZED
    assert unknown.json() == wrong.json()
    assert unknown.json()["error"]["code"] == "unauthenticated"
    assert wrong["WWW-Authenticate"] == 'Basic realm="device"'


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer abc",
        "Basic !!!notbase64",
        "Basic " + "c2VyaWFsLW9ubHk=",
        "Basic " + "OmtleQ==",
        "Basic " + base64.b64encode(b"SN\x00-1:key").decode(),
    ],
    ids=["missing", "bearer", "garbage", "no-colon", "no-serial", "nul-in-serial"],
)
def test_malformed_basic_credentials_get_401(client, header):
    response = client.post(PROVISION_URL, data="{}", content_type="application/json", HTTP_AUTHORIZATION=header)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["error"]["code"] == "unauthenticated"


def test_poll_without_a_body_counts_as_attempt_zero(client, device):
    response = client.generic("POST", PROVISION_URL, **basic(device.serial, device.raw_factory_key))
    assert response.status_code == HTTPStatus.OK
    assert response.json()["state"] == "unclaimed"


@pytest.mark.parametrize("attempt", [-1, "3", True, 1.5, None])
def test_attempt_must_be_a_whole_number(client, device, attempt):
    response = provision(client, device, {"attempt": attempt})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "attempt" in response.json()["error"]["fields"]


def test_provision_refuses_other_content_types(client, device):
    response = client.post(
        PROVISION_URL, data="attempt=1", content_type="text/plain", **basic(device.serial, device.raw_factory_key)
    )
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE


def test_provision_only_accepts_post(client, device):
    response = client.get(PROVISION_URL, **basic(device.serial, device.raw_factory_key))
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response["Allow"] == "POST"


# Credentials life cycle


def test_owned_device_receives_a_token_and_endpoints(client, owned_device):
    response = provision(client, owned_device)
    body = response.json()
    assert body["state"] == "claimed"
    token = body["credentials"]["token"]
    assert len(token) >= 40
    assert body["credentials"]["certificate"] is None
    assert body["endpoints"] == {
        "checkin": "http://testserver/device/v1/checkin",
        "commands": "http://testserver/device/v1/commands",
        "certificate": "http://testserver/device/v1/certificate",
    }
    owned_device.refresh_from_db()
    assert owned_device.token_digest == token_digest(token)
    assert owned_device.token_used_at is None


def test_each_poll_before_first_use_voids_the_previous_token(client, owned_device):
    first = provision_token(client, owned_device)
    second = provision_token(client, owned_device)
    assert first != second
    assert checkin(client, first).status_code == HTTPStatus.UNAUTHORIZED
    assert checkin(client, second).status_code == HTTPStatus.OK


def test_after_first_use_the_poll_answers_provisioned_without_secrets(client, owned_device):
    token = provision_token(client, owned_device)
    checkin(client, token)
    response = provision(client, owned_device, {"attempt": 0, "csr": csr_pem(owned_device.serial)})
    assert response.json() == {"state": "provisioned"}
    assert checkin(client, token).status_code == HTTPStatus.OK


def test_reset_voids_the_token_and_the_device_is_unclaimed_again(client, owned_device):
    token = provision_token(client, owned_device)
    checkin(client, token)
    Device.objects.filter(pk=owned_device.pk).update(owner=None)
    device_credentials_revoke(device=owned_device)
    assert checkin(client, token).status_code == HTTPStatus.UNAUTHORIZED
    assert provision(client, owned_device).json()["state"] == "unclaimed"


def test_new_owner_gets_fresh_credentials_and_the_old_token_is_refused(client, owned_device, other_owner):
    old = provision_token(client, owned_device)
    checkin(client, old)
    Device.objects.filter(pk=owned_device.pk).update(owner=other_owner)
    device_credentials_revoke(device=owned_device)
    new = provision_token(client, owned_device)
    assert checkin(client, old).status_code == HTTPStatus.UNAUTHORIZED
    assert checkin(client, new).status_code == HTTPStatus.OK


# CSR handling


def test_csr_gets_a_client_certificate_signed_by_the_product_ca(client, owned_device):
    key = ec.generate_private_key(ec.SECP256R1())
    response = provision(client, owned_device, {"attempt": 0, "csr": csr_pem(owned_device.serial, key=key)})
    credentials = response.json()["credentials"]
    cert = x509.load_pem_x509_certificate(credentials["certificate"].encode())
    ca = x509.load_pem_x509_certificate(credentials["ca_chain"].encode())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == owned_device.serial
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert validity - timedelta(days=owned_device.product.certificate_days) <= timedelta(minutes=5)
    owned_device.refresh_from_db()
    assert owned_device.certificate_pem == credentials["certificate"]
    assert owned_device.certificate_serial == format(cert.serial_number, "x")


def test_csr_subject_and_extensions_are_ignored(client, owned_device):
    csr = csr_pem(
        None,
        extra_names=[x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil Corp")],
        extensions=[
            x509.SubjectAlternativeName([x509.DNSName("bank.example")]),
            x509.BasicConstraints(ca=True, path_length=None),
        ],
    )
    response = provision(client, owned_device, {"attempt": 0, "csr": csr})
    cert = x509.load_pem_x509_certificate(response.json()["credentials"]["certificate"].encode())
    assert cert.subject.rfc4514_string() == f"CN={owned_device.serial}"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_csr_naming_another_serial_is_refused(client, owned_device):
    response = provision(client, owned_device, {"attempt": 0, "csr": csr_pem("SOMEONE-ELSE")})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["code"] == "csr_wrong_subject"
    owned_device.refresh_from_db()
    assert owned_device.token_digest is None


def _csr_with_broken_signature(serial):
    der = bytearray(x509.load_pem_x509_csr(csr_pem(serial).encode()).public_bytes(Encoding.DER))
    der[-5] ^= 0x01  # inside the ECDSA signature's s value: still parses, no longer verifies
    text = base64.b64encode(bytes(der)).decode()
    lines = "".join(text[i : i + 64] + "\n" for i in range(0, len(text), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{lines}-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize(
    "csr",
    [
        "not a pem",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "",
        42,
        ["list"],
    ],
    ids=["text", "bad-der", "empty", "number", "list"],
)
def test_garbage_csr_is_refused(client, owned_device, csr):
    response = provision(client, owned_device, {"attempt": 0, "csr": csr})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["code"] == "invalid_csr"


def test_csr_with_a_wrong_signature_is_refused(client, owned_device):
    response = provision(client, owned_device, {"attempt": 0, "csr": _csr_with_broken_signature(owned_device.serial)})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["code"] == "invalid_csr"
    owned_device.refresh_from_db()
    assert owned_device.token_digest is None


def _csr_for(key, serial):
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
        .sign(key, algorithm)
        .public_bytes(Encoding.PEM)
        .decode()
    )


ACCEPTED_KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
REFUSED_KEYS = {
    "p192": lambda: ec.generate_private_key(ec.SECP192R1()),
    "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "rsa1024": lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
    "ed448": ed448.Ed448PrivateKey.generate,
    "dsa2048": lambda: dsa.generate_private_key(key_size=2048),
}


@pytest.mark.parametrize("make_key", ACCEPTED_KEYS.values(), ids=ACCEPTED_KEYS.keys())
def test_csr_of_an_accepted_key_gets_a_certificate(client, owned_device, make_key):
    key = make_key()
    response = provision(client, owned_device, {"attempt": 0, "csr": _csr_for(key, owned_device.serial)})
    assert response.status_code == HTTPStatus.OK, response.content
    cert = x509.load_pem_x509_certificate(response.json()["credentials"]["certificate"].encode())
    assert cert.public_key() == key.public_key()


@pytest.mark.parametrize("make_key", REFUSED_KEYS.values(), ids=REFUSED_KEYS.keys())
def test_csr_of_a_weak_or_unusual_key_is_refused_with_the_accepted_list(client, owned_device, make_key):
    response = provision(client, owned_device, {"attempt": 0, "csr": _csr_for(make_key(), owned_device.serial)})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    error = response.json()["error"]
    assert error["code"] == "csr_unsupported_key"
    for name in ("P-256", "P-384", "Ed25519", "RSA of at least 2048 bits"):
        assert name in error["message"]
    owned_device.refresh_from_db()
    assert owned_device.token_digest is None
    assert not owned_device.certificate_serial


# Limits


def test_polls_are_limited_per_device(client, device, settings):
    settings.DEVICE_RATE_LIMIT_PER_DEVICE = 3
    for _ in range(3):
        assert provision(client, device).status_code == HTTPStatus.OK
    response = provision(client, device)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert 0 < response.json()["error"]["retry_after"] <= 60
    assert response["Retry-After"] == str(response.json()["error"]["retry_after"])


def test_polls_are_limited_per_ip(client, settings):
    settings.DEVICE_RATE_LIMIT_PER_IP = 2
    devices = DeviceFactory.create_batch(3)
    assert [provision(client, d).status_code for d in devices] == [200, 200, 429]


def test_provision_body_over_the_limit_is_refused(client, device):
    body = json.dumps({"attempt": 0, "csr": "x" * 70_000})
    response = client.post(
        PROVISION_URL, data=body, content_type="application/json", **basic(device.serial, device.raw_factory_key)
    )
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def test_a_null_csr_is_as_no_csr(client, owned_device):
    response = provision(client, owned_device, {"attempt": 0, "csr": None})
    assert response.status_code == HTTPStatus.OK
    credentials = response.json()["credentials"]
    assert credentials["token"] and credentials["certificate"] is None
