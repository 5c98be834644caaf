"""The bridge's handling of each message, without a broker: the same services and rules as HTTP."""

import json
import uuid

import pytest

from devices.command_queue import command_send, commands_mark_pushed
from devices.models import Command, CommandStatus, DeviceEvent, DeviceEventType, DeviceStatus, Reading
from devices.mqtt import ingest, topics
from devices.stale import device_mark_offline

from ...factories import DeviceFactory, ProductFactory


@pytest.fixture
def certified(owner):
    product = ProductFactory(slug="thermo", name="Thermo", commands=["reboot"])
    return DeviceFactory(serial="MQ-1", product=product, owner=owner, certificate_serial="ab12")


def handle(topic, body):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ingest.message_handle(topic=topic, payload=payload)


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("devices/SN1/checkin", ("checkin", "SN1", None)),
        ("devices/SN1/status", ("status", "SN1", None)),
        (
            "devices/SN1/commands/0b6c1b8e-7a4e-4c3a-9d59-7e2f9f1f6a10/result",
            ("result", "SN1", uuid.UUID("0b6c1b8e-7a4e-4c3a-9d59-7e2f9f1f6a10")),
        ),
        ("devices/SN1/commands/not-a-uuid/result", None),
        ("devices/SN1/checkin/extra", None),
        ("devices//checkin", None),
        ("other/SN1/checkin", None),
    ],
)
def test_topics_parse_only_the_bridges_topics(topic, parsed):
    assert topics.parse(topic) == parsed


def test_a_check_in_stores_the_values_and_hands_the_open_commands(certified, owner):
    command = command_send(device=certified, name="reboot", sent_by_user=owner)

    replies = handle(topics.checkin("MQ-1"), {"values": {"temperature": 20.5}})

    assert Reading.objects.get(device=certified).values == {"temperature": 20.5}
    assert [(t, json.loads(p)["id"]) for t, p in replies] == [(topics.commands("MQ-1"), str(command.id))]
    assert Command.objects.get(pk=command.pk).status == CommandStatus.DELIVERED


def test_a_check_in_keeps_the_devices_last_address(certified):
    certified.last_ip = "203.0.113.9"
    certified.save(update_fields=["last_ip"])

    handle(topics.checkin("MQ-1"), {"values": {}})

    certified.refresh_from_db()
    assert certified.status == DeviceStatus.ONLINE
    assert certified.last_ip == "203.0.113.9"  # the broker's address is not the device's


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b'{"values": {"t": NaN}}', b'{"values": [1]}', b"{}", b"x" * (64 * 1024 + 1)],
)
def test_an_invalid_check_in_is_dropped_without_writing(certified, payload):
    assert handle(topics.checkin("MQ-1"), payload) == []
    assert not Reading.objects.exists()
    assert not DeviceEvent.objects.exists()


def test_a_device_without_a_certificate_in_force_is_refused(certified):
    certified.certificate_serial = ""  # reset or revoked; the broker may not have ended its session yet
    certified.save(update_fields=["certificate_serial"])

    handle(topics.checkin("MQ-1"), {"values": {"t": 1}})

    assert not Reading.objects.exists()


def test_check_ins_are_rate_limited_per_device(certified, settings):
    settings.DEVICE_RATE_LIMIT_PER_DEVICE = 2
    for n in range(4):
        handle(topics.checkin("MQ-1"), {"values": {"n": n}})
    assert Reading.objects.count() == 2


def test_a_result_acknowledges_the_command(certified, owner):
    command = command_send(device=certified, name="reboot", sent_by_user=owner)

    handle(topics.command_result("MQ-1", command.id), {"status": "failed", "result": {"error": "busy"}})

    command.refresh_from_db()
    assert (command.status, command.result) == (CommandStatus.FAILED, {"error": "busy"})


def test_a_result_for_another_devices_command_is_refused(certified, owner):
    other = DeviceFactory(product=certified.product, owner=owner, certificate_serial="cd34")
    command = command_send(device=other, name="reboot", sent_by_user=owner)

    handle(topics.command_result("MQ-1", command.id), {"status": "succeeded"})

    assert Command.objects.get(pk=command.pk).status == CommandStatus.PENDING


def test_the_will_marks_an_online_device_offline_with_its_event(certified):
    handle(topics.checkin("MQ-1"), {"values": {}})

    handle(topics.status("MQ-1"), topics.OFFLINE_PAYLOAD)

    certified.refresh_from_db()
    assert certified.status == DeviceStatus.OFFLINE
    event = DeviceEvent.objects.get(device=certified, type=DeviceEventType.OFFLINE)
    assert event.data == {"last_seen_at": certified.last_seen_at.isoformat(), "previous_status": DeviceStatus.ONLINE}


def test_a_repeated_will_records_nothing_more(certified):
    handle(topics.checkin("MQ-1"), {"values": {}})
    assert device_mark_offline(serial="MQ-1")
    assert not device_mark_offline(serial="MQ-1")
    assert DeviceEvent.objects.filter(type=DeviceEventType.OFFLINE).count() == 1


def test_a_pushed_command_becomes_delivered_once(certified, owner):
    command = command_send(device=certified, name="reboot", sent_by_user=owner)

    assert commands_mark_pushed(command_ids=[command.pk]) == 1
    assert commands_mark_pushed(command_ids=[command.pk]) == 0

    assert Command.objects.get(pk=command.pk).status == CommandStatus.DELIVERED
    statuses = [e.data["status"] for e in DeviceEvent.objects.filter(type=DeviceEventType.COMMAND_UPDATED)]
    assert sorted(statuses) == [CommandStatus.DELIVERED, CommandStatus.PENDING]


def test_with_mqtt_on_a_new_command_has_the_relay_run_at_once(certified, owner, settings, monkeypatch,
                                                               django_capture_on_commit_callbacks):
    from devices import tasks

    published = []
    monkeypatch.setattr(tasks.relay_outbox, "apply_async", lambda *a, **kw: published.append(kw))
    settings.MQTT_BRIDGE_PASSWORD = "on"

    with django_capture_on_commit_callbacks(execute=True):
        command_send(device=certified, name="reboot", sent_by_user=owner)

    assert {} in published  # no countdown: the push does not wait for the debounce


def test_a_copy_of_a_check_in_with_an_id_is_stored_once(certified):
    body = {"id": "boot-7/42", "values": {"t": 1}}

    handle(topics.checkin("MQ-1"), body)
    handle(topics.checkin("MQ-1"), body)  # QoS 1 resent
    ingest.messages_handle([(topics.checkin("MQ-1"), json.dumps({**body, "id": "boot-7/43"}).encode())] * 2)

    assert Reading.objects.filter(device=certified).count() == 2


def test_check_ins_without_an_id_are_each_stored(certified):
    handle(topics.checkin("MQ-1"), {"values": {"t": 1}})
    handle(topics.checkin("MQ-1"), {"values": {"t": 1}})
    assert Reading.objects.filter(device=certified).count() == 2


def test_a_batch_keeps_the_order_of_a_check_in_and_the_will_after_it(certified):
    ingest.messages_handle(
        [(topics.checkin("MQ-1"), json.dumps({"values": {"t": 1}}).encode()), (topics.status("MQ-1"), b"offline")]
    )

    certified.refresh_from_db()
    assert certified.status == DeviceStatus.OFFLINE


def test_the_bridge_drops_only_the_message_the_database_refuses(certified, monkeypatch):
    from types import SimpleNamespace

    from django.db import DataError

    from devices.mqtt.bridge import Bridge

    def refuse_the_poison(*, topic, payload):
        if b"poison" in payload:
            raise DataError("refused")
        return []

    monkeypatch.setattr(ingest, "message_handle", refuse_the_poison)
    monkeypatch.setattr(ingest, "messages_handle", lambda messages: (_ for _ in ()).throw(DataError("refused")))
    bridge = Bridge(client_id="test", watch=False)
    acked = []
    monkeypatch.setattr(bridge.client, "ack", lambda mid, qos: acked.append(mid))
    payloads = [b"{}", b"poison"]
    batch = [SimpleNamespace(topic=topics.checkin("MQ-1"), payload=p, qos=1, mid=n) for n, p in enumerate(payloads)]

    bridge._handle(batch)

    assert acked == [0, 1] and bridge.handled == 2  # the poison is logged and dropped, not retried for ever
