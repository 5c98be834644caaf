"""The broker's configuration as the portal writes it (manage.py mqtt_broker_config)."""

import pytest
from cryptography import x509
from django.core.management import call_command
from django.core.management.base import CommandError

from devices.mqtt import broker

from ...factories import ProductFactory


@pytest.fixture
def written(db, settings, tmp_path):
    settings.MQTT_BRIDGE_PASSWORD = "bridge-secret"
    settings.MQTT_DIR = tmp_path
    ProductFactory(slug="one")
    ProductFactory(slug="two")
    broker.broker_config_write(server_names=["mqtt.example.com", "192.0.2.10"])
    return tmp_path


def test_every_product_ca_is_trusted_and_has_its_revocation_list(written):
    cas = x509.load_pem_x509_certificates((written / broker.CAFILE).read_bytes())
    crls = (written / broker.CRLFILE).read_text().count("BEGIN X509 CRL")
    assert len(cas) == 2 and crls == 2


def test_the_acl_confines_a_device_to_its_own_topics(written):
    acl = (written / broker.ACLFILE).read_text()
    assert "pattern write devices/%u/checkin" in acl
    assert "pattern read devices/%u/commands" in acl
    assert "user portal-bridge\ntopic readwrite devices/#" in acl


def test_the_server_certificate_names_the_broker_and_is_signed_by_the_kept_broker_ca(written, settings):
    server = x509.load_pem_x509_certificate((written / broker.SERVER_CERT).read_bytes())
    ca = x509.load_pem_x509_certificate((written / broker.BROKER_CA).read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["mqtt.example.com", "192.0.2.10"]

    broker.broker_config_write(server_names=["mqtt.example.com", "192.0.2.10"])
    assert x509.load_pem_x509_certificate((written / broker.BROKER_CA).read_bytes()) == ca  # kept


def test_the_password_file_is_private_and_hashed(written):
    passwd = written / broker.PASSWDFILE
    assert passwd.stat().st_mode & 0o077 == 0
    assert passwd.read_text().startswith("portal-bridge:$7$101$")
    assert "bridge-secret" not in passwd.read_text()


def test_the_command_refuses_to_run_without_the_bridges_password(db, settings):
    settings.MQTT_BRIDGE_PASSWORD = ""
    with pytest.raises(CommandError):
        call_command("mqtt_broker_config")
