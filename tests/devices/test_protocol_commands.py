import json
from http import HTTPStatus

import pytest
from django.urls import reverse

from devices.command_queue import command_send
from devices.models import CommandStatus

from ..factories import DeviceFactory
from .protocol_support import COMMANDS_URL, bearer, provision_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(client, owned_device):
    return provision_token(client, owned_device)


def ack(client, token, command_id, body):
    return client.post(
        reverse("device-protocol:command-ack", args=[command_id]),
        data=json.dumps(body),
        content_type="application/json",
        **bearer(token),
    )


def test_fetch_returns_open_commands_and_marks_them_delivered(client, owned_device, token):
    command = command_send(device=owned_device, name="set_interval", params={"seconds": 10})
    response = client.get(COMMANDS_URL, **bearer(token))
    assert response.status_code == HTTPStatus.OK
    assert [(c["id"], c["params"]) for c in response.json()["commands"]] == [(str(command.id), {"seconds": 10})]
    command.refresh_from_db()
    assert command.status == CommandStatus.DELIVERED


def test_fetch_counts_as_the_tokens_first_use(client, owned_device, token):
    client.get(COMMANDS_URL, **bearer(token))
    owned_device.refresh_from_db()
    assert owned_device.token_used_at is not None


def test_fetch_needs_a_valid_token(client):
    assert client.get(COMMANDS_URL, **bearer("nope")).status_code == HTTPStatus.UNAUTHORIZED


def test_ack_completes_a_command(client, owned_device, token):
    command = command_send(device=owned_device, name="reboot")
    response = ack(client, token, command.id, {"status": "succeeded", "result": {"took_ms": 12}})
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"id": str(command.id), "status": "succeeded"}
    command.refresh_from_db()
    assert command.result == {"took_ms": 12}


def test_ack_of_another_devices_command_is_404(client, token):
    other = command_send(device=DeviceFactory(), name="reboot")
    response = ack(client, token, other.id, {"status": "succeeded"})
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["error"]["code"] == "command_not_found"


def test_ack_with_an_unknown_status_is_400(client, owned_device, token):
    command = command_send(device=owned_device, name="reboot")
    response = ack(client, token, command.id, {"status": "done"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "status" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "result", ['{"log": "a\\u0000b"}', '{"\\u0000": 1}', '{"log": ["\\ud800"]}', '{"deep": {"log": "\\udfff"}}']
)
def test_ack_with_text_no_database_can_store_is_400_and_changes_nothing(client, owned_device, token, result):
    command = command_send(device=owned_device, name="reboot")
    response = client.post(
        reverse("device-protocol:command-ack", args=[command.id]),
        data='{"status": "succeeded", "result": ' + result + "}",
        content_type="application/json",
        **bearer(token),
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "result" in response.json()["error"]["fields"]
    command.refresh_from_db()
    assert command.status != CommandStatus.SUCCEEDED


def test_ack_with_a_deeply_nested_result_is_stored(client, owned_device, token):
    command = command_send(device=owned_device, name="reboot")
    deep = '{"a": ' * 400 + "1" + "}" * 400
    response = client.post(
        reverse("device-protocol:command-ack", args=[command.id]),
        data='{"status": "succeeded", "result": ' + deep + "}",
        content_type="application/json",
        **bearer(token),
    )
    assert response.status_code == HTTPStatus.OK
    command.refresh_from_db()
    assert command.status == CommandStatus.SUCCEEDED


def test_changing_a_final_outcome_is_409(client, owned_device, token):
    command = command_send(device=owned_device, name="reboot")
    ack(client, token, command.id, {"status": "failed"})
    assert ack(client, token, command.id, {"status": "failed"}).status_code == HTTPStatus.OK
    assert ack(client, token, command.id, {"status": "succeeded"}).status_code == HTTPStatus.CONFLICT


def test_ack_needs_a_json_body(client, owned_device, token):
    command = command_send(device=owned_device, name="reboot")
    response = client.post(
        reverse("device-protocol:command-ack", args=[command.id]),
        data="status=succeeded",
        **bearer(token),
        content_type="text/plain",
    )
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE


def test_command_endpoints_are_rate_limited(client, token, settings):
    settings.DEVICE_RATE_LIMIT_PER_DEVICE = 1
    assert client.get(COMMANDS_URL, **bearer(token)).status_code == HTTPStatus.OK
    response = client.get(COMMANDS_URL, **bearer(token))
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "Retry-After" in response


def test_device_protocol_is_in_the_openapi_schema(client):
    schema = client.get(reverse("api-schema"), {"format": "json"}).json()
    paths = schema["paths"]
    assert {
        "/device/v1/provision",
        "/device/v1/checkin",
        "/device/v1/commands",
        "/device/v1/commands/{command_id}",
    } <= set(paths)
    assert paths["/device/v1/provision"]["post"]["security"] == [{"deviceFactoryKey": []}]
    assert paths["/device/v1/checkin"]["post"]["security"] == [{"deviceToken": []}]
    assert schema["components"]["securitySchemes"]["deviceToken"]["scheme"] == "bearer"
