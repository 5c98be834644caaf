"""The reference agent's MQTT mode against a real broker and bridge (issue #20)."""

import threading

from devices import outbox
from devices.command_queue import command_send
from devices.models import Command, CommandStatus, Reading
from firmware.agent import Agent, State

from ...factories import DeviceFactory
from .conftest import wait_until


def test_the_agent_provisions_over_http_then_checks_in_and_runs_commands_over_mqtt(
    live_server, mosquitto, bridge, product, owner
):
    device = DeviceFactory(product=product, owner=owner)
    stop = threading.Event()
    agent = Agent(
        url=live_server.url,
        serial=device.serial,
        key=device.raw_factory_key,
        state=State(None),
        values=lambda: {"temperature": 21.0},
        interval=1,
        stop=stop,
        mqtt="auto",
    )
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: Reading.objects.filter(device=device).exists())
        assert agent.status == "online" and agent._mqtt_endpoint() is not None

        command = command_send(device=device, name="reboot", sent_by_user=owner)
        outbox.relay_all()

        assert wait_until(lambda: Command.objects.get(pk=command.pk).status == CommandStatus.SUCCEEDED)
    finally:
        stop.set()
        thread.join(10)
