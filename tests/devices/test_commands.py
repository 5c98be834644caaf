from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.command_queue import MAX_TTL, command_ack, command_send, commands_expire
from devices.models import Command, CommandStatus, DeviceEvent
from portal.errors import Conflict, NotFound, ValidationError

from ..factories import DeviceFactory

pytestmark = pytest.mark.django_db


def test_send_queues_a_pending_command_and_records_it(owned_device, owner):
    command = command_send(device=owned_device, name="identify", params={"seconds": 3}, sent_by_user=owner)
    assert command.status == CommandStatus.PENDING
    assert command.sent_by_user == owner
    event = DeviceEvent.objects.get(device=owned_device, type="command.updated")
    assert event.data == {
        "command_id": str(command.id),
        "name": "identify",
        "status": "pending",
        "params": {"seconds": 3},
    }


def test_send_defaults_to_a_one_hour_ttl(owned_device):
    command = command_send(device=owned_device, name="reboot")
    assert timedelta(minutes=59) < command.expires_at - timezone.now() <= timedelta(hours=1)


def test_send_records_the_sending_application(owned_device):
    assert command_send(device=owned_device, name="reboot", sent_by_app="app_123").sent_by_app == "app_123"


def test_send_refuses_a_command_the_product_does_not_accept(owned_device):
    with pytest.raises(ValidationError) as excinfo:
        command_send(device=owned_device, name="self_destruct")
    assert "name" in excinfo.value.fields
    assert "reboot" in excinfo.value.fields["name"][0]
    assert not Command.objects.exists()


def test_send_follows_the_products_command_list():
    device = DeviceFactory(product__slug="lamp", product__commands=["blink"])
    command_send(device=device, name="blink")
    with pytest.raises(ValidationError):
        command_send(device=device, name="reboot")


@pytest.mark.parametrize(
    "params",
    [[1, 2], "text", {"nested": {"a": 1}}, {"list": [1]}, {"long": "x" * 257}, {f"k{i}": i for i in range(33)}],
    ids=["list", "string", "nested", "nested-list", "long-string", "too-many"],
)
def test_send_refuses_params_that_are_not_a_flat_object(owned_device, params):
    with pytest.raises(ValidationError) as excinfo:
        command_send(device=owned_device, name="set_interval", params=params)
    assert "params" in excinfo.value.fields


@pytest.mark.parametrize("ttl", [0, -5, MAX_TTL.total_seconds() + 1, "60", True])
def test_send_refuses_a_ttl_out_of_range(owned_device, ttl):
    with pytest.raises(ValidationError) as excinfo:
        command_send(device=owned_device, name="reboot", ttl=ttl)
    assert "ttl" in excinfo.value.fields


def test_send_accepts_a_timedelta_ttl(owned_device):
    command = command_send(device=owned_device, name="reboot", ttl=timedelta(days=7))
    assert command.expires_at - timezone.now() > timedelta(days=6)


def test_ack_records_the_outcome(owned_device):
    command = command_send(device=owned_device, name="reboot")
    command_ack(device=owned_device, command_id=command.id, status="succeeded", result={"uptime": 0})
    command.refresh_from_db()
    assert (command.status, command.result) == ("succeeded", {"uptime": 0})
    event = DeviceEvent.objects.filter(type="command.updated").latest("created_at")
    assert event.data["status"] == "succeeded"
    assert event.data["result"] == {"uptime": 0}


def test_ack_of_another_devices_command_is_not_found(owned_device):
    command = command_send(device=owned_device, name="reboot")
    with pytest.raises(NotFound):
        command_ack(device=DeviceFactory(), command_id=command.id, status="succeeded")


def test_repeated_ack_is_harmless_but_a_changed_outcome_conflicts(owned_device):
    command = command_send(device=owned_device, name="reboot")
    command_ack(device=owned_device, command_id=command.id, status="failed", result={"error": "busy"})
    command_ack(device=owned_device, command_id=command.id, status="failed", result={"error": "busy"})
    assert DeviceEvent.objects.filter(type="command.updated").count() == 2
    with pytest.raises(Conflict):
        command_ack(device=owned_device, command_id=command.id, status="succeeded")


def test_ack_of_an_expired_command_conflicts(owned_device):
    command = command_send(device=owned_device, name="reboot")
    Command.objects.filter(pk=command.pk).update(status=CommandStatus.EXPIRED)
    with pytest.raises(Conflict):
        command_ack(device=owned_device, command_id=command.id, status="succeeded")


@pytest.mark.parametrize("status,result", [("done", {}), ("pending", {}), ("succeeded", [1]), ("succeeded", "ok")])
def test_ack_validates_status_and_result(owned_device, status, result):
    command = command_send(device=owned_device, name="reboot")
    with pytest.raises(ValidationError):
        command_ack(device=owned_device, command_id=command.id, status=status, result=result)


def test_expire_marks_overdue_open_commands_and_records_them(owned_device):
    overdue = command_send(device=owned_device, name="reboot")
    delivered = command_send(device=owned_device, name="identify")
    fresh = command_send(device=owned_device, name="set_interval", params={"seconds": 30})
    finished = command_send(device=owned_device, name="reboot")
    Command.objects.filter(pk=delivered.pk).update(status=CommandStatus.DELIVERED)
    Command.objects.filter(pk=finished.pk).update(status=CommandStatus.SUCCEEDED)
    Command.objects.exclude(pk=fresh.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert commands_expire() == 2
    statuses = dict(Command.objects.values_list("pk", "status"))
    assert statuses == {overdue.pk: "expired", delivered.pk: "expired", fresh.pk: "pending", finished.pk: "succeeded"}
    assert DeviceEvent.objects.filter(type="command.updated", data__status="expired").count() == 2


def test_expire_works_in_batches(owned_device):
    for _ in range(5):
        command_send(device=owned_device, name="reboot")
    Command.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert commands_expire(batch_size=2) == 5
    assert set(Command.objects.values_list("status", flat=True)) == {"expired"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seconds=st.one_of(
        st.integers(min_value=-(10**400), max_value=10**400),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([10**309, -(10**309), 1e308, 5e-324, 86_400, 86_401, 0, 1]),
    )
)
def test_any_number_for_a_parameter_is_taken_or_refused_naming_it_never_an_error(owned_device, seconds):
    fits = not isinstance(seconds, float) or seconds.is_integer()
    fits = fits and 1 <= seconds <= 86_400
    try:
        command = command_send(device=owned_device, name="set_interval", params={"seconds": seconds})
    except ValidationError as refused:
        assert not fits and "params.seconds" in refused.fields
    else:
        assert fits and command.params == {"seconds": seconds}
