"""Transfer offers email an address the sender chose: limited, and carrying no text the sender typed.
Ref: #8."""

from http import HTTPStatus

import pytest
from django.core import mail
from django.urls import reverse

from claiming import transfers
from claiming.models import Transfer
from portal.errors import Throttled
from tests.factories import DeviceFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

NICKNAME = "WIN A PRIZE at prizes.example"


def _offer(device, to, actor):
    return transfers.transfer_offer(device=device, to_email=to, actor=actor, ip=None)


def test_the_offer_email_names_product_and_serial_not_the_nickname(owner, django_capture_on_commit_callbacks):
    product = ProductFactory(slug="door-sensor", name="Door Sensor")
    device = DeviceFactory(owner=owner, product=product, serial="DS-000123", name=NICKNAME)
    with django_capture_on_commit_callbacks(execute=True):
        _offer(device, "bob@example.com", owner)
    message = mail.outbox[0]
    assert "Door Sensor" in message.body and "DS-000123" in message.body
    assert "PRIZE" not in message.body and "PRIZE" not in message.subject


def test_the_accept_page_does_not_show_the_nickname(client, owner):
    bob = UserFactory(email="bob@example.com")
    device = DeviceFactory(owner=owner, name=NICKNAME)
    _transfer, token = _offer(device, bob.email, owner)
    client.force_login(bob)
    html = client.get(reverse("claiming:transfer-accept", args=[token])).content.decode()
    assert device.serial in html and device.product.name in html
    assert "PRIZE" not in html


def test_offers_per_sender_are_limited(owner):
    limit, _window = transfers.TRANSFER_OFFERS_PER_USER[0]
    devices = DeviceFactory.create_batch(limit + 1, owner=owner)
    for n, device in enumerate(devices[:limit]):
        _offer(device, f"person{n}@example.com", owner)
    with pytest.raises(Throttled) as caught:
        _offer(devices[-1], "one.more@example.com", owner)
    assert caught.value.status == HTTPStatus.TOO_MANY_REQUESTS
    assert not Transfer.objects.filter(device=devices[-1]).exists()


def test_resending_one_offer_over_and_over_is_limited_too(owner):
    device = DeviceFactory(owner=owner)
    limit, _window = transfers.TRANSFER_OFFERS_PER_USER[0]
    for _ in range(limit):
        _offer(device, "bob@example.com", owner)
    with pytest.raises(Throttled):
        _offer(device, "bob@example.com", owner)


def test_offers_to_one_address_are_limited_across_senders():
    limit, _window = transfers.TRANSFER_OFFERS_PER_RECIPIENT
    senders = UserFactory.create_batch(limit + 1)
    for sender in senders[:limit]:
        _offer(DeviceFactory(owner=sender), "target@example.com", sender)
    with pytest.raises(Throttled):
        _offer(DeviceFactory(owner=senders[-1]), "Target@Example.com", senders[-1])


def test_a_sender_past_the_limit_gets_a_form_error_with_429_and_no_email(
    owner_client, owner, django_capture_on_commit_callbacks
):
    limit, _window = transfers.TRANSFER_OFFERS_PER_USER[0]
    device = DeviceFactory(owner=owner)
    for n in range(limit):
        _offer(device, f"person{n}@example.com", owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("claiming:device-transfer", args=[device.pk]), {"to_email": "one.more@example.com"}
        )
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(response["Retry-After"]) > 0
    assert b"Too many transfer offers" in response.content
    assert mail.outbox == []
