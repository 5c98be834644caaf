import io
import json
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import connection
from django.test import RequestFactory
from django.utils import timezone

from devices import outbox
from devices.command_queue import command_send
from devices.models import Command, CommandStatus, Device, DeviceEvent, DeviceStatus, Reading
from devices.protocol.views import DeviceCheckinApi

from .protocol_support import CHECKIN_URL, bearer, checkin, provision, provision_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(client, owned_device):
    return provision_token(client, owned_device)


def _snapshot(device):
    device.refresh_from_db()
    return (
        device.status,
        device.last_seen_at,
        device.last_ip,
        device.values,
        device.token_used_at,
        Reading.objects.filter(device=device).count(),
        DeviceEvent.objects.filter(device=device).count(),
    )


def test_checkin_updates_the_device_and_records_a_reading_and_events(client, owned_device, token):
    response = checkin(client, token, {"temperature": 21.5, "door": "open", "ok": True, "none": None})
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"commands": [], "next_checkin": owned_device.product.checkin_interval}
    owned_device.refresh_from_db()
    assert owned_device.status == DeviceStatus.ONLINE
    assert owned_device.last_ip == "127.0.0.1"
    assert owned_device.values == {"temperature": 21.5, "door": "open", "ok": True, "none": None}
    assert timezone.now() - owned_device.last_seen_at < timedelta(minutes=1)
    assert owned_device.token_used_at is not None
    reading = Reading.objects.get(device=owned_device)
    assert reading.values == owned_device.values
    assert reading.recorded_at == owned_device.last_seen_at
    events = {e.type: e for e in DeviceEvent.objects.filter(device=owned_device)}
    assert set(events) == {"device.data", "device.online"}
    assert events["device.data"].data["values"] == owned_device.values
    assert events["device.online"].data == {"previous_status": "never_seen"}


def test_second_checkin_records_only_data(client, owned_device, token):
    checkin(client, token)
    checkin(client, token, {"temperature": 22})
    types = list(DeviceEvent.objects.filter(device=owned_device).values_list("type", flat=True))
    assert sorted(types) == ["device.data", "device.data", "device.online"]
    assert Reading.objects.filter(device=owned_device).count() == 2


def test_offline_device_coming_back_records_device_online(client, owned_device, token):
    checkin(client, token)
    Device.objects.filter(pk=owned_device.pk).update(status=DeviceStatus.OFFLINE)
    DeviceEvent.objects.all().delete()
    checkin(client, token)
    online = DeviceEvent.objects.get(device=owned_device, type="device.online")
    assert online.data == {"previous_status": "offline"}


def test_checkin_uses_the_trusted_proxy_header_only_when_configured(client, owned_device, token, settings):
    checkin(client, token, HTTP_X_FORWARDED_FOR="203.0.113.9")
    owned_device.refresh_from_db()
    assert owned_device.last_ip == "127.0.0.1"
    settings.TRUSTED_PROXY_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    checkin(client, token, HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9")
    owned_device.refresh_from_db()
    assert owned_device.last_ip == "203.0.113.9"


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer nope", "Basic abc", "Bearer " + "x" * 300],
    ids=["none", "empty", "unknown", "basic", "long"],
)
def test_checkin_without_a_valid_token_gets_401(client, header):
    body = '{"values": {"t": 1}}'
    response = client.post(CHECKIN_URL, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="device"'


# Bad input changes nothing.

BAD_BODIES = {
    "malformed-json": b'{"values": {"t": 1}',
    "not-an-object": b"[1, 2]",
    "values-missing": b'{"temperature": 1}',
    "values-a-list": b'{"values": [1, 2]}',
    "values-a-string": b'{"values": "21.5"}',
    "nested-object": b'{"values": {"t": {"c": 1}}}',
    "nested-list": b'{"values": {"t": [1]}}',
    "long-string": json.dumps({"values": {"t": "x" * 257}}).encode(),
    "too-many-keys": json.dumps({"values": {f"k{i}": i for i in range(65)}}).encode(),
    "empty-key": b'{"values": {"": 1}}',
    "long-key": json.dumps({"values": {"k" * 65: 1}}).encode(),
    "nan": b'{"values": {"t": NaN}}',
    "infinity": b'{"values": {"t": 1e999}}',
    "nul-character": b'{"values": {"t": "a\\u0000b"}}',
    "lone-surrogate": b'{"values": {"t": "\\ud800"}}',
    "not-utf8": b'{"values": {"t": "\xff"}}',
    "deep-nesting": b"[" * 100_00 + b"]" * 100_00,
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_input_gets_400_and_changes_nothing(client, owned_device, token, body):
    checkin(client, token)
    before = _snapshot(owned_device)
    response = client.post(CHECKIN_URL, data=body, content_type="application/json", **bearer(token))
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert set(response.json()) == {"error"}
    assert _snapshot(owned_device) == before


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        (b'{"values": {"t": NaN}}', "malformed_json", "NaN, Infinity and numbers beyond"),
        (b'{"values": {"t": -Infinity}}', "malformed_json", "NaN, Infinity and numbers beyond"),
        (b'{"values": {"t": 1e999}}', "malformed_json", "NaN, Infinity and numbers beyond"),
        (b'{"values": {"t": "a\\u0000b"}}', "invalid_values", "must not hold NUL characters"),
        (b'{"values": {"a\\u0000b": 1}}', "invalid_values", "must not hold NUL characters"),
    ],
    ids=["nan", "minus-infinity", "overflow", "nul-in-value", "nul-in-name"],
)
def test_numbers_json_cannot_hold_and_nul_characters_get_the_documented_code_and_say_why(
    client, token, body, code, says
):
    response = client.post(CHECKIN_URL, data=body, content_type="application/json", **bearer(token))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["code"] == code
    assert says in json.dumps(response.json(), ensure_ascii=False)


def test_bad_input_before_first_use_does_not_mark_the_token_used(client, owned_device, token):
    response = client.post(CHECKIN_URL, data=b'{"values": []}', content_type="application/json", **bearer(token))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    owned_device.refresh_from_db()
    assert owned_device.token_used_at is None
    assert owned_device.status == DeviceStatus.NEVER_SEEN


def test_sixty_four_values_of_256_characters_are_accepted(client, token):
    values = {f"k{i:02}": "x" * 256 for i in range(64)}
    assert checkin(client, token, values).status_code == HTTPStatus.OK


def test_wrong_content_type_gets_415_and_changes_nothing(client, owned_device, token):
    before = _snapshot(owned_device)
    response = client.post(
        CHECKIN_URL, data="values=1", content_type="application/x-www-form-urlencoded", **bearer(token)
    )
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert _snapshot(owned_device) == before


def test_body_over_64_kib_gets_413(client, owned_device, token):
    before = _snapshot(owned_device)
    body = json.dumps({"values": {"t": 1}, "padding": "x" * 70_000})
    response = client.post(CHECKIN_URL, data=body, content_type="application/json", **bearer(token))
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert _snapshot(owned_device) == before


class _Unreadable(io.RawIOBase):
    def readinto(self, buffer):
        raise AssertionError("the body was read")


def test_declared_oversized_body_is_refused_before_it_is_read(token):
    request = RequestFactory().post(CHECKIN_URL, data=b"", content_type="application/json", **bearer(token))
    request.META["CONTENT_LENGTH"] = str(10 * 1024 * 1024)
    request.META["wsgi.input"] = _Unreadable()
    request._stream = _Unreadable()
    response = DeviceCheckinApi.as_view()(request)
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def test_body_is_read_no_further_than_the_limit(token, settings):
    settings.DEVICE_CHECKIN_MAX_BYTES = 100
    body = json.dumps({"values": {"t": "x" * 200}}).encode()
    request = RequestFactory().post(CHECKIN_URL, data=body, content_type="application/json", **bearer(token))
    request.META["CONTENT_LENGTH"] = "50"  # understated: the stream holds more
    request._stream = stream = io.BytesIO(body)
    response = DeviceCheckinApi.as_view()(request)
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert stream.tell() == 101


# Commands at check-in


def test_checkin_returns_pending_commands_and_marks_them_delivered(client, owned_device, token):
    command = command_send(device=owned_device, name="identify", params={"seconds": 5})
    response = checkin(client, token)
    assert response.json()["commands"] == [
        {
            "id": str(command.id),
            "name": "identify",
            "params": {"seconds": 5},
            "expires_at": command.expires_at.isoformat(),
        }
    ]
    command.refresh_from_db()
    assert command.status == CommandStatus.DELIVERED
    delivered = DeviceEvent.objects.filter(type="command.updated", data__status="delivered")
    assert delivered.count() == 1


def test_delivered_commands_are_handed_again_until_acknowledged(client, owned_device, token):
    command_send(device=owned_device, name="reboot")
    checkin(client, token)
    again = checkin(client, token).json()["commands"]
    assert [c["name"] for c in again] == ["reboot"]
    assert DeviceEvent.objects.filter(type="command.updated", data__status="delivered").count() == 1


def test_expired_and_finished_commands_are_not_handed_out(client, owned_device, token):
    expired = command_send(device=owned_device, name="reboot")
    Command.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    done = command_send(device=owned_device, name="identify")
    Command.objects.filter(pk=done.pk).update(status=CommandStatus.SUCCEEDED)
    assert checkin(client, token).json()["commands"] == []


def test_commands_are_handed_oldest_first(client, owned_device, token):
    names = ["reboot", "identify", "set_interval"]
    for name in names:
        command_send(device=owned_device, name=name, params={"seconds": 30} if name == "set_interval" else None)
    assert [c["name"] for c in checkin(client, token).json()["commands"]] == names


# Cost and side effects


def test_checkin_costs_a_handful_of_queries(client, owned_device, token, django_assert_max_num_queries):
    checkin(client, token)
    # PostgreSQL: 1 (UPDATE … RETURNING with the Reading and event INSERTs and the open commands).
    # Portable path: SAVEPOINT (the test's transaction; BEGIN in production), SELECT device,
    # UPDATE device, INSERT reading, INSERT events, SELECT open commands, RELEASE (COMMIT).
    with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 7):
        assert checkin(client, token).status_code == HTTPStatus.OK


def test_checkin_on_postgresql_is_one_statement(
    client, owned_device, token, requires_postgres, django_assert_num_queries
):
    checkin(client, token)
    with django_assert_num_queries(1):
        checkin(client, token)


def test_checkin_and_poll_statements_are_planned_once(client, owned_device, token, requires_postgres):
    # Planning the check-in costs PostgreSQL more than running it: the statement must stay
    # prepared on the connection, and after a few runs use one generic plan.
    for _ in range(8):
        assert checkin(client, token).status_code == HTTPStatus.OK
        assert provision(client, owned_device).json() == {"state": "provisioned"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans FROM pg_prepared_statements")
        prepared = cursor.fetchall()
    generic_plans = {("checkin" if "INSERT INTO" in statement else "poll"): plans for statement, plans in prepared}
    assert generic_plans["checkin"] >= 1
    assert generic_plans["poll"] >= 1


def test_checkins_of_an_online_device_leave_its_indexes_alone(client, token, requires_postgres):
    # A check-in that changes no indexed column is a HOT update: PostgreSQL rewrites the row in
    # place and none of the device table's indexes.
    assert checkin(client, token).status_code == HTTPStatus.OK  # the device comes online

    def hot_updates():
        with connection.cursor() as cursor:
            cursor.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
                           [Device._meta.db_table])
            return cursor.fetchone()

    updates_before, hot_before = hot_updates()
    for _ in range(3):
        assert checkin(client, token).status_code == HTTPStatus.OK
    updates, hot = hot_updates()
    assert (updates - updates_before, hot - hot_before) == (3, 3)


@pytest.mark.parametrize(("durable", "expected"), [(False, "off"), (True, "on")])
def test_checkin_commit_waits_for_the_flush_only_when_configured(
    client, token, settings, requires_postgres, durable, expected
):
    settings.DEVICE_CHECKIN_SYNCHRONOUS_COMMIT = durable
    assert checkin(client, token).status_code == HTTPStatus.OK
    # The test's transaction stands for the check-in's own: its setting is what the commit uses.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == expected


def test_checkin_schedules_the_relay_after_commit(client, token, monkeypatch, django_capture_on_commit_callbacks):
    published = []
    monkeypatch.setattr("devices.tasks.relay_outbox.apply_async", lambda **kw: published.append(kw))
    with django_capture_on_commit_callbacks(execute=True):
        checkin(client, token)
    assert published == [{"countdown": outbox.RELAY_DEBOUNCE_SECONDS}]


def test_checkins_are_limited_per_device(client, token, settings):
    settings.DEVICE_RATE_LIMIT_PER_DEVICE = 2
    assert [checkin(client, token).status_code for _ in range(3)] == [200, 200, 429]
    response = checkin(client, token)
    assert int(response["Retry-After"]) == response.json()["error"]["retry_after"] > 0


def test_checkins_are_limited_per_ip(client, token, settings):
    settings.DEVICE_RATE_LIMIT_PER_IP = 1
    assert checkin(client, token).status_code == HTTPStatus.OK
    assert checkin(client, "another-token").status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.django_db(transaction=True)
def test_checkin_survives_a_dropped_database_connection(client, owned_device, requires_postgres):
    import psycopg

    token = provision_token(client, owned_device)
    assert checkin(client, token).status_code == HTTPStatus.OK
    backend_pid = connection.connection.info.backend_pid
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        dbname=settings_dict["NAME"],
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
    assert checkin(client, token, {"temperature": 30}).status_code == HTTPStatus.OK
    owned_device.refresh_from_db()
    assert owned_device.values == {"temperature": 30}
    assert Reading.objects.filter(device=owned_device).count() == 2
