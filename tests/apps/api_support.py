"""Helpers for the integrator API tests: applications with a known Secret, links, the Basic header."""

import base64

from apps.models import AppLink

from ..factories import ApplicationFactory


def make_application(owner=None, **fields):
    """An application whose raw Secret is on `raw_secret` (the database has only its digest)."""
    return ApplicationFactory(owner=owner, **fields)


def link(application, *devices):
    AppLink.objects.bulk_create([AppLink(application=application, device=device) for device in devices])


def basic_header(app_id, secret) -> dict:
    """Test-client keyword arguments for `Authorization: Basic base64(AppId:Secret)`."""
    token = base64.b64encode(f"{app_id}:{secret}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def auth(application) -> dict:
    return basic_header(application.app_id, application.raw_secret)


def api_world_make(owner):
    """An application with linked devices that have readings, commands and events, a connected
    user, and an unclaimed device behind the claim code AAAAA-BBBBB: something for every endpoint."""
    from apps.models import Connection
    from devices.command_queue import command_send
    from devices.models import DeviceEvent, DeviceEventType, Reading

    from ..factories import ClaimCodeFactory, DeviceFactory, UserFactory

    application = make_application(owner)
    devices = [DeviceFactory(owner=owner, values={"t": n}) for n in range(3)]
    link(application, *devices)
    for device in devices:
        Reading.objects.create(device=device, recorded_at=device.created_at, values={"t": 1})
        command_send(device=device, name="reboot", sent_by_app=application.app_id)
        DeviceEvent.objects.create(device=device, type=DeviceEventType.ONLINE, created_at=device.created_at)
    Connection.objects.create(application=application, user=UserFactory(email="bob@example.com"))
    DeviceFactory(claim_code=ClaimCodeFactory(raw_code="AAAAABBBBB"))
    return application, devices
