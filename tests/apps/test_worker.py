"""Delivery through a real Celery worker on Redis and PostgreSQL: nothing is lost when a worker
dies mid-delivery or the broker is down when the event is recorded."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from werkzeug import Response

from apps import tasks
from apps.models import AppLink, Delivery, DeliveryStatus
from apps.services import fanout
from bench.harness import wait_for
from devices import tasks as device_tasks
from devices.outbox import event_record

from ..factories import ApplicationFactory, DeviceFactory
from .conftest import hook_url, verify_standard_webhook

pytestmark = pytest.mark.services


@pytest.fixture
def worker_app(celery_worker, owner, receiver, private_targets):
    application = ApplicationFactory(owner=owner, callback_url=hook_url(receiver))
    application.device = DeviceFactory(owner=owner)
    AppLink.objects.create(application=application, device=application.device)
    return application


def _record(device):
    with transaction.atomic():  # the relay is queued when this commits, as after a check-in
        return event_record(device=device, type="device.data", data={"temperature": 21})


def _delivered():
    return Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).first()


def test_an_event_is_delivered_by_the_worker(worker_app, receiver):
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    event = _record(worker_app.device)
    delivery = wait_for(_delivered)
    assert delivery is not None, "not delivered"
    request, _ = receiver.log[0]
    assert request.headers["webhook-id"] == str(event.pk)
    assert verify_standard_webhook(request, worker_app.raw_signing_secret)


def test_a_worker_killed_mid_delivery_loses_nothing(worker_app, receiver, celery_worker):
    arrived = threading.Event()
    release = threading.Event()
    calls = []

    def slow_then_fine(request):
        calls.append(request.headers["webhook-id"])
        if len(calls) == 1:
            arrived.set()
            release.wait(30)  # the worker dies while waiting for this answer
        return Response("ok")

    receiver.expect_request("/hook").respond_with_handler(slow_then_fine)
    event = _record(worker_app.device)
    assert arrived.wait(30), "the first attempt never arrived"
    celery_worker.kill()
    release.set()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1

    celery_worker.start()
    # The beat task, once the dead worker's lease on the delivery has run out.
    with time_machine.travel(delivery.next_attempt_at + timedelta(seconds=1)):
        assert tasks.deliveries_send_due() == 1
    delivery = wait_for(_delivered)
    assert delivery is not None, "not delivered after the restart"
    assert delivery.attempts == 2
    assert calls == [str(event.pk), str(event.pk)]  # at least once, with the same webhook-id


def test_a_broker_down_at_check_in_loses_nothing(worker_app, receiver, monkeypatch, caplog):
    from kombu.exceptions import OperationalError

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to the broker. Connection refused.")

    receiver.expect_request("/hook").respond_with_data("ok")
    with monkeypatch.context() as outage:
        outage.setattr(device_tasks.relay_outbox, "apply_async", broker_down)
        outage.setattr(tasks.deliveries_send, "apply_async", broker_down)
        event = _record(worker_app.device)  # the check-in commits; publishing the relay fails
        assert "outbox.relay_publish_failed" in caplog.text
        # The relay's beat run, still without a broker: the delivery row is written, its send not queued.
        device_tasks.relay_outbox()
        assert "delivery.publish_failed" in caplog.text
    delivery = Delivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.PENDING and receiver.log == []

    # The broker is back: the beat task finds the delivery once the lease of the lost message ends.
    with time_machine.travel(timezone.now() + fanout.ENQUEUE_LEASE + timedelta(seconds=1)):
        assert tasks.deliveries_send_due() == 1
    assert wait_for(_delivered) is not None, "not delivered after the broker came back"
    assert len(receiver.log) == 1
