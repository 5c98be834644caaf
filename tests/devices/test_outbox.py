import pytest
from django.db import transaction

from devices import outbox
from devices.command_queue import command_send
from devices.models import Command, DeviceEvent, DeviceEventType
from devices.tasks import relay_outbox
from portal.celery import app as celery_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def consumers(monkeypatch):
    """Only the consumers a test registers (the installed apps' own are set aside)."""
    registered = {}
    monkeypatch.setattr(outbox, "_consumers", registered)
    return registered


@pytest.fixture
def published(monkeypatch):
    """Relay tasks published (instead of going to the broker)."""
    calls = []
    monkeypatch.setattr(relay_outbox, "apply_async", lambda **kw: calls.append(kw))
    return calls


def record(device, n=1):
    return outbox.events_record(
        [DeviceEvent(device=device, type=DeviceEventType.DATA, data={"values": {"i": i}}) for i in range(n)]
    )


def test_every_consumer_gets_each_event_once(device, consumers):
    seen = {"a": [], "b": []}
    outbox.register_consumer("a", lambda events: seen["a"].extend(e.pk for e in events))
    outbox.register_consumer("b", lambda events: seen["b"].extend(e.pk for e in events))
    events = record(device, 3)
    assert outbox.relay_all() == 3
    assert outbox.relay_all() == 0
    assert sorted(seen["a"]) == sorted(seen["b"]) == sorted(e.pk for e in events)
    assert not DeviceEvent.objects.filter(handled_at__isnull=True).exists()


def test_consumers_get_the_device_and_product_loaded(device, consumers, django_assert_num_queries):
    products = []
    outbox.register_consumer("a", lambda events: products.extend(e.device.product.slug for e in events))
    record(device, 2)
    # SAVEPOINT (relay) · SELECT events JOIN device, product · SAVEPOINT · RELEASE (consumer) ·
    # UPDATE handled_at · RELEASE
    with django_assert_num_queries(6):
        outbox.relay_pending()
    assert products == [device.product.slug] * 2


def test_a_failing_consumer_leaves_the_events_for_the_next_run(device, consumers, caplog):
    outbox.register_consumer("broken", lambda events: 1 / 0)
    record(device, 2)
    assert outbox.relay_all() == 0
    assert DeviceEvent.objects.filter(handled_at__isnull=True).count() == 2
    assert "outbox.consumer_failed" in caplog.text
    outbox.register_consumer("broken", lambda events: None)
    assert outbox.relay_all() == 2
    assert not DeviceEvent.objects.filter(handled_at__isnull=True).exists()


def test_a_failing_consumers_writes_are_rolled_back_and_the_others_kept(owned_device, consumers):
    def writes_then_fails(events):
        Command.objects.filter(device=owned_device).update(name="changed")
        raise RuntimeError("boom")

    def writes(events):
        Command.objects.filter(device=owned_device).update(params={"seen": True})

    command_send(device=owned_device, name="reboot")
    outbox.register_consumer("good", writes)
    outbox.register_consumer("bad", writes_then_fails)
    outbox.relay_pending()
    command = Command.objects.get(device=owned_device)
    assert (command.name, command.params) == ("reboot", {"seen": True})


def test_relay_works_in_batches(device, consumers):
    batches = []
    outbox.register_consumer("a", lambda events: batches.append(len(events)))
    record(device, 5)
    assert outbox.relay_all(batch_size=2) == 5
    assert batches == [2, 2, 1]


def test_relay_task_relays_everything(device, consumers):
    record(device, 3)
    assert relay_outbox.run() == 3


def test_recording_schedules_one_relay_after_commit(device, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        record(device)
    assert published == [{"countdown": outbox.RELAY_DEBOUNCE_SECONDS}]


def test_nothing_is_published_when_the_change_rolls_back(device, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                record(device)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert callbacks == []
    assert published == []


def test_relay_publishes_are_debounced(device, published, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(outbox, "RELAY_DEBOUNCE_SECONDS", 3600)  # a window no slow machine outlasts
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            record(device)
    assert len(published) == 1
    # Another process (no local memory of the publish) still defers to the shared cache key.
    monkeypatch.setattr(outbox, "_last_relay_scheduled", float("-inf"))
    with django_capture_on_commit_callbacks(execute=True):
        record(device)
    assert len(published) == 1


@pytest.fixture
def dead_broker(monkeypatch):
    """Points Celery at a port nobody listens on."""
    monkeypatch.setitem(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)
    yield
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_does_not_fail_the_change(owned_device, dead_broker, caplog):
    command = command_send(device=owned_device, name="reboot")  # commits, then tries to publish
    assert Command.objects.filter(pk=command.pk).exists()
    assert DeviceEvent.objects.filter(type="command.updated").count() == 1
    assert "outbox.relay_publish_failed" in caplog.text
