"""The MQTT topics of a device (docs/device-protocol.md, "MQTT"). Every topic names the device by its
serial, the CN of its certificate, which the broker takes as the client's username."""

import uuid

PREFIX = "devices"
# The bridges share their subscriptions (MQTT 5): the broker hands each message to one of them.
SHARE_GROUP = "portal"
OFFLINE_PAYLOAD = b"offline"


def checkin(serial: str) -> str:
    return f"{PREFIX}/{serial}/checkin"


def commands(serial: str) -> str:
    return f"{PREFIX}/{serial}/commands"


def command_result(serial: str, command_id) -> str:
    return f"{PREFIX}/{serial}/commands/{command_id}/result"


def status(serial: str) -> str:
    """The device's will topic: the broker publishes `offline` there when the device drops."""
    return f"{PREFIX}/{serial}/status"


# What the bridge subscribes to, each shared by every bridge in SHARE_GROUP.
BRIDGE_FILTERS = (f"{PREFIX}/+/checkin", f"{PREFIX}/+/commands/+/result", f"{PREFIX}/+/status")


def shared(topic_filter: str) -> str:
    return f"$share/{SHARE_GROUP}/{topic_filter}"


def parse(topic: str) -> tuple[str, str, uuid.UUID | None] | None:
    """(kind, serial, command id) of a topic the bridge hears: kind is `checkin`, `result` or
    `status`; None for any other topic. The topic has exactly the levels of its kind, so a serial
    holding a `/` can never stand for another device's."""
    levels = topic.split("/")
    if len(levels) < 3 or levels[0] != PREFIX or not levels[1]:
        return None
    serial = levels[1]
    if levels[2:] == ["checkin"]:
        return "checkin", serial, None
    if levels[2:] == ["status"]:
        return "status", serial, None
    if len(levels) == 5 and levels[2] == "commands" and levels[4] == "result":
        try:
            return "result", serial, uuid.UUID(levels[3])
        except ValueError:
            return None
    return None
