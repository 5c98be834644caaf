"""A delivery shows and sends the device's name as it was when the event happened, even when it is
retried or replayed after the device changed owner."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.models import Delivery
from apps.services import links, sending
from claiming.services import device_claim_by_code, device_release
from devices.models import DeviceEvent, DeviceEventType
from devices.outbox import event_record, relay_all
from devices.services import device_rename
from devices.stale import devices_mark_stale

from ..devices.protocol_support import checkin, provision_token
from ..factories import ApplicationFactory, ClaimCodeFactory, DeviceFactory, UserFactory
from .api_support import auth
from .conftest import hook_url

IP = "198.51.100.1"


def test_a_retry_after_a_change_of_owner_sends_the_name_of_the_events_time(
    client, owner, receiver, private_targets
):
    code = ClaimCodeFactory()
    device = DeviceFactory(owner=owner, claim_code=code, owned_since=timezone.now())
    application = ApplicationFactory(owner=owner, callback_url=hook_url(receiver))
    links.device_link(device=device, application=application, actor=owner)
    device_rename(device=device, name="Kitchen")
    event = event_record(device=device, type=DeviceEventType.DATA, data={"values": {"t": 1}})
    receiver.expect_oneshot_request("/hook").respond_with_data("", status=500)
    receiver.expect_request("/hook").respond_with_data("ok")
    relay_all()
    delivery = Delivery.objects.get(application=application, event=event)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        sending.delivery_send(delivery_id=delivery.pk, lease=delivery.next_attempt_at)
        delivery.refresh_from_db()
        # Alice resets the device; Bob claims it and names it.
        device_release(device=device, actor=owner, ip=IP)
        bob = UserFactory(email="bob@example.com")
        device_claim_by_code(user=bob, code=code.raw_code, ip=IP)
        device.refresh_from_db()
        device_rename(device=device, name="Bob's garage")
        clock.move_to(delivery.next_attempt_at)
        sending.delivery_send(delivery_id=delivery.pk, lease=delivery.next_attempt_at)

    bodies = [json.loads(request.get_data()) for request, _ in receiver.log]
    assert [body["id"] for body in bodies] == [str(event.pk)] * 2  # the attempt, then the retry
    assert [body["device"]["name"] for body in bodies] == ["Kitchen", "Kitchen"]
    client.force_login(owner)
    page = client.get(f"/apps/{application.app_id}/").content.decode()
    assert "Kitchen" in page and "Bob&#x27;s garage" not in page
    polled = client.get("/api/v1/events", **auth(application)).json()["results"]
    assert {row["device"]["name"] for row in polled if row["id"] == str(event.pk)} == {"Kitchen"}


@pytest.mark.django_db(transaction=True)
def test_check_ins_and_the_stale_sweep_record_the_name_of_the_moment(client, owner):
    device = DeviceFactory(owner=owner, name="Porch", product__offline_after=60)
    assert checkin(client, provision_token(client, device)).status_code == 200
    device_rename(device=device, name="Attic")
    devices_mark_stale(now=timezone.now() + timedelta(minutes=10))
    names = dict(DeviceEvent.objects.values_list("type", "device_name"))
    assert names == {"device.data": "Porch", "device.online": "Porch", "device.offline": "Attic"}
