"""Where the credentials went, the owner's revocation, and the product CA's revocation list."""

from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
from cryptography import x509
from django.urls import reverse

from claiming.services import device_release
from devices.models import Device, RevokedCertificate

from ..factories import DeviceFactory
from .protocol_support import checkin, csr_pem, provision

pytestmark = pytest.mark.django_db


def _provision_with_certificate(client, device, **extra):
    response = provision(client, device, {"attempt": 0, "csr": csr_pem(device.serial)}, **extra)
    assert response.status_code == HTTPStatus.OK, response.content
    credentials = response.json()["credentials"]
    return credentials["token"], x509.load_pem_x509_certificate(credentials["certificate"].encode())


def _crl(client, product):
    response = client.get(reverse("device-protocol:ca-crl", args=[product.slug]))
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "application/x-pem-file"
    crl = x509.load_pem_x509_crl(response.content)
    ca_response = client.get(reverse("device-protocol:ca-certificate", args=[product.slug]))
    ca = x509.load_pem_x509_certificate(ca_response.content)
    assert crl.is_signature_valid(ca.public_key())
    assert crl.issuer == ca.subject
    return crl


def test_a_reset_puts_the_old_certificate_on_the_signed_crl(client, owned_device, owner):
    _token, cert = _provision_with_certificate(client, owned_device)
    assert _crl(client, owned_device.product).get_revoked_certificate_by_serial_number(cert.serial_number) is None
    device_release(device=owned_device, actor=owner, ip="192.0.2.1")
    crl = _crl(client, owned_device.product)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert crl.next_update_utc - datetime.now(UTC) > timedelta(hours=23)
    assert crl.next_update_utc - datetime.now(UTC) <= timedelta(hours=24)


def test_a_new_certificate_replacing_an_unused_one_revokes_it(client, owned_device):
    _token, first = _provision_with_certificate(client, owned_device)
    _token, second = _provision_with_certificate(client, owned_device)
    crl = _crl(client, owned_device.product)
    assert crl.get_revoked_certificate_by_serial_number(first.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(second.serial_number) is None
    assert RevokedCertificate.objects.get().reason == "superseded"


def test_the_crl_of_an_unknown_product_is_404(client):
    response = client.get(reverse("device-protocol:ca-crl", args=["no-such-product"]))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["error"]["code"] == "not_found"


def test_the_owner_page_shows_when_and_from_where_the_credentials_were_taken(owner_client, owner, client):
    device = DeviceFactory(owner=owner)
    provision(client, device, REMOTE_ADDR="198.51.100.23")
    device.refresh_from_db()
    assert device.token_issued_ip == "198.51.100.23"
    html = owner_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    assert "198.51.100.23" in html
    assert device.token_issued_at.strftime("%-d %b %Y, %H:%M") in html
    assert reverse("devices:credentials-revoke", args=[device.pk]) in html


def test_the_owner_revokes_the_credentials_and_the_device_provisions_again(owner_client, owner, client):
    device = DeviceFactory(owner=owner)
    token, cert = _provision_with_certificate(client, device)
    assert checkin(client, token).status_code == HTTPStatus.OK
    assert provision(client, device).json() == {"state": "provisioned"}

    url = reverse("devices:credentials-revoke", args=[device.pk])
    assert owner_client.get(url).status_code == HTTPStatus.OK  # the confirmation page
    response = owner_client.post(url)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("devices:detail", args=[device.pk])

    assert checkin(client, token).status_code == HTTPStatus.UNAUTHORIZED
    assert _crl(client, device.product).get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    answer = provision(client, device).json()
    assert answer["state"] == "claimed"
    assert answer["credentials"]["token"] != token
    assert checkin(client, answer["credentials"]["token"]).status_code == HTTPStatus.OK
    assert Device.objects.get(pk=device.pk).owner == owner


def test_only_the_owner_may_revoke(client, other_owner, owned_device):
    client.force_login(other_owner)
    url = reverse("devices:credentials-revoke", args=[owned_device.pk])
    assert client.post(url).status_code == HTTPStatus.NOT_FOUND


def test_a_product_that_issued_no_certificate_has_no_crl_and_a_get_makes_no_ca(client):
    from devices.models import Product
    from tests.factories import ProductFactory

    product = ProductFactory()
    for name in ("device-protocol:ca-crl", "device-protocol:ca-certificate"):
        response = client.get(reverse(name, args=[product.slug]))
        assert response.status_code == 404 and response.json()["error"]["code"] == "no_ca"
    assert Product.objects.get(pk=product.pk).ca_certificate_pem == ""


def test_the_crl_is_signed_once_per_change_not_per_request(client, owned_device, owner, monkeypatch):
    from devices import ca
    from devices.ca import product_ca_ensure

    product_ca_ensure(product=owned_device.product)
    _crl(client, owned_device.product)
    signed = []
    real = ca.product_crl
    monkeypatch.setattr(ca, "product_crl", lambda **kw: signed.append(1) or real(**kw))
    for _ in range(5):
        _crl(client, owned_device.product)
    assert len(signed) <= 1
    from devices.services import certificate_revoke

    certificate_revoke(product_id=owned_device.product_id, serial_number="abc123", reason="superseded")
    crl = _crl(client, owned_device.product)  # a new revocation is on the very next answer
    assert crl.get_revoked_certificate_by_serial_number(0xABC123) is not None
