import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import CommandError, call_command
from django.db import connection

from devices.ca import certificate_issue, product_ca_ensure
from devices.models import Product
from portal.secrets import decrypt

from ..factories import ProductFactory
from .protocol_support import csr_pem

pytestmark = pytest.mark.django_db


def test_ca_is_an_ec_p256_self_signed_ca_with_an_encrypted_key():
    product = ProductFactory()
    pem = product_ca_ensure(product=product)
    product.refresh_from_db()
    cert = x509.load_pem_x509_certificate(pem.encode())
    cert.verify_directly_issued_by(cert)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert "PRIVATE KEY" not in product.ca_key_encrypted
    key = serialization.load_pem_private_key(decrypt(product.ca_key_encrypted).encode(), password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_ca_is_created_once():
    product = ProductFactory()
    first = product_ca_ensure(product=product)
    again = product_ca_ensure(product=Product.objects.get(pk=product.pk))
    assert first == again


def test_rotation_replaces_the_ca():
    product = ProductFactory()
    first = product_ca_ensure(product=product)
    assert product_ca_ensure(product=product, rotate=True) != first


def test_certificates_are_signed_by_the_products_own_ca():
    one, two = ProductFactory(), ProductFactory()
    cert_pem, _ = certificate_issue(product=one, serial="A1", csr_pem=csr_pem("A1"))
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(product_ca_ensure(product=one).encode()))
    with pytest.raises(ValueError):
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(product_ca_ensure(product=two).encode()))


def test_certificate_serials_are_unique():
    product = ProductFactory()
    serials = {certificate_issue(product=product, serial="A1", csr_pem=csr_pem("A1"))[1] for _ in range(5)}
    assert len(serials) == 5


def test_management_command_prints_the_ca(capsys):
    product = ProductFactory(slug="lamp")
    call_command("product_ca", "lamp")
    assert capsys.readouterr().out == Product.objects.get(pk=product.pk).ca_certificate_pem


def test_management_command_refuses_an_unknown_product():
    with pytest.raises(CommandError):
        call_command("product_ca", "nope")


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_use_creates_one_ca(requires_postgres):
    product = ProductFactory()
    results, barrier = [], threading.Barrier(4)

    def provision_first_device():
        try:
            barrier.wait()
            results.append(product_ca_ensure(product=Product.objects.get(pk=product.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=provision_first_device) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert len(set(results)) == 1
    assert Product.objects.get(pk=product.pk).ca_certificate_pem == results[0]
