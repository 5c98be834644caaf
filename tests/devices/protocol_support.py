"""Helpers shared by the device-protocol tests: what firmware would send."""

import base64
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.urls import reverse

PROVISION_URL = reverse("device-protocol:provision")
CHECKIN_URL = reverse("device-protocol:checkin")
COMMANDS_URL = reverse("device-protocol:commands")


def basic(serial, key):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{serial}:{key}".encode()).decode()}


def bearer(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def csr_pem(cn=None, *, key=None, extra_names=(), extensions=()):
    key = key or ec.generate_private_key(ec.SECP256R1())
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([*names, *extra_names]))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def provision(client, device, body=None, **extra):
    return client.post(
        PROVISION_URL,
        data=json.dumps(body if body is not None else {"attempt": 0}),
        content_type="application/json",
        **basic(device.serial, device.raw_factory_key),
        **extra,
    )


def provision_token(client, device):
    """Provisions an owned device and returns its fresh token."""
    response = provision(client, device)
    assert response.status_code == 200, response.content
    return response.json()["credentials"]["token"]


def checkin(client, token, values=None, **extra):
    return client.post(
        CHECKIN_URL,
        data=json.dumps({"values": values if values is not None else {"temperature": 21.5}}),
        content_type="application/json",
        **bearer(token),
        **extra,
    )
