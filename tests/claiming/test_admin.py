"""The OEM admin's ownership actions on devices, and the read-only audit trail."""

import logging
from http import HTTPStatus

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from claiming.models import OwnershipEvent, OwnershipEventKind
from devices.models import Device
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:devices_device_changelist"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def _act(client, action, devices, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(d.pk) for d in devices], **extra}
    return client.post(reverse(CHANGELIST), data)


def test_preclaim_action_asks_for_an_email_first(admin_client):
    device = DeviceFactory()
    response = _act(admin_client, "preclaim_devices", [device])
    assert response.status_code == HTTPStatus.OK
    assert b"Owner&#x27;s email address" in response.content or b"email address" in response.content
    assert Device.objects.get(pk=device.pk).owner is None


def test_preclaim_action_assigns_to_a_verified_account(admin_client, owner):
    devices = DeviceFactory.create_batch(2)
    response = _act(admin_client, "preclaim_devices", devices, apply="1", email=owner.email)
    assert response.status_code == HTTPStatus.FOUND
    assert Device.objects.filter(owner=owner).count() == 2


def test_preclaim_action_for_an_unknown_address_waits_for_sign_up(admin_client):
    device = DeviceFactory()
    _act(admin_client, "preclaim_devices", [device], apply="1", email="later@example.com")
    device.refresh_from_db()
    assert (device.owner, device.preclaim_email) == (None, "later@example.com")


def test_preclaim_action_refuses_a_bad_address(admin_client):
    device = DeviceFactory()
    response = _act(admin_client, "preclaim_devices", [device], apply="1", email="not-an-address")
    assert response.status_code == HTTPStatus.OK
    assert Device.objects.get(pk=device.pk).preclaim_email == ""


def test_reset_action_confirms_then_releases(admin_client, owner, staff):
    device = DeviceFactory(owner=owner)
    assert _act(admin_client, "reset_ownership", [device]).status_code == HTTPStatus.OK
    assert Device.objects.get(pk=device.pk).owner == owner
    response = _act(admin_client, "reset_ownership", [device], apply="1")
    assert response.status_code == HTTPStatus.FOUND
    assert Device.objects.get(pk=device.pk).owner is None
    event = OwnershipEvent.objects.get(device=device)
    assert (event.kind, event.actor) == (OwnershipEventKind.RELEASED, staff)


def test_audit_trail_is_read_only(admin_client, owner):
    device = DeviceFactory(owner=owner)
    event = OwnershipEvent.objects.create(device=device, kind=OwnershipEventKind.CLAIMED, actor=owner, owner=owner)
    assert admin_client.get(reverse("admin:claiming_ownershipevent_changelist")).status_code == HTTPStatus.OK
    assert admin_client.get(reverse("admin:claiming_ownershipevent_add")).status_code == HTTPStatus.FORBIDDEN
    response = admin_client.post(reverse("admin:claiming_ownershipevent_delete", args=[event.pk]), {"post": "yes"})
    assert response.status_code == HTTPStatus.FORBIDDEN


def test_audit_trail_hides_owners_without_the_permission(client, owner, user_factory):
    from django.contrib.auth.models import Permission

    oem = user_factory(is_staff=True)
    oem.user_permissions.add(Permission.objects.get(codename="view_ownershipevent"))
    client.force_login(oem)
    device = DeviceFactory(owner=owner)
    OwnershipEvent.objects.create(device=device, kind=OwnershipEventKind.CLAIMED, actor=owner, owner=owner)
    html = client.get(reverse("admin:claiming_ownershipevent_changelist")).content.decode()
    assert device.serial in html
    assert "alice" not in html


@pytest.fixture
def oem_client(client, user_factory):
    """An OEM admin who runs devices and reads the audit trail, without the owner permission."""
    from django.contrib.auth.models import Permission

    oem = user_factory(is_staff=True)
    oem.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_device", "change_device", "view_ownershipevent"])
    )
    client.force_login(oem)
    return client


def test_an_admin_without_the_owner_permission_cannot_filter_devices_by_owner(oem_client, owner):
    DeviceFactory(owner=owner, serial="MINE-1")
    DeviceFactory(preclaim_email="carol@example.com", serial="WAIT-1")
    for query in (f"?owner={owner.pk}", f"?owner__id__exact={owner.pk}", "?preclaim_email=carol@example.com"):
        response = oem_client.get(reverse(CHANGELIST) + query)
        assert response.status_code == HTTPStatus.BAD_REQUEST, query  # the admin's answer to a refused lookup


def test_a_refused_owner_filter_is_logged_as_a_warning_without_a_traceback(oem_client, owner, caplog):
    caplog.set_level(logging.INFO)
    pages = [
        (reverse(CHANGELIST), "preclaim_email=carol@example.com"),
        (reverse("admin:claiming_ownershipevent_changelist"), f"actor={owner.pk}"),
    ]
    for url, query in pages:
        caplog.clear()
        response = oem_client.get(f"{url}?{query}")
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert [record.levelname for record in caplog.records] == ["WARNING"], query
        (record,) = caplog.records
        assert record.exc_info is None
        assert "not allowed" in record.getMessage() and "carol@example.com" not in record.getMessage()
        assert "You cannot filter this list" in response.content.decode()


def test_an_admin_with_the_owner_permission_may_filter_devices_by_owner(admin_client, owner):
    DeviceFactory(owner=owner, serial="MINE-1")
    DeviceFactory(serial="OTHER-1")
    html = admin_client.get(reverse(CHANGELIST) + f"?owner={owner.pk}").content.decode()
    assert "MINE-1" in html and "OTHER-1" not in html


def test_the_audit_trail_keeps_pre_claim_addresses_from_admins_without_the_permission(oem_client, staff):
    from claiming import services

    device = DeviceFactory()
    services.device_preclaim(devices=[device], email="carol@example.com", actor=staff)
    changelist = reverse("admin:claiming_ownershipevent_changelist")
    html = oem_client.get(changelist).content.decode()
    assert device.serial in html and "carol@example.com" not in html
    event = OwnershipEvent.objects.get(device=device)
    assert (
        "carol@example.com"
        not in oem_client.get(reverse("admin:claiming_ownershipevent_change", args=[event.pk])).content.decode()
    )
    assert oem_client.get(changelist + "?detail__contains=carol").status_code == HTTPStatus.BAD_REQUEST
