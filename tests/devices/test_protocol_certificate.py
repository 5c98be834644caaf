"""Certificate renewal: POST /device/v1/certificate with the bearer token and a fresh CSR."""

import json
from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from django.urls import reverse

from claiming.services import device_release
from claiming.transfers import transfer_accept, transfer_offer
from devices.models import Device, RevokedCertificate
from devices.services import device_credentials_revoke

from ..factories import DeviceFactory
from .protocol_support import CHECKIN_URL, bearer, checkin, csr_pem, provision

pytestmark = pytest.mark.django_db

CERTIFICATE_URL = reverse("device-protocol:certificate")


def renew(client, token, body=None, **extra):
    headers = bearer(token) if token is not None else {}
    return client.post(
        CERTIFICATE_URL, data=json.dumps(body if body is not None else {}), content_type="application/json",
        **headers, **extra,
    )  # fmt: skip


def _certificate(pem):
    return x509.load_pem_x509_certificate(pem.encode())


@pytest.fixture
def provisioned(client, owned_device):
    """An owned device that provisioned with a CSR: (token, its certificate)."""
    response = provision(client, owned_device, {"attempt": 0, "csr": csr_pem(owned_device.serial)})
    assert response.status_code == HTTPStatus.OK, response.content
    credentials = response.json()["credentials"]
    return credentials["token"], _certificate(credentials["certificate"])


def _crl(client, product):
    response = client.get(reverse("device-protocol:ca-crl", args=[product.slug]))
    assert response.status_code == HTTPStatus.OK
    crl = x509.load_pem_x509_crl(response.content)
    ca = _certificate(product_ca_pem(client, product))
    assert crl.is_signature_valid(ca.public_key())
    return crl


def product_ca_pem(client, product):
    return client.get(reverse("device-protocol:ca-certificate", args=[product.slug])).content.decode()


def _revoked(crl, certificate) -> bool:
    return crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None


def _state(device):
    device.refresh_from_db()
    return device.certificate_serial, device.certificate_pem, RevokedCertificate.objects.count()


# Renewal


def test_renewal_returns_a_new_certificate_signed_by_the_product_ca(client, owned_device, provisioned):
    token, old = provisioned
    # Late in the old certificate's life, as firmware renews (a third of it left).
    with time_machine.travel(old.not_valid_after_utc - timedelta(days=100)):
        response = renew(client, token, {"csr": csr_pem(owned_device.serial)})
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert set(body) == {"certificate", "ca_chain"}
    new = _certificate(body["certificate"])
    ca = _certificate(body["ca_chain"])
    assert body["ca_chain"] == product_ca_pem(client, owned_device.product)
    new.verify_directly_issued_by(ca)
    assert new.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == owned_device.serial
    assert new.serial_number != old.serial_number
    lifetime = timedelta(days=owned_device.product.certificate_days)
    assert new.not_valid_after_utc - old.not_valid_after_utc == pytest.approx(
        lifetime - timedelta(days=100), abs=timedelta(seconds=5)
    )
    owned_device.refresh_from_db()
    assert owned_device.certificate_pem == body["certificate"]
    assert owned_device.certificate_serial == format(new.serial_number, "x")


def test_the_replaced_certificate_is_on_the_crl_at_once(client, owned_device, provisioned):
    token, old = provisioned
    new = _certificate(renew(client, token, {"csr": csr_pem(owned_device.serial)}).json()["certificate"])
    crl = _crl(client, owned_device.product)
    assert _revoked(crl, old)
    assert not _revoked(crl, new)
    assert RevokedCertificate.objects.get().reason == RevokedCertificate.Reason.SUPERSEDED


def test_a_lost_answer_is_recovered_by_renewing_again_with_the_same_token(client, owned_device, provisioned):
    token, old = provisioned
    lost = _certificate(renew(client, token, {"csr": csr_pem(owned_device.serial)}).json()["certificate"])
    again = renew(client, token, {"csr": csr_pem(owned_device.serial)})
    assert again.status_code == HTTPStatus.OK
    crl = _crl(client, owned_device.product)
    assert _revoked(crl, old) and _revoked(crl, lost)
    assert not _revoked(crl, _certificate(again.json()["certificate"]))
    assert checkin(client, token).status_code == HTTPStatus.OK


def test_a_csr_without_cn_and_an_rsa_key_is_accepted(client, owned_device, provisioned):
    token, _old = provisioned
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = renew(client, token, {"csr": csr_pem(key=key)})
    assert response.status_code == HTTPStatus.OK, response.content
    new = _certificate(response.json()["certificate"])
    assert new.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == owned_device.serial


def test_a_device_provisioned_without_a_csr_gets_its_first_certificate(client, owned_device):
    token = provision(client, owned_device).json()["credentials"]["token"]
    response = renew(client, token, {"csr": csr_pem(owned_device.serial)})
    assert response.status_code == HTTPStatus.OK
    assert owned_device.certificate_pem == "" and _state(owned_device)[1] == response.json()["certificate"]
    assert RevokedCertificate.objects.count() == 0


def test_renewal_ends_the_provisioning_hand_over(client, owned_device, provisioned):
    token, _old = provisioned
    new = renew(client, token, {"csr": csr_pem(owned_device.serial)}).json()["certificate"]
    # A later poll must not hand out fresh credentials, which would void the renewed certificate.
    assert provision(client, owned_device).json() == {"state": "provisioned"}
    assert _state(owned_device)[1] == new


# Refusals


def test_no_token_is_401_as_at_check_in(client, provisioned):
    response = renew(client, None, {"csr": csr_pem()})
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"] == 'Bearer realm="device"'
    at_check_in = client.post(CHECKIN_URL, data='{"values": {}}', content_type="application/json")
    assert response.json() == at_check_in.json()
    assert response.json()["error"]["code"] == "unauthenticated"


def test_a_wrong_token_is_401_with_the_check_in_answer(client, owned_device, provisioned):
    before = _state(owned_device)
    response = renew(client, "not-the-token", {"csr": csr_pem(owned_device.serial)})
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"] == 'Bearer realm="device"'
    assert response.json() == checkin(client, "not-the-token").json()
    assert response.json()["error"]["code"] == "unauthenticated"
    assert _state(owned_device) == before


def test_a_wrong_token_is_refused_before_the_csr_is_read(client, provisioned):
    response = renew(client, "not-the-token", {"csr": "garbage"})
    assert response.status_code == HTTPStatus.UNAUTHORIZED


@pytest.mark.parametrize(
    "body", [{}, {"csr": None}, {"csr": ""}, {"csr": 42}, {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nxx\n"}]
)
def test_a_missing_or_garbage_csr_is_invalid_csr(client, owned_device, provisioned, body):
    token, _old = provisioned
    before = _state(owned_device)
    response = renew(client, token, body)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    error = response.json()["error"]
    assert error["code"] == "invalid_csr"
    assert "csr" in error["fields"]
    assert _state(owned_device) == before


@pytest.mark.parametrize(
    "key",
    [lambda: ec.generate_private_key(ec.SECP192R1()), lambda: rsa.generate_private_key(65537, 1024)],
    ids=["p192", "rsa1024"],
)
def test_a_weak_key_is_csr_unsupported_key(client, owned_device, provisioned, key):
    token, _old = provisioned
    before = _state(owned_device)
    response = renew(client, token, {"csr": csr_pem(owned_device.serial, key=key())})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["code"] == "csr_unsupported_key"
    assert _state(owned_device) == before


def test_a_csr_naming_another_serial_is_refused(client, owned_device, provisioned):
    token, _old = provisioned
    other = DeviceFactory()
    before = _state(owned_device)
    response = renew(client, token, {"csr": csr_pem(other.serial)})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["code"] == "csr_wrong_subject"
    assert _state(owned_device) == before


def test_only_post_is_allowed(client, provisioned):
    token, _old = provisioned
    response = client.get(CERTIFICATE_URL, **bearer(token))
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response["Allow"] == "POST"


def test_a_body_over_the_cap_is_413(client, owned_device, provisioned):
    token, _old = provisioned
    before = _state(owned_device)
    response = renew(client, token, {"csr": csr_pem(owned_device.serial), "padding": "x" * 70_000})
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert _state(owned_device) == before


def test_renewal_is_rate_limited_per_device(client, owned_device, provisioned, settings):
    settings.DEVICE_RATE_LIMIT_PER_DEVICE = 1
    token, _old = provisioned
    assert renew(client, token, {"csr": csr_pem(owned_device.serial)}).status_code == HTTPStatus.OK
    response = renew(client, token, {"csr": csr_pem(owned_device.serial)})
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["error"]["retry_after"] >= 1
    assert "Retry-After" in response


# Across ownership: the token that renews is the one a change of owner or a revocation voids.


def _void_by_reset(device, owner, other_owner):
    device_release(device=device, actor=owner, ip="192.0.2.1")


def _void_by_transfer(device, owner, other_owner):
    _offer, token = transfer_offer(device=device, to_email=other_owner.email, actor=owner, ip=None)
    transfer_accept(token=token, user=other_owner, ip=None)


def _void_by_revocation(device, owner, other_owner):
    device_credentials_revoke(device=device, actor=owner)


@pytest.mark.parametrize("void", [_void_by_reset, _void_by_transfer, _void_by_revocation])
def test_voided_credentials_cannot_renew(client, owned_device, owner, other_owner, provisioned, void):
    token, old = provisioned
    void(Device.objects.get(pk=owned_device.pk), owner, other_owner)
    response = renew(client, token, {"csr": csr_pem(owned_device.serial)})
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["error"]["code"] == "unauthenticated"
    assert _revoked(_crl(client, owned_device.product), old)
    assert _state(owned_device)[:2] == ("", "")


def test_a_renewed_certificate_is_revoked_by_the_owners_revocation(client, owned_device, owner, provisioned):
    token, _old = provisioned
    new = _certificate(renew(client, token, {"csr": csr_pem(owned_device.serial)}).json()["certificate"])
    device_credentials_revoke(device=Device.objects.get(pk=owned_device.pk), actor=owner)
    assert _revoked(_crl(client, owned_device.product), new)


def test_renewal_is_in_the_openapi_schema(client):
    schema = client.get(reverse("api-schema"), {"format": "json"}).json()
    operation = schema["paths"]["/device/v1/certificate"]["post"]
    assert operation["security"] == [{"deviceToken": []}]
    assert operation["tags"] == ["device protocol"]
    components = schema["components"]["schemas"]
    body = components[operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]]
    assert body["required"] == ["csr"]
    answer = components[operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]]
    assert set(answer["required"]) == {"certificate", "ca_chain"}
    assert {"400", "401", "413", "429"} <= set(operation["responses"])
    assert "csr_unsupported_key" in operation["responses"]["400"]["description"]
    endpoints = components["EndpointsOutput"]["properties"]
    assert "certificate" in endpoints


def test_renewals_are_limited_per_device_a_day_so_the_revocation_list_cannot_be_flooded(
    client, owned_device, provisioned
):
    from devices.protocol.renewal import RENEWALS_PER_DAY

    token, _ = provisioned
    for _ in range(RENEWALS_PER_DAY):
        assert renew(client, token, {"csr": csr_pem(owned_device.serial)}).status_code == HTTPStatus.OK
    before = RevokedCertificate.objects.count()
    refused = renew(client, token, {"csr": csr_pem(owned_device.serial)})
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(refused["Retry-After"]) > 0
    assert RevokedCertificate.objects.count() == before
    assert checkin(client, token).status_code == HTTPStatus.OK  # the device keeps working meanwhile
