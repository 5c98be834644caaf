"""command.updated is heard only by the application that sent the command, on webhooks (to a real
receiver) and in GET /api/v1/events alike; an owner's commands are heard by none."""

import json

from django.test import Client

from apps.models import Delivery, DeliveryStatus
from apps.services import links, sending
from devices.command_queue import command_send
from devices.models import DeviceEventType
from devices.outbox import relay_all

from ..devices.protocol_support import checkin, provision_token
from ..factories import ApplicationFactory, DeviceFactory
from .api_support import auth
from .conftest import hook_url


def deliver_everything():
    relay_all()
    for delivery in Delivery.objects.filter(status=DeliveryStatus.PENDING).order_by("pk"):
        sending.delivery_send(delivery_id=delivery.pk, lease=delivery.next_attempt_at)


def command_ids_polled(application):
    rows = Client().get("/api/v1/events", **auth(application)).json()["results"]
    return [row["data"]["command_id"] for row in rows if row["type"] == DeviceEventType.COMMAND_UPDATED]


def test_an_application_hears_only_of_its_own_commands(client, owner, receiver, private_targets):
    receiver.expect_request("/mine").respond_with_data("ok")
    receiver.expect_request("/other").respond_with_data("ok")
    sender = ApplicationFactory(owner=owner, callback_url=hook_url(receiver, "/mine"))
    other = ApplicationFactory(owner=owner, callback_url=hook_url(receiver, "/other"))
    device = DeviceFactory(owner=owner, product__commands=["reboot", "identify"])
    for application in (sender, other):
        links.device_link(device=device, application=application, actor=owner)
    command_send(device=device, name="reboot", sent_by_user=owner)
    mine = command_send(device=device, name="identify", params={"seconds": 5}, sent_by_app=sender.app_id)
    assert checkin(client, provision_token(client, device)).status_code == 200  # both become delivered

    deliver_everything()

    hooked = {
        path: [
            (body["data"]["command_id"], body["data"]["status"])
            for request, _ in receiver.log
            if request.path == path and (body := json.loads(request.get_data()))["type"] == "command.updated"
        ]
        for path in ("/mine", "/other")
    }
    assert hooked == {"/mine": [(str(mine.pk), "pending"), (str(mine.pk), "delivered")], "/other": []}
    assert command_ids_polled(sender) == [str(mine.pk), str(mine.pk)]
    assert command_ids_polled(other) == []
