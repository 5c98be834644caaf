"""Which events an application hears: those of a device linked to it when they happened, on
webhooks (to a real receiver) and in GET /api/v1/events alike, however late the relay runs."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.models import Connection, Delivery, DeliveryStatus
from apps.services import fanout, links, sending
from claiming.services import device_claim_by_code, device_release
from devices.models import DeviceEvent, DeviceEventType
from devices.outbox import event_record, relay_all

from ..factories import ApplicationFactory, ClaimCodeFactory, DeviceFactory, UserFactory
from .api_support import auth
from .conftest import hook_url

IP = "198.51.100.1"


def deliver_everything():
    """The relay, however late, then one attempt of every pending delivery, oldest first."""
    relay_all()
    for delivery in Delivery.objects.filter(status=DeliveryStatus.PENDING).order_by("pk"):
        sending.delivery_send(delivery_id=delivery.pk, lease=delivery.next_attempt_at)


def received(receiver, path):
    return [json.loads(request.get_data()) for request, _ in receiver.log if request.path == path]


@pytest.fixture
def bob(db):
    return UserFactory(email="bob@example.com", username="bob")


@pytest.fixture
def code():
    return ClaimCodeFactory()


@pytest.fixture
def device(code, owner):
    return DeviceFactory(claim_code=code, owner=owner, owned_since=timezone.now() - timedelta(days=1))


@pytest.fixture
def apps_of_both(owner, bob, receiver, private_targets):
    receiver.expect_request("/alice").respond_with_data("ok")
    receiver.expect_request("/bob").respond_with_data("ok")
    alice_app = ApplicationFactory(owner=owner, callback_url=hook_url(receiver, "/alice"))
    bob_app = ApplicationFactory(owner=bob, callback_url=hook_url(receiver, "/bob"))
    return alice_app, bob_app


def test_a_previous_owners_events_never_reach_the_next_owners_application(
    owner, bob, device, code, apps_of_both, receiver
):
    alice_app, bob_app = apps_of_both
    links.device_link(device=device, application=alice_app, actor=owner)
    alices = [event_record(device=device, type=DeviceEventType.DATA, data={"values": {"t": t}}) for t in (1, 2)]
    # The worker is behind: nothing is relayed while Alice resets and Bob claims with his app.
    device_release(device=device, actor=owner, ip=IP)
    device_claim_by_code(user=bob, code=code.raw_code, application=bob_app, ip=IP)
    device.refresh_from_db()
    bobs = event_record(device=device, type=DeviceEventType.DATA, data={"values": {"t": 3}})

    deliver_everything()

    to_bob = received(receiver, "/bob")
    assert [body["type"] for body in to_bob] == ["device.claimed", "device.linked", "device.data"]
    assert to_bob[-1]["id"] == str(bobs.pk)
    to_alice = received(receiver, "/alice")
    assert [body["type"] for body in to_alice] == [
        "device.linked",
        "device.data",
        "device.data",
        "device.released",
        "device.unlinked",
    ]
    assert {str(event.pk) for event in alices} <= {body["id"] for body in to_alice}
    assert not {body["id"] for body in to_alice} & {body["id"] for body in to_bob}


def test_webhooks_and_the_events_api_are_the_same_events(client, bob, code, receiver, private_targets):
    receiver.expect_request("/hook").respond_with_data("ok")
    platform = ApplicationFactory(callback_url=hook_url(receiver))
    Connection.objects.create(application=platform, user=bob)
    device = DeviceFactory(claim_code=code)
    answer = client.post(
        "/api/v1/claims",
        {"user_email": bob.email, "code": code.raw_code},
        content_type="application/json",
        **auth(platform),
    )
    assert answer.status_code == 201
    device.refresh_from_db()
    event_record(device=device, type=DeviceEventType.DATA, data={"values": {"t": 1}})
    links.device_unlink(device=device, application=platform, actor=bob)
    event_record(device=device, type=DeviceEventType.DATA, data={"values": {"t": 2}})  # not linked: not theirs
    links.device_link(device=device, application=platform, actor=bob)
    event_record(device=device, type=DeviceEventType.DATA, data={"values": {"t": 3}})
    device_release(device=device, actor=bob, ip=IP)

    deliver_everything()

    hooked = [body["id"] for body in received(receiver, "/hook")]
    polled = [row["id"] for row in client.get("/api/v1/events", **auth(platform)).json()["results"]]
    assert polled == hooked
    types = {str(event.pk): event.type for event in DeviceEvent.objects.all()}
    assert [types[event_id] for event_id in polled] == [
        "device.claimed",
        "device.linked",
        "device.data",
        "device.unlinked",
        "device.linked",
        "device.data",
        "device.released",
        "device.unlinked",
    ]


def test_replay_sends_nothing_the_application_does_not_hear(owner, bob, device, code, apps_of_both, receiver):
    alice_app, bob_app = apps_of_both
    alices = event_record(device=device, type=DeviceEventType.DATA, data={})
    device_release(device=device, actor=owner, ip=IP)
    device_claim_by_code(user=bob, code=code.raw_code, application=bob_app, ip=IP)
    # A failed delivery of Alice's event to Bob's application, as a fan-out that chose receivers by
    # the links of the moment could have written.
    Delivery.objects.create(application=bob_app, event=alices, event_type=alices.type, status=DeliveryStatus.FAILED)
    assert fanout.deliveries_replay_failed(application=bob_app) == 0
    deliver_everything()
    assert str(alices.pk) not in {body["id"] for body in received(receiver, "/bob")}
