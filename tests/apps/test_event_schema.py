"""Every event type, recorded by the code that really writes it, fits the OpenAPI schema: as a webhook
body (`webhooks.deviceEvent`, ping included) and as a row of GET /api/v1/events. A key in an event's
`data` that the schema does not declare, or a type it does not list, fails here."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from jsonschema import Draft202012Validator

from apps.services import fanout, links
from claiming.services import device_claim_by_code, device_release
from devices.command_queue import command_send
from devices.models import Device, DeviceEventType
from devices.stale import devices_mark_stale

from ..devices.protocol_support import bearer, checkin, provision_token
from ..factories import ApplicationFactory, ClaimCodeFactory, DeviceFactory
from .api_support import auth
from .conftest import hook_url
from .test_hearing import deliver_everything, received

pytestmark = pytest.mark.django_db
EVENTS_URL = reverse("apps-api:event-list")


def _validator(client, component):
    schema = client.get("/api/schema/?format=json").json()
    properties = {"additionalProperties": False}  # closed objects: an undeclared key is a failure
    for name, definition in schema["components"]["schemas"].items():
        if definition.get("type") == "object" and "properties" in definition and name.endswith(("Data", "Event")):
            definition.update(properties)
    return Draft202012Validator({"$ref": f"#/components/schemas/{component}", "components": schema["components"]})


def _every_event_type(client, owner, application):
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code, product__commands=["reboot", "set_interval"])
    device_claim_by_code(user=owner, code=code.raw_code, application=application, ip="198.51.100.1")
    device.refresh_from_db()
    token = provision_token(client, device)
    checkin(client, token, {"temperature": 21.5, "door": "open", "ok": True})
    a_day_ago = timezone.now() - timedelta(days=1)
    Device.objects.filter(pk=device.pk).update(last_seen_at=a_day_ago, stale_check_at=a_day_ago)
    assert devices_mark_stale() == 1
    command = command_send(device=device, name="set_interval", params={"seconds": 30}, sent_by_app=application.app_id)
    checkin(client, token, {"temperature": 22})  # back online; the command is delivered
    ack = client.post(
        reverse("device-protocol:command-ack", args=[command.pk]), {"status": "succeeded", "result": {"ok": 1}},
        content_type="application/json", **bearer(token),
    )
    assert ack.status_code == 200, ack.content
    links.device_unlink(device=device, application=application, actor=owner)
    links.device_link(device=device, application=application, actor=owner)
    device_release(device=device, actor=owner, ip="198.51.100.1")
    fanout.delivery_send_test(application=application)


def test_every_webhook_body_and_every_event_row_fits_the_schema(client, owner, receiver, private_targets):
    receiver.expect_request("/hook").respond_with_data("ok")
    application = ApplicationFactory(owner=owner, callback_url=hook_url(receiver, "/hook"))
    _every_event_type(client, owner, application)
    deliver_everything()

    bodies = received(receiver, "/hook")
    webhook = _validator(client, "Webhook")
    for body in bodies:
        assert not list(webhook.iter_errors(body)), (body, [e.message for e in webhook.iter_errors(body)])
    assert {body["type"] for body in bodies} == {*DeviceEventType.values, "ping"}

    rows = client.get(EVENTS_URL, {"since": (timezone.now() - timedelta(hours=1)).isoformat()}, **auth(application))
    event = _validator(client, "Event")
    for row in rows.json()["results"]:
        assert not list(event.iter_errors(row)), (row, [e.message for e in event.iter_errors(row)])
    assert {row["type"] for row in rows.json()["results"]} == set(DeviceEventType.values)
    # The same events, ping aside.
    assert [row["id"] for row in rows.json()["results"]] == [b["id"] for b in bodies if b["type"] != "ping"]


def test_a_data_key_the_schema_does_not_declare_is_caught(client):
    webhook = _validator(client, "Webhook")
    body = {
        "id": "0b9f6c4e-8f38-4a4e-a1d4-9a1c2d3e4f50", "type": "device.released", "created_at": "2026-01-01T00:00:00Z",
        "device": {"id": "6f1c2b0e-3d5a-4b7e-9a61-2f4c8d0e1a77", "serial": "S", "product": "p", "name": ""},
        "data": {"reason": "reset", "previous_owner": "alice@example.com"},
    }
    assert list(webhook.iter_errors(body))
    del body["data"]["previous_owner"]
    assert not list(webhook.iter_errors(body))
    assert json.dumps(body)
