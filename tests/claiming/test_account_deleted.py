"""Deleting an owner's account is a change of owner like any other: nothing of that ownership stays."""

import pytest
from django.contrib.auth import get_user_model

from apps.models import AppLink, EndedLink
from apps.services import links as app_links
from claiming.services import device_claim_by_code, device_claim_by_pin
from devices.models import Device, RevokedCertificate
from portal.errors import ApplicationError

from ..devices.protocol_support import checkin, csr_pem, provision
from ..factories import ApplicationFactory, ClaimCodeFactory, DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_an_owners_deleted_account_resets_each_of_its_devices(client, owner):
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code, owner=owner, name="Alice's bedroom", raw_pin="2468", claimable=True)
    managed = ApplicationFactory(owner=None, managed=True)
    app_links.device_link(device=device, application=managed, actor=owner)
    token = provision(client, device, {"attempt": 0, "csr": csr_pem(device.serial)}).json()["credentials"]["token"]
    assert checkin(client, token).status_code == 200

    get_user_model().objects.filter(pk=owner.pk).delete()  # as the admin's "delete selected" does

    device.refresh_from_db()
    assert device.owner is None and device.name == "" and device.values == {}
    assert not device.claimable and device.pin_digest == ""
    assert not AppLink.objects.filter(device=device).exists()
    assert EndedLink.objects.filter(device=device, application=managed).exists()
    assert RevokedCertificate.objects.filter(product=device.product).exists()
    assert checkin(client, token).status_code == 401
    bob = UserFactory(email="bob@example.com")
    with pytest.raises(ApplicationError):
        device_claim_by_pin(user=bob, serial=device.serial, pin="2468", ip="198.51.100.2")
    # The label still works for the next owner, whose device starts clean.
    [claimed] = device_claim_by_code(user=bob, code=code.raw_code, ip="198.51.100.2")
    assert claimed.pk == device.pk and not AppLink.objects.filter(device=device).exists()
    assert Device.objects.get(pk=device.pk).owner == bob
