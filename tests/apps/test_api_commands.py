"""Integrator API: POST/GET /devices/<id>/commands and GET /devices/<id>/commands/<cid>."""

import uuid
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone

from devices.command_queue import command_send
from devices.models import Command, CommandStatus, DeviceEvent, DeviceEventType

from ..factories import DeviceFactory
from .api_support import auth, basic_header, link, make_application

pytest_plugins = ["tests.apps.api_fixtures"]


def commands_url(device_id):
    return f"/api/v1/devices/{device_id}/commands"


def command_url(device_id, command_id):
    return f"/api/v1/devices/{device_id}/commands/{command_id}"


def send(client, device_id, body, credentials):
    return client.post(commands_url(device_id), body, content_type="application/json", **credentials)


def test_send_queues_the_command(client, application, app_auth, linked_device):
    before = timezone.now()
    response = send(client, linked_device.pk, {"name": "set_interval", "params": {"seconds": 30}, "ttl": 600}, app_auth)
    assert response.status_code == HTTPStatus.CREATED
    body = response.json()
    command = Command.objects.get()
    assert body["id"] == str(command.pk)
    assert body["status"] == "pending"
    assert body["params"] == {"seconds": 30}
    assert response["Location"] == command_url(linked_device.pk, command.pk)
    assert command.sent_by_app == application.app_id
    assert command.sent_by_user is None
    assert before + timedelta(seconds=599) < command.expires_at <= timezone.now() + timedelta(seconds=600)


def test_send_records_a_command_updated_event(client, app_auth, linked_device):
    send(client, linked_device.pk, {"name": "reboot"}, app_auth)
    event = DeviceEvent.objects.get(device=linked_device, type=DeviceEventType.COMMAND_UPDATED)
    assert event.data["status"] == "pending"


def test_params_and_ttl_are_optional(client, app_auth, linked_device):
    body = send(client, linked_device.pk, {"name": "reboot"}, app_auth).json()
    assert body["params"] == {}


def test_unknown_command_name_is_a_400_naming_the_field(client, app_auth, linked_device):
    response = send(client, linked_device.pk, {"name": "self_destruct"}, app_auth)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    error = response.json()["error"]
    assert error["code"] == "unknown_command"
    assert "name" in error["fields"]
    assert not Command.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": 5}, "name"),
        ({"name": "reboot", "params": [1, 2]}, "params"),
        ({"name": "reboot", "params": {"nested": {"a": 1}}}, "params"),
        ({"name": "reboot", "params": "text"}, "params"),
        ({"name": "reboot", "ttl": 0}, "ttl"),
        ({"name": "reboot", "ttl": 7 * 24 * 3600 + 1}, "ttl"),
        ({"name": "reboot", "ttl": "soon"}, "ttl"),
        ('{"name": "reboot", "ttl": 1e999}', "ttl"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, app_auth, linked_device, body, field):
    response = send(client, linked_device.pk, body, app_auth)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert field in response.json()["error"]["fields"]
    assert not Command.objects.exists()


def test_send_to_a_hidden_device_is_404(client, owner, other_owner, app_auth, other_application):
    for device_id in (
        DeviceFactory(owner=owner).pk,  # the owner's, not linked
        _linked(other_application, DeviceFactory(owner=other_owner)).pk,  # another application's
        uuid.uuid4(),
    ):
        response = send(client, device_id, {"name": "reboot"}, app_auth)
        assert response.status_code == HTTPStatus.NOT_FOUND
    assert not Command.objects.exists()


def _linked(application, device):
    link(application, device)
    return device


def test_send_needs_credentials(client, application, linked_device):
    assert send(client, linked_device.pk, {"name": "reboot"}, {}).status_code == HTTPStatus.UNAUTHORIZED
    wrong = basic_header(application.app_id, "wrong")
    assert send(client, linked_device.pk, {"name": "reboot"}, wrong).status_code == HTTPStatus.UNAUTHORIZED
    assert not Command.objects.exists()


def test_send_is_throttled(client, app_auth, linked_device, settings):
    settings.API_THROTTLE_RATE = "1/minute"
    assert send(client, linked_device.pk, {"name": "reboot"}, app_auth).status_code == HTTPStatus.CREATED
    response = send(client, linked_device.pk, {"name": "reboot"}, app_auth)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "Retry-After" in response
    assert Command.objects.count() == 1


# --- follow ----------------------------------------------------------------------------------------


def test_list_shows_the_applications_own_commands_newest_first(client, owner, application, app_auth, linked_device):
    first = command_send(device=linked_device, name="reboot", sent_by_app=application.app_id)
    second = command_send(device=linked_device, name="identify", sent_by_app=application.app_id)
    command_send(device=linked_device, name="reboot", sent_by_user=owner)  # the owner's own
    command_send(device=linked_device, name="reboot", sent_by_app="another-app")
    rows = client.get(commands_url(linked_device.pk), **app_auth).json()["results"]
    assert [row["id"] for row in rows] == [str(second.pk), str(first.pk)]


def test_detail_follows_the_status_and_result(client, application, app_auth, linked_device):
    command = command_send(device=linked_device, name="reboot", sent_by_app=application.app_id)
    Command.objects.filter(pk=command.pk).update(status=CommandStatus.SUCCEEDED, result={"uptime": 3})
    body = client.get(command_url(linked_device.pk, command.pk), **app_auth).json()
    assert body["status"] == "succeeded"
    assert body["result"] == {"uptime": 3}


def test_detail_of_another_senders_command_is_404(client, owner, app_auth, linked_device):
    command = command_send(device=linked_device, name="reboot", sent_by_user=owner)
    response = client.get(command_url(linked_device.pk, command.pk), **app_auth)
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["error"]["code"] == "command_not_found"


def test_detail_through_another_device_is_404(client, owner, application, app_auth, linked_device):
    other = DeviceFactory(owner=owner)
    link(application, other)
    command = command_send(device=other, name="reboot", sent_by_app=application.app_id)
    response = client.get(command_url(linked_device.pk, command.pk), **app_auth)
    assert response.status_code == HTTPStatus.NOT_FOUND


def test_commands_of_an_unlinked_device_are_404(client, owner, application, linked_device):
    stranger = make_application(owner)
    command = command_send(device=linked_device, name="reboot", sent_by_app=application.app_id)
    for url in (commands_url(linked_device.pk), command_url(linked_device.pk, command.pk)):
        assert client.get(url, **auth(stranger)).status_code == HTTPStatus.NOT_FOUND


def test_nonexistent_command_is_404(client, app_auth, linked_device):
    response = client.get(command_url(linked_device.pk, uuid.uuid4()), **app_auth)
    assert response.status_code == HTTPStatus.NOT_FOUND


def test_follow_needs_credentials(client, application, linked_device):
    command = command_send(device=linked_device, name="reboot", sent_by_app=application.app_id)
    assert client.get(commands_url(linked_device.pk)).status_code == HTTPStatus.UNAUTHORIZED
    wrong = basic_header(application.app_id, "wrong")
    assert client.get(command_url(linked_device.pk, command.pk), **wrong).status_code == HTTPStatus.UNAUTHORIZED


@pytest.mark.parametrize("page_size", [10, 100])
def test_list_query_count_does_not_grow_with_page_size(
    client, application, app_auth, linked_device, page_size, django_assert_max_num_queries
):
    for _ in range(110):
        command_send(device=linked_device, name="reboot", sent_by_app=application.app_id)
    # 1: the application; 2: the device through its link; 3: one page of commands.
    with django_assert_max_num_queries(3):
        response = client.get(commands_url(linked_device.pk), {"limit": page_size}, **app_auth)
    assert len(response.json()["results"]) == page_size


def test_send_query_count(client, app_auth, linked_device, django_assert_max_num_queries):
    # application, device, savepoint pair, command insert, event insert: no per-link or per-app work.
    with django_assert_max_num_queries(6):
        send(client, linked_device.pk, {"name": "reboot"}, app_auth)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "set_interval"}, "params.seconds"),
        ({"name": "set_interval", "params": {}}, "params.seconds"),
        ({"name": "set_interval", "params": {"seconds": "abc"}}, "params.seconds"),
        ({"name": "set_interval", "params": {"seconds": "30"}}, "params.seconds"),
        ({"name": "set_interval", "params": {"seconds": 0}}, "params.seconds"),
        ({"name": "set_interval", "params": {"seconds": 86_401}}, "params.seconds"),
        ({"name": "set_interval", "params": {"seconds": 2.5}}, "params.seconds"),
        ({"name": "set_interval", "params": {"seconds": True}}, "params.seconds"),
        ({"name": "set_interval", "params": {"seconds": 30, "speed": 1}}, "params.speed"),
        ({"name": "identify", "params": {"seconds": 601}}, "params.seconds"),
        ({"name": "reboot", "params": {"force": True}}, "params.force"),
    ],
)
def test_params_that_do_not_fit_the_commands_declaration_are_a_400_naming_them(
    client, app_auth, linked_device, body, field
):
    response = send(client, linked_device.pk, body, app_auth)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert not Command.objects.exists()


def test_declared_params_are_stored_with_their_defaults(client, app_auth, linked_device):
    assert send(client, linked_device.pk, {"name": "identify"}, app_auth).json()["params"] == {"seconds": 10}
    body = send(client, linked_device.pk, {"name": "set_interval", "params": {"seconds": 30.0}}, app_auth).json()
    assert body["params"] == {"seconds": 30}


def test_an_undeclared_product_command_takes_any_flat_params(client, app_auth, linked_device):
    linked_device.product.commands = ["open_door"]
    linked_device.product.save(update_fields=["commands"])
    body = send(client, linked_device.pk, {"name": "open_door", "params": {"door": "front"}}, app_auth).json()
    assert body["params"] == {"door": "front"}


def test_the_schema_documents_each_commands_parameters(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    params = schema["components"]["schemas"]["CommandSendInputRequest"]["properties"]["params"]["description"]
    assert "set_interval: seconds (a whole number from 1 to 86 400, required)" in params
    assert "identify: seconds (a whole number from 1 to 600, default 10)" in params
