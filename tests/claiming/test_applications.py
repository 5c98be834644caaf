"""Applications on the claim form and the device page (the apps app's services do the linking)."""

from http import HTTPStatus

import pytest
from django.urls import reverse

from apps.models import AppLink
from claiming import services, transfers
from devices.models import DeviceEvent, DeviceEventType
from tests.factories import ApplicationFactory, ClaimCodeFactory, DeviceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(owner):
    return ApplicationFactory(owner=owner, name="Dashboard")


def test_claim_form_offers_own_and_managed_applications_only(owner_client, owner, app, other_owner):
    ApplicationFactory(owner=None, managed=True, name="Vendor Cloud")
    ApplicationFactory(owner=other_owner, name="Charlie's secret app")
    html = owner_client.get("/claim/").content.decode()
    assert "Dashboard" in html and "Vendor Cloud (managed)" in html
    assert "Charlie" not in html


def test_claim_by_code_links_the_chosen_application(owner_client, owner, app):
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code)
    response = owner_client.post("/claim/", {"method": "code", "code": code.raw_code, "application": app.app_id})
    assert response.status_code == HTTPStatus.FOUND
    assert AppLink.objects.filter(device=device, application=app).exists()
    assert DeviceEvent.objects.filter(device=device, type=DeviceEventType.LINKED).exists()


def test_claim_by_pin_links_the_chosen_application(owner_client, owner, app):
    device = DeviceFactory(raw_pin="2468")
    owner_client.post("/claim/", {"method": "pin", "serial": device.serial, "pin": "2468", "application": app.app_id})
    assert AppLink.objects.filter(device=device, application=app).exists()


def test_another_owners_application_cannot_be_chosen(owner_client, other_owner):
    theirs = ApplicationFactory(owner=other_owner)
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code)
    response = owner_client.post("/claim/", {"method": "code", "code": code.raw_code, "application": theirs.app_id})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert device.owner is None and not AppLink.objects.exists()


def test_service_links_at_claim_time_for_the_api(owner, app):
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code)
    services.device_claim_by_code(user=owner, code=code.raw_code, application=app, ip=None)
    assert AppLink.objects.filter(device=device, application=app).exists()


def test_device_page_lists_links_and_offers_the_others(owner_client, owner, app):
    device = DeviceFactory(owner=owner)
    other = ApplicationFactory(owner=owner, name="Reports")
    AppLink.objects.create(device=device, application=app)
    html = owner_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    links_section = html[html.index('id="apps"') :]
    assert "Dashboard" in links_section and "Unlink" in links_section
    assert f'<option value="{other.app_id}">Reports</option>' in links_section
    assert f'<option value="{app.app_id}">' not in links_section


def test_add_to_app_from_the_device_page(owner_client, owner, app):
    device = DeviceFactory(owner=owner)
    response = owner_client.post(reverse("apps-device:link", args=[device.pk]), {"application": app.app_id})
    assert response.status_code == HTTPStatus.FOUND
    assert response.url.endswith("#apps")
    assert AppLink.objects.filter(device=device, application=app).exists()


def test_add_to_someone_elses_app_is_refused(owner_client, owner, other_owner):
    device = DeviceFactory(owner=owner)
    theirs = ApplicationFactory(owner=other_owner)
    owner_client.post(reverse("apps-device:link", args=[device.pk]), {"application": theirs.app_id})
    assert not AppLink.objects.exists()


def test_add_to_app_for_another_owners_device_is_404(owner_client, other_owner, app):
    device = DeviceFactory(owner=other_owner)
    response = owner_client.post(reverse("apps-device:link", args=[device.pk]), {"application": app.app_id})
    assert response.status_code == HTTPStatus.NOT_FOUND


def test_transfer_removes_the_old_owners_links(owner, app, user_factory):
    bob = user_factory(email="bob@example.com")
    device = DeviceFactory(owner=owner)
    AppLink.objects.create(device=device, application=app)
    _transfer, token = transfers.transfer_offer(device=device, to_email=bob.email, actor=owner, ip=None)
    transfers.transfer_accept(token=token, user=bob, ip=None)
    assert not AppLink.objects.filter(device=device).exists()
