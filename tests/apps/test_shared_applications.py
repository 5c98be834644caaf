"""Applications stay the owner's (issue 18): linking a device needs MANAGE, and a shared person's own
applications can neither link nor read a device shared with them."""

from http import HTTPStatus

import pytest
from django.urls import reverse

from apps.models import AppLink
from apps.services import links
from portal.errors import NotFound

from .api_support import auth, make_application

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.sharing_fixtures"]


@pytest.fixture
def operators_application(operator):
    return make_application(operator)


def test_an_operator_cannot_link_a_shared_device_to_their_application(shared_device, operator, operators_application):
    with pytest.raises(NotFound):
        links.device_link(device=shared_device, application=operators_application, actor=operator)
    assert not AppLink.objects.exists()


def test_linking_from_the_application_page_is_refused_with_403(client, shared_device, operator, operators_application):
    client.force_login(operator)
    response = client.post(
        reverse("apps:device-link", args=[operators_application.app_id]), {"device": str(shared_device.pk)}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not AppLink.objects.exists()


def test_linking_from_the_device_page_is_refused_with_403(client, shared_device, viewer):
    application = make_application(viewer)
    client.force_login(viewer)
    response = client.post(
        reverse("apps-device:link", args=[shared_device.pk]), {"application": application.app_id}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not AppLink.objects.exists()


def test_a_shared_persons_application_reads_nothing_of_the_device(client, shared_device, operators_application):
    listing = client.get(reverse("apps-api:device-list"), **auth(operators_application))
    assert listing.status_code == HTTPStatus.OK and listing.json()["results"] == []
    detail = client.get(
        reverse("apps-api:device-detail", kwargs={"device_id": shared_device.pk}), **auth(operators_application)
    )
    assert detail.status_code == HTTPStatus.NOT_FOUND
    readings = client.get(
        reverse("apps-api:reading-list", kwargs={"device_id": shared_device.pk}), **auth(operators_application)
    )
    assert readings.status_code == HTTPStatus.NOT_FOUND


def test_the_owners_application_still_links_and_reads(client, owner, shared_device):
    application = make_application(owner)
    links.device_link(device=shared_device, application=application, actor=owner)
    detail = client.get(reverse("apps-api:device-detail", kwargs={"device_id": shared_device.pk}), **auth(application))
    assert detail.status_code == HTTPStatus.OK
