"""Commands sent to devices: pending → delivered → succeeded | failed, or expired after their TTL.

Owners (the device page) and applications (the integrator API) send them through `command_send`;
the device protocol delivers them at check-in (or the MQTT push, `commands_mark_pushed`) and
acknowledges them through `command_ack`.
Every change records a `command.updated` DeviceEvent in the same transaction.
"""

import json
import logging
import math
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.errors import Conflict, NotFound, ValidationError
from portal.text import storable, storable_json

from . import outbox
from .command_definitions import command_definitions_for_product, command_params_clean
from .models import Command, CommandStatus, DeviceEvent, DeviceEventType
from .outbox import event_record, events_record

logger = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(hours=1)
MAX_TTL = timedelta(days=7)
MAX_PARAMS = 32
MAX_STRING = 256
MAX_RESULT_BYTES = 8 * 1024
OPEN_STATUSES = (CommandStatus.PENDING, CommandStatus.DELIVERED)
FINAL_STATUSES = (CommandStatus.SUCCEEDED, CommandStatus.FAILED)
# A device's open commands as it is handed them (check-in, GET /device/v1/commands): at most this
# many, oldest first, each with these fields. The PostgreSQL check-in builds the same list inside
# its statement from these constants (devices.sql.open_commands_sql).
COMMANDS_PER_ANSWER = 20
OPEN_COMMANDS_ORDER = "created_at"
OPEN_COMMAND_FIELDS = ("id", "name", "params", "status", "expires_at", "sent_by_app")


def command_event_data(command: Command) -> dict:
    data = {
        "command_id": str(command.id),
        "name": command.name,
        "status": command.status,
        "params": command.params,
    }
    if command.sent_by_app:
        # Only the application that sent a command hears of it (it names the application as the
        # link events do); an owner's commands are heard by none.
        data["application_id"] = command.sent_by_app
    if command.status in FINAL_STATUSES:
        data["result"] = command.result
    return data


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def flat_object_errors(value, *, max_keys, what) -> list[str]:
    """Why `value` is not a flat JSON object of scalars (empty when it is one)."""
    if not isinstance(value, dict):
        return [f"{what} must be a JSON object."]
    if len(value) > max_keys:
        return [f"{what} may hold at most {max_keys} keys."]
    for key, item in value.items():
        if isinstance(key, str) and not storable(key):
            return [f"{what} keys must not hold NUL characters or unpaired surrogates."]
        if not isinstance(key, str) or not key or len(key) > 64:
            return [f"{what} keys must be names of 1 to 64 characters."]
        if not _is_scalar(item):
            return [f"{what}[{key!r}] must be a number, a string, true, false or null, not a list or an object."]
        if isinstance(item, float) and not math.isfinite(item):
            return [f"{what}[{key!r}] must be a finite number."]
        if isinstance(item, str) and not storable(item):
            return [f"{what}[{key!r}] must not hold NUL characters or unpaired surrogates."]
        if isinstance(item, str) and len(item) > MAX_STRING:
            return [f"{what}[{key!r}] must be text of at most {MAX_STRING} characters."]
    return []


def _ttl(ttl) -> timedelta:
    if ttl is None:
        return DEFAULT_TTL
    if not isinstance(ttl, timedelta):
        if isinstance(ttl, bool) or not isinstance(ttl, int | float):
            raise ValidationError("ttl must be a number of seconds.", fields={"ttl": ["Give a number of seconds."]})
        ttl = timedelta(seconds=ttl)
    if ttl <= timedelta(0) or ttl > MAX_TTL:
        message = f"ttl must be between 1 second and {int(MAX_TTL.total_seconds())} seconds."
        raise ValidationError(message, fields={"ttl": [message]})
    return ttl


@transaction.atomic
def command_queued_message(command: Command) -> str:
    """What a person is told once their command is queued (the device page, the support page)."""
    return (
        f"Command “{command.name}” queued; the device gets it at once if it is connected over MQTT,"
        " else at its next check-in."
    )


def command_send(*, device, name, params=None, ttl=None, sent_by_user=None, sent_by_app="") -> Command:
    """Queues a command for `device`, delivered at its next check-in (and, to a device on MQTT,
    pushed at once after commit: devices.mqtt.push hears the command.updated event).

    Rules: `name` must be one the device's product accepts; `params` a flat JSON object of scalars
    that fits the command's declared parameters (devices.command_definitions), defaults filled in;
    `ttl` (seconds or a timedelta, default 1 hour, at most 7 days) bounds how long it waits before
    it expires. Records `command.updated` (status pending).
    """
    accepted = list(command_definitions_for_product(device.product))
    if name not in accepted:
        message = f"{device.product.name} devices do not accept the command {name!r}."
        hint = f"Choose one of: {', '.join(accepted)}." if accepted else "This product accepts no commands."
        raise ValidationError(message, code="unknown_command", fields={"name": [f"{message} {hint}"]})
    params = {} if params is None else params
    if errors := flat_object_errors(params, max_keys=MAX_PARAMS, what="params"):
        raise ValidationError(errors[0], fields={"params": errors})
    if definition := command_definitions_for_product(device.product).get(name):
        params = command_params_clean(definition, params)
    now = timezone.now()
    command = Command.objects.create(
        device=device,
        name=name,
        params=params,
        expires_at=now + _ttl(ttl),
        sent_by_user=sent_by_user,
        sent_by_app=sent_by_app or "",
    )
    event_record(device=device, type=DeviceEventType.COMMAND_UPDATED, data=command_event_data(command))
    if settings.MQTT_BRIDGE_PASSWORD:
        # MQTT is on: the device may hear the command at once (devices.mqtt.push consumes the event),
        # so the relay runs now rather than at the end of its one-second debounce.
        transaction.on_commit(outbox.relay_now, robust=True)
    logger.info(
        "command.sent",
        extra={"command_id": str(command.id), "device_id": str(device.pk), "command": name, "by_app": sent_by_app},
    )
    return command


def commands_open(*, device_id, now):
    """The open commands a device is handed now: pending or delivered (a device that lost an answer
    gets them again), not expired, oldest first, at most COMMANDS_PER_ANSWER.

    Its SQL twin is devices.sql.open_commands_sql (the PostgreSQL check-in); both are built from the
    constants above, and tests/devices/test_paths_agree.py compares their answers."""
    return (
        Command.objects.filter(device_id=device_id, status__in=OPEN_STATUSES, expires_at__gt=now)
        .order_by(OPEN_COMMANDS_ORDER)
        .only("device_id", *OPEN_COMMAND_FIELDS)[:COMMANDS_PER_ANSWER]
    )


def commands_mark_delivered(*, device_id, commands) -> None:
    """Pending → delivered for the commands a device was just handed (one UPDATE, one INSERT).

    Delivered commands stay open: a device that lost the answer gets them again and acknowledges once.
    Must run inside the caller's transaction.
    """
    pending = [c for c in commands if c.status == CommandStatus.PENDING]
    if not pending:
        return
    Command.objects.filter(pk__in=[c.pk for c in pending], status=CommandStatus.PENDING).update(
        status=CommandStatus.DELIVERED, updated_at=timezone.now()
    )
    for command in pending:
        command.status = CommandStatus.DELIVERED
    events_record(
        [
            DeviceEvent(device_id=device_id, type=DeviceEventType.COMMAND_UPDATED, data=command_event_data(c))
            for c in pending
        ]
    )


@transaction.atomic
def commands_mark_pushed(*, command_ids) -> int:
    """Pending → delivered for commands the MQTT broker accepted for their device's subscription
    (its PUBACK): the same step as handing them at a check-in (commands_mark_delivered), for those
    still pending. Returns how many moved."""
    commands = list(
        Command.objects.select_for_update()
        .filter(pk__in=list(command_ids), status=CommandStatus.PENDING)
        .only("device_id", *OPEN_COMMAND_FIELDS)
    )
    by_device = {}
    for command in commands:
        by_device.setdefault(command.device_id, []).append(command)
    for device_id, pending in by_device.items():
        commands_mark_delivered(device_id=device_id, commands=pending)
    return len(commands)


@transaction.atomic
def command_ack(*, device, command_id, status, result=None) -> Command:
    """The device reports the outcome of a command it was handed.

    Only that device's open commands can be acknowledged; repeating the same acknowledgement is
    harmless (firmware retries when an answer is lost); changing a final outcome is a conflict.
    Records `command.updated`.
    """
    if status not in FINAL_STATUSES:
        message = "status must be 'succeeded' or 'failed'."
        raise ValidationError(message, fields={"status": [message]})
    result = {} if result is None else result
    if not isinstance(result, dict):
        raise ValidationError("result must be a JSON object.", fields={"result": ["Give a JSON object."]})
    if not storable_json(result):
        message = "result must not hold NUL characters or unpaired surrogates."
        raise ValidationError(message, fields={"result": [message]})
    if len(json.dumps(result)) > MAX_RESULT_BYTES:
        message = f"result is larger than {MAX_RESULT_BYTES} bytes."
        raise ValidationError(message, fields={"result": [message]})
    # The row lock orders an acknowledgement against a concurrent expiry of the same command.
    command = Command.objects.select_for_update().filter(pk=command_id, device_id=device.pk).first()
    if command is None:
        raise NotFound("No such command for this device.", code="command_not_found")
    if command.status in FINAL_STATUSES:
        if command.status == status:
            return command
        raise Conflict(f"This command already {command.status}.", code="command_final")
    if command.status == CommandStatus.EXPIRED:
        raise Conflict("This command expired before it was acknowledged.", code="command_expired")
    command.status = status
    command.result = result
    command.save(update_fields=["status", "result", "updated_at"])
    event_record(device=device, type=DeviceEventType.COMMAND_UPDATED, data=command_event_data(command))
    logger.info("command.acknowledged", extra={"command_id": str(command.id), "status": status})
    return command


def _mark_expired(commands, *, now) -> None:
    Command.objects.filter(pk__in=[c.pk for c in commands]).update(status=CommandStatus.EXPIRED, updated_at=now)
    for command in commands:
        command.status = CommandStatus.EXPIRED
    events_record(
        [
            DeviceEvent(device_id=c.device_id, type=DeviceEventType.COMMAND_UPDATED, data=command_event_data(c))
            for c in commands
        ]
    )


@transaction.atomic
def commands_void_for_device(*, device) -> int:
    """Expires the device's open commands now: what the previous owner (or their applications)
    asked must not run for the next one. Returns how many."""
    commands = list(Command.objects.select_for_update().filter(device_id=device.pk, status__in=OPEN_STATUSES))
    if commands:
        _mark_expired(commands, now=timezone.now())
        logger.info("commands.voided", extra={"device_id": str(device.pk), "commands": len(commands)})
    return len(commands)


def commands_expire(*, batch_size=1000) -> int:
    """Marks open commands past their TTL expired, a batch per transaction; returns how many.

    skip_locked: a command being acknowledged right now is left for the next run.
    """
    total = 0
    while True:
        with transaction.atomic():
            now = timezone.now()
            batch = list(
                Command.objects.select_for_update(skip_locked=True)
                .filter(status__in=OPEN_STATUSES, expires_at__lte=now)
                .order_by("expires_at")[:batch_size]
            )
            if not batch:
                return total
            _mark_expired(batch, now=now)
        total += len(batch)
        logger.info("commands.expired", extra={"commands": len(batch)})
        if len(batch) < batch_size:
            return total
