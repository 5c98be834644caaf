"""seed_demo: the demo product, devices, codes, owner and admin, idempotent across runs."""

import io
import json
import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from devices import codes
from devices.models import ClaimCode, Device, Product
from devices.services import pin_digest
from portal.secrets import digests_match

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.DEBUG = True  # the development set-up seed_demo is made for (pytest-django turns it off)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_creates_the_demo_data(settings, tmp_path):
    output = seed()
    product = Product.objects.get(slug="thermo")
    assert product.name == "Thermo Sensor"
    assert sorted(Device.objects.values_list("serial", flat=True)) == [f"DEMO-000{i}" for i in range(1, 6)]
    assert ClaimCode.objects.count() == 4
    assert sorted(code.devices.count() for code in ClaimCode.objects.all()) == [1, 1, 1, 2]  # one batch code
    assert Device.objects.get(serial="DEMO-0004").pin_digest == pin_digest("2468")

    owner = get_user_model().objects.get(email="owner@example.com")
    assert EmailAddress.objects.get(user=owner).verified
    assert list(Device.objects.filter(owner=owner).values_list("serial", flat=True)) == ["DEMO-0001"]
    admin = get_user_model().objects.get(email="admin@example.com")
    assert admin.is_superuser and admin.is_staff

    password = re.search(r"owner@example.com / (\S+)", output).group(1)
    assert owner.check_password(password)
    assert admin.check_password(re.search(r"admin@example.com / (\S+)", output).group(1))
    assert f"{settings.PORTAL_BASE_URL}/admin/" in output


def test_prints_an_unclaimed_code_that_works(settings):
    output = seed()
    shown = re.search(r"Claim code to try: (\S+)", output).group(1)
    claim_code = ClaimCode.objects.get(digest=codes.digest(shown))
    assert claim_code.devices.exists() and not claim_code.devices.filter(owner__isnull=False).exists()
    assert f"{settings.PORTAL_BASE_URL}/c/{codes.normalize(shown)}" in output


def test_writes_the_demo_keys_for_the_simulator(tmp_path):
    seed()
    entries = json.loads((tmp_path / "demo-devices.json").read_text())
    assert [entry["serial"] for entry in entries] == [f"DEMO-000{i}" for i in range(1, 6)]
    for entry in entries:
        device = Device.objects.get(serial=entry["serial"])
        assert digests_match(entry["factory_key"], device.factory_key_digest, purpose="factory-key")
        assert device.claim_code.digest == codes.digest(entry["claim_code"])
    assert (tmp_path / "demo-devices.json").stat().st_mode & 0o077 == 0


def test_rerun_keeps_everything_and_prints_the_same(tmp_path):
    first = seed()
    keys = (tmp_path / "demo-devices.json").read_text()
    devices = sorted(Device.objects.values_list("pk", "factory_key_digest", "claim_code_id", "owner_id"))
    second = seed()
    assert second == first
    assert (tmp_path / "demo-devices.json").read_text() == keys
    assert sorted(Device.objects.values_list("pk", "factory_key_digest", "claim_code_id", "owner_id")) == devices
    assert ClaimCode.objects.count() == 4 and get_user_model().objects.count() == 2
    assert EmailAddress.objects.count() == 2


def test_rerun_without_the_key_file_gives_new_keys_that_work(tmp_path):
    seed()
    (tmp_path / "demo-devices.json").unlink()
    (tmp_path / "demo-logins.json").unlink()
    output = seed()
    for entry in json.loads((tmp_path / "demo-devices.json").read_text()):
        device = Device.objects.get(serial=entry["serial"])
        assert digests_match(entry["factory_key"], device.factory_key_digest, purpose="factory-key")
    owner = get_user_model().objects.get(email="owner@example.com")
    assert owner.check_password(re.search(r"owner@example.com / (\S+)", output).group(1))
    assert Device.objects.count() == 5 and ClaimCode.objects.count() == 4


def test_suggests_another_code_once_one_is_claimed():
    first = re.search(r"Claim code to try: (\S+)", seed()).group(1)
    owner = get_user_model().objects.get(email="owner@example.com")
    ClaimCode.objects.get(digest=codes.digest(first)).devices.update(owner=owner)
    second = re.search(r"Claim code to try: (\S+)", seed()).group(1)
    assert second != first


def test_refuses_to_run_in_production(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        seed()
    assert not Device.objects.exists()


def test_rundemo_prints_the_same_logins_again_and_follows_claims(settings):
    from devices.demo import saved_summary

    output = seed()
    again = saved_summary(settings.PORTAL_BASE_URL)
    assert again and all(line in output.splitlines() for line in again)
    first = re.search(r"Claim code to try: (\S+)", "\n".join(again)).group(1)
    owner = get_user_model().objects.get(email="owner@example.com")
    ClaimCode.objects.get(digest=codes.digest(first)).devices.update(owner=owner)
    # Claimed since seed_demo ran: the block shown once the portal answers offers the next code.
    assert re.search(r"Claim code to try: (\S+)", "\n".join(saved_summary(settings.PORTAL_BASE_URL))).group(1) != first


def test_rundemo_without_seed_data_has_no_logins_to_print():
    from devices.demo import saved_summary

    assert saved_summary("http://127.0.0.1:8000") is None


def test_the_demo_product_declares_its_fields():
    seed()
    fields = Product.objects.get(slug="thermo").fields.all()
    assert [(f.key, f.unit, f.primary) for f in fields] == [
        ("temperature", "°C", True),
        ("humidity", "%", True),
        ("uptime", "s", False),
    ]
    seed()  # again: still one of each
    assert Product.objects.get(slug="thermo").fields.count() == 3
