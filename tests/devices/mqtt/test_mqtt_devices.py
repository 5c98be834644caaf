"""Devices on MQTT, end to end: a real Mosquitto with the portal's configuration, the bridge, and
devices connecting with the certificates the portal issued from their CSRs (issue #20)."""

import json
import time

import pytest
from django.urls import reverse

from claiming.services import device_release
from devices import outbox
from devices.command_queue import command_send
from devices.models import Command, CommandStatus, DeviceEvent, DeviceEventType, DeviceStatus, Reading
from devices.mqtt import topics
from devices.services import device_credentials_revoke

from ...factories import ProductFactory
from .conftest import WAIT, MqttDevice, wait_until

# The bridge's revocation watch looks every 5 s; the issue allows 60 s for the session to end.
REVOCATION_DEADLINE = 60


def test_check_in_over_mqtt_stores_the_values_the_owner_sees(provisioned, bridge, owner_client):
    device = provisioned()
    assert device.connect()

    device.checkin({"temperature": 21.5, "door": "open"})

    reading = wait_until(lambda: Reading.objects.filter(device=device.device).first())
    assert reading.values == {"temperature": 21.5, "door": "open"}
    device.device.refresh_from_db()
    assert device.device.status == DeviceStatus.ONLINE
    assert device.device.token_used_at is not None  # the credentials are in use: provisioning is over
    assert DeviceEvent.objects.filter(device=device.device, type=DeviceEventType.DATA).count() == 1
    page = owner_client.get(reverse("devices:detail", args=[device.device.pk]))
    assert "21.5" in page.content.decode()
    device.close()


def test_a_command_reaches_the_device_at_once_and_its_result_is_recorded(provisioned, bridge, owner, owner_client):
    device = provisioned()
    assert device.connect()
    device.checkin({"temperature": 20})
    wait_until(lambda: Reading.objects.filter(device=device.device).exists())

    sent_at = time.monotonic()
    command = command_send(device=device.device, name="reboot", sent_by_user=owner)
    outbox.relay_all()  # what the worker does after the command's commit

    topic, payload, arrived_at = device.messages.get(timeout=WAIT)
    print(f"command push latency: {(arrived_at - sent_at) * 1000:.1f} ms")
    assert topic == topics.commands(device.serial)
    assert json.loads(payload)["id"] == str(command.id)
    assert wait_until(lambda: Command.objects.get(pk=command.pk).status == CommandStatus.DELIVERED)

    device.publish(topics.command_result(device.serial, command.id), {"status": "succeeded", "result": {"ok": True}})

    assert wait_until(lambda: Command.objects.get(pk=command.pk).status == CommandStatus.SUCCEEDED)
    assert Command.objects.get(pk=command.pk).result == {"ok": True}
    page = owner_client.get(reverse("devices:detail", args=[device.device.pk])).content.decode()
    assert 'class="badge badge-succeeded"' in page  # the result shows on the owner's page
    device.close()


def test_a_command_for_a_device_not_on_mqtt_stays_pending_for_its_http_check_in(provisioned, bridge, owner):
    device = provisioned()  # never connects to the broker

    command = command_send(device=device.device, name="reboot", sent_by_user=owner)
    outbox.relay_all()

    # The broker answered "no matching subscribers": the device gets it at its next check-in.
    assert Command.objects.get(pk=command.pk).status == CommandStatus.PENDING


def test_the_last_will_marks_the_device_offline_at_once(provisioned, bridge):
    device = provisioned()
    assert device.connect()
    device.checkin({"temperature": 20})
    assert wait_until(lambda: Reading.objects.filter(device=device.device).exists())

    dropped_at = time.monotonic()
    device.kill()

    assert wait_until(
        lambda: DeviceEvent.objects.filter(device=device.device, type=DeviceEventType.OFFLINE).exists(), timeout=5
    )
    print(f"offline after the drop: {(time.monotonic() - dropped_at) * 1000:.0f} ms")
    device.device.refresh_from_db()
    assert device.device.status == DeviceStatus.OFFLINE


@pytest.mark.parametrize("void", ["revoke", "reset"])
def test_a_revoked_certificate_is_refused_and_its_open_session_ends(provisioned, bridge, owner, void):
    device = provisioned()
    assert device.connect()
    device.checkin({"temperature": 20})
    assert wait_until(lambda: Reading.objects.filter(device=device.device).exists())

    revoked_at = time.monotonic()
    if void == "revoke":
        device_credentials_revoke(device=device.device)
    else:  # a reset, like every change of owner, goes through claiming's one function
        device.device.refresh_from_db()
        device_release(device=device.device, actor=owner, ip="203.0.113.1")

    device.disconnected.get(timeout=REVOCATION_DEADLINE)
    print(f"session ended {time.monotonic() - revoked_at:.1f} s after the revocation")
    device.client.loop_stop()
    assert not device.connect()  # the broker read the new revocation list


def test_after_a_revocation_a_new_certificate_with_the_same_serial_connects(provisioned, bridge, products):
    thermo = provisioned("MQ-THERMO", of=products[0])
    meter = provisioned("MQ-METER", of=products[1])
    assert thermo.connect() and meter.connect()

    device_credentials_revoke(device=meter.device)  # on the second product CA's list
    meter.disconnected.get(timeout=REVOCATION_DEADLINE)
    meter.client.loop_stop()

    assert not meter.connect()  # the second CA's list, read from the concatenated crl.pem
    assert provisioned(device=meter.device).connect()  # provisioned again: a new certificate, same CN
    thermo.close()
    assert thermo.connect()  # the first CA's list is there too (without it, all its devices are refused)
    thermo.checkin({"t": 1})
    assert wait_until(lambda: Reading.objects.filter(device=thermo.device).exists())


def test_a_product_added_while_the_broker_runs_gets_its_devices_in(provisioned, bridge):
    late = ProductFactory(slug="late", name="Late", commands=["reboot"])
    device = provisioned("MQ-LATE", of=late)  # its CA is made by this first certificate

    # The bridge's watch writes the new CA into the broker's cafile and has it read (SIGHUP).
    assert wait_until(lambda: device.connect(), timeout=REVOCATION_DEADLINE)
    device.close()


def test_messages_published_while_the_bridge_is_away_are_stored_when_it_returns(provisioned, bridge_factory):
    away = bridge_factory("bridge-1")
    device = provisioned()
    assert device.connect()
    away.stop()
    time.sleep(0.5)

    for n in range(3):
        device.checkin({"n": n})  # the broker acknowledges them: they wait in the bridge's session
    assert not Reading.objects.exists()
    bridge_factory("bridge-1")

    assert wait_until(lambda: Reading.objects.filter(device=device.device).count() == 3)
    device.close()


def test_the_bridge_reconnects_after_the_broker_restarts(provisioned, bridge, mosquitto):
    device = provisioned()
    assert device.connect()
    device.checkin({"n": 1})
    assert wait_until(lambda: Reading.objects.filter(device=device.device).count() == 1)
    device.close()

    mosquitto.restart()

    assert wait_until(lambda: bridge.subscribed.is_set(), timeout=30)  # paho's back-off: 1 s, 2 s, …
    assert device.connect()
    device.checkin({"n": 2})
    assert wait_until(lambda: Reading.objects.filter(device=device.device).count() == 2)
    device.close()


def test_a_device_cannot_publish_or_listen_on_another_devices_topics(provisioned, bridge, owner):
    mallory, victim = provisioned("MQ-MALLORY"), provisioned("MQ-VICTIM")
    assert mallory.connect()

    mallory.publish(topics.checkin(victim.serial), {"values": {"temperature": 99}})
    mallory.client.subscribe(topics.commands(victim.serial), qos=1)
    mallory.checkin({"temperature": 20})  # handled after the refused one, had it gone through
    command_send(device=victim.device, name="reboot", sent_by_user=owner)
    outbox.relay_all()

    assert wait_until(lambda: Reading.objects.filter(device=mallory.device).exists())
    assert not Reading.objects.filter(device=victim.device).exists()
    # Mosquitto grants the subscription but never sends a message the ACL does not let it read.
    time.sleep(0.5)
    assert mallory.messages.empty()
    mallory.close()


def test_a_device_cannot_take_over_another_devices_session(provisioned, bridge, tmp_path):
    mallory, victim = provisioned("MQ-MALLORY"), provisioned("MQ-VICTIM")
    assert victim.connect()
    impostor = MqttDevice(
        serial="MQ-MALLORY",
        certificate=(tmp_path / "MQ-MALLORY-0" / "cert.pem").read_text(),
        key_pem=(tmp_path / "MQ-MALLORY-0" / "key.pem").read_text(),
        broker=mallory.broker,
        folder=tmp_path / "impostor",
        client_id="MQ-VICTIM",  # the broker replaces it with the certificate's CN
    )

    assert impostor.connect()

    time.sleep(0.5)
    assert victim.disconnected.empty() and victim.client.is_connected()
    impostor.close()
    victim.close()


def test_two_bridges_store_each_message_once(provisioned, bridge_factory):
    first, second = bridge_factory("bridge-1"), bridge_factory("bridge-2")
    device = provisioned()
    assert device.connect()

    for n in range(20):
        device.checkin({"n": n})

    assert wait_until(lambda: Reading.objects.filter(device=device.device).count() >= 20)
    time.sleep(0.5)  # a copy handled twice would show by now
    assert sorted(r.values["n"] for r in Reading.objects.filter(device=device.device)) == list(range(20))
    assert first.handled + second.handled == 20
    assert first.handled and second.handled  # the broker split them
    device.close()
