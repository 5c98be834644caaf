"""Each product's certificate authority: signs the client certificates of its devices.

The CA is an EC P-256 key and a self-signed certificate, created on first use (or by
`manage.py product_ca SLUG`). Its private key is stored encrypted (portal.secrets.encrypt).
A device's CSR is trusted for one thing only, its public key: the certificate's subject is the
device's serial and its extensions are ours.
"""

import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.cache import cache
from django.db import transaction

from portal.errors import ValidationError
from portal.secrets import decrypt, encrypt

from .models import Product, RevokedCertificate

logger = logging.getLogger(__name__)

CA_VALIDITY = timedelta(days=20 * 365)
# Devices with a slow or unset clock still accept a certificate issued a moment ago.
BACKDATE = timedelta(minutes=5)
MAX_CSR_BYTES = 16 * 1024
# A verifier fetches the list again before this runs out; a fresh one is signed on every request.
CRL_VALIDITY = timedelta(days=1)
CRL_CACHE_SECONDS = 3600


class CsrError(ValidationError):
    code = "invalid_csr"


def _ca_name(product: Product) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{product.name} Device CA"[:64]),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"product:{product.slug}"[:64]),
        ]
    )


def self_signed_ca(name: x509.Name):
    """A new EC P-256 key and its self-signed CA certificate (signs end certificates only, for
    CA_VALIDITY): a product's CA, and the portal's MQTT broker CA (devices.mqtt.broker)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def private_key_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _ca_build(product: Product) -> tuple[str, str]:
    cert, key = self_signed_ca(_ca_name(product))
    return cert.public_bytes(serialization.Encoding.PEM).decode(), private_key_pem(key)


def product_ca_ensure(*, product: Product, rotate: bool = False) -> str:
    """Returns the product's CA certificate (PEM), creating the CA first when it has none.

    Two processes provisioning the first devices of a product at once must not create two CAs:
    the product row lock makes the second one wait and then find the first one's CA.
    `rotate=True` replaces an existing CA: certificates it signed stop verifying against the new chain.
    """
    if product.ca_certificate_pem and not rotate:
        return product.ca_certificate_pem
    with transaction.atomic():
        locked = Product.objects.select_for_update().only("id", "name", "slug", "ca_certificate_pem").get(pk=product.pk)
        if locked.ca_certificate_pem and not rotate:
            product.ca_certificate_pem = locked.ca_certificate_pem
            return locked.ca_certificate_pem
        cert_pem, key_pem = _ca_build(locked)
        Product.objects.filter(pk=product.pk).update(ca_certificate_pem=cert_pem, ca_key_encrypted=encrypt(key_pem))
    product.ca_certificate_pem = cert_pem
    product.ca_key_encrypted = ""  # reload from the database when needed; never kept in clear on the instance
    logger.info("product.ca_created", extra={"product": product.slug, "rotated": rotate})
    return cert_pem


@lru_cache(maxsize=64)
def _ca_material(cert_pem: str, key_encrypted: str):
    """Parsed CA certificate and decrypted key, cached per CA (the PEM text changes when it rotates)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(decrypt(key_encrypted).encode(), password=None)
    return cert, key


# The device keys we certify (docs/device-protocol.md): what MQTT brokers' TLS stacks all verify,
# at 128-bit strength or more. Other curves (P-192, secp256k1, …), Ed448, DSA and short RSA are refused.
ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1)
MIN_RSA_BITS = 2048
ACCEPTED_KEYS_TEXT = "EC P-256 (recommended) or P-384, Ed25519, or RSA of at least 2048 bits"


def key_accepted(public_key) -> bool:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return isinstance(public_key.curve, ACCEPTED_CURVES)
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.key_size >= MIN_RSA_BITS
    return isinstance(public_key, ed25519.Ed25519PublicKey)


def _unsupported_key() -> CsrError:
    return CsrError(
        f"csr key is not accepted: use {ACCEPTED_KEYS_TEXT}.",
        code="csr_unsupported_key",
        fields={"csr": [f"Use {ACCEPTED_KEYS_TEXT}."]},
    )


def csr_load(csr_pem) -> x509.CertificateSigningRequest:
    """Parses and verifies a PEM CSR; CsrError for anything a device could get wrong."""
    if not isinstance(csr_pem, str) or not csr_pem.strip():
        raise CsrError("csr must be a PEM certificate signing request.", fields={"csr": ["Give a PEM CSR."]})
    if len(csr_pem) > MAX_CSR_BYTES:
        raise CsrError("csr is too large.", fields={"csr": [f"At most {MAX_CSR_BYTES} bytes."]})
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise CsrError("csr is not a PEM certificate signing request.", fields={"csr": ["Not a PEM CSR."]}) from None
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise _unsupported_key() from None
    if not key_accepted(public_key):
        raise _unsupported_key()
    try:
        signed = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        raise _unsupported_key() from None
    if not signed:
        raise CsrError("csr signature does not verify.", fields={"csr": ["The CSR signature is wrong."]})
    return csr


def certificate_issue(*, product: Product, serial: str, csr_pem: str) -> tuple[str, str]:
    """Signs a client certificate for the device `serial` from its CSR; returns (PEM, hex serial).

    Only the CSR's public key is used. A CSR whose CN names anything but this serial is refused
    (a device asking for another device's identity is a bug or an attack, never a typo to fix).
    """
    csr = csr_load(csr_pem)
    common_names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if any(attr.value != serial for attr in common_names):
        raise CsrError(
            "csr names another device.", code="csr_wrong_subject", fields={"csr": ["The CN must be this serial."]}
        )
    ca_cert, ca_key = _ca_signing_material(product)
    now = datetime.now(UTC)
    public_key = csr.public_key()
    # 159 random bits: positive, at most 20 octets, unguessable (CA/B forum asks for ≥ 64 bits).
    serial_number = secrets.randbits(159) | 1
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial_number)
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=product.certificate_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), format(serial_number, "x")


def _ca_signing_material(product: Product):
    product_ca_ensure(product=product)
    if not product.ca_key_encrypted:
        product.ca_key_encrypted = Product.objects.values_list("ca_key_encrypted", flat=True).get(pk=product.pk)
    return _ca_material(product.ca_certificate_pem, product.ca_key_encrypted)


def product_crl_cached(*, product: Product) -> str:
    """`product_crl`, signed once per change of the list and at most an hour old (it is valid for a
    day): the URL is public and unthrottled, so a request costs one indexed query, not a signature
    over every revoked serial. A new revocation has a new newest id, so it is on the next answer."""
    newest = RevokedCertificate.objects.filter(product=product).order_by("-pk").values_list("pk", flat=True).first()
    ca_digest = hashlib.sha256(product.ca_certificate_pem.encode()).hexdigest()[:16]  # a new CA, a new list
    key = f"crl:{product.pk}:{ca_digest}:{newest}"
    crl = cache.get(key)
    if crl is None:
        crl = product_crl(product=product)
        cache.set(key, crl, timeout=CRL_CACHE_SECONDS)
    return crl


def product_crl(*, product: Product) -> str:
    """The product CA's certificate revocation list (PEM, X.509 v2), signed now: every certificate
    voided by a reset, a new owner, the owner's revocation or a re-issue."""
    ca_cert, ca_key = _ca_signing_material(product)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - BACKDATE)
        .next_update(now + CRL_VALIDITY)
        # Increases with every list issued, as RFC 5280 asks.
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    revoked = RevokedCertificate.objects.filter(product=product).values_list("serial_number", "revoked_at")
    for serial_number, revoked_at in revoked.order_by("revoked_at").iterator():
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(int(serial_number, 16)).revocation_date(revoked_at).build()
        )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
