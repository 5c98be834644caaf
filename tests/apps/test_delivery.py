"""Webhook delivery against a real HTTP server on 127.0.0.1, with a fake clock for the schedule."""

import base64
import json
import logging
import socket
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from apps.models import Application, CallbackAuthStyle, Delivery, DeliveryStatus
from apps.services import applications, fanout, sending
from devices.models import DeviceEvent

from ..factories import ApplicationFactory
from .api_support import auth
from .conftest import hook_url, record_and_relay, verify_standard_webhook


def attempt(delivery):
    """One attempt, as the task queued for it would make it."""
    delivery.refresh_from_db()
    outcome = sending.delivery_send(delivery_id=delivery.pk, lease=delivery.next_attempt_at)
    delivery.refresh_from_db()
    return outcome


@pytest.fixture
def delivery(hooked_app):
    record_and_relay(hooked_app.device)
    return Delivery.objects.get()


def test_a_delivery_is_a_signed_json_post(hooked_app, receiver, delivery):
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    assert attempt(delivery) == DeliveryStatus.SUCCEEDED
    request, _ = receiver.log[0]
    event = DeviceEvent.objects.get()
    device = hooked_app.device
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data()) == {
        "id": str(event.pk),
        "type": "device.data",
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "device": {"id": str(device.pk), "serial": device.serial, "product": device.product.slug, "name": device.name},
        "data": {"temperature": 20},
    }
    assert request.headers["webhook-id"] == str(event.pk)
    assert abs(int(request.headers["webhook-timestamp"]) - timezone.now().timestamp()) < 300
    assert verify_standard_webhook(request, hooked_app.raw_signing_secret)
    assert "Webhooks" in request.headers["User-Agent"]


def test_basic_authorization_carries_app_id_and_secret(hooked_app, receiver, delivery):
    receiver.expect_request("/hook").respond_with_data("ok")
    attempt(delivery)
    request, _ = receiver.log[0]
    expected = base64.b64encode(f"{hooked_app.app_id}:{hooked_app.raw_secret}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"


@pytest.mark.parametrize(("prefix", "header"), [("Bearer", "Bearer {}"), ("", "{}")])
def test_token_authorization_with_or_without_prefix(hooked_app, receiver, delivery, prefix, header):
    Application.objects.filter(pk=hooked_app.pk).update(auth_style=CallbackAuthStyle.TOKEN, token_prefix=prefix)
    receiver.expect_request("/hook").respond_with_data("ok")
    attempt(delivery)
    request, _ = receiver.log[0]
    assert request.headers["Authorization"] == header.format(hooked_app.raw_secret)


def test_after_a_rotation_both_secrets_sign_for_the_overlap_then_only_the_new_one(hooked_app, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    old_secret = hooked_app.raw_signing_secret
    with time_machine.travel(timezone.now(), tick=False) as clock:
        new_secret = applications.application_signing_secret_rotate(application=hooked_app)
        record_and_relay(hooked_app.device)
        attempt(Delivery.objects.get())
        clock.shift(applications.SIGNING_SECRET_OVERLAP - timedelta(minutes=1))
        record_and_relay(hooked_app.device)
        attempt(Delivery.objects.get(attempts=0))
        clock.shift(timedelta(minutes=2))
        record_and_relay(hooked_app.device)
        attempt(Delivery.objects.get(attempts=0))
    first, last_in_overlap, after = (request for request, _ in receiver.log)
    for request in (first, last_in_overlap):
        assert len(request.headers["webhook-signature"].split()) == 2
        assert verify_standard_webhook(request, new_secret)
        assert verify_standard_webhook(request, old_secret)
    assert len(after.headers["webhook-signature"].split()) == 1
    assert verify_standard_webhook(after, new_secret)
    assert not verify_standard_webhook(after, old_secret)


def test_a_second_rotation_within_the_overlap_keeps_only_the_secret_it_replaces(hooked_app, receiver, delivery):
    receiver.expect_request("/hook").respond_with_data("ok")
    second = applications.application_signing_secret_rotate(application=hooked_app)
    third = applications.application_signing_secret_rotate(application=hooked_app)
    attempt(delivery)
    request, _ = receiver.log[0]
    assert verify_standard_webhook(request, third) and verify_standard_webhook(request, second)
    assert not verify_standard_webhook(request, hooked_app.raw_signing_secret)


def test_the_event_id_is_stable_across_retries(hooked_app, receiver, delivery):
    receiver.expect_oneshot_request("/hook").respond_with_data("", status=500)
    receiver.expect_request("/hook").respond_with_data("ok")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        attempt(delivery)
        clock.move_to(delivery.next_attempt_at)
        attempt(delivery)
    first, second = (request for request, _ in receiver.log)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 2


def _follow_schedule(delivery, clock):
    """Attempts until the delivery stops retrying; returns each wait it scheduled, in seconds."""
    waits = []
    while True:
        outcome = attempt(delivery)
        if outcome != "retrying":
            return waits, outcome
        waits.append((delivery.next_attempt_at - timezone.now()).total_seconds())
        clock.move_to(delivery.next_attempt_at)


def _assert_schedule(waits):
    assert len(waits) == len(sending.RETRY_DELAYS)
    for wait, planned in zip(waits, sending.RETRY_DELAYS, strict=True):
        assert planned * 0.8 <= wait <= planned * 1.2


def test_retries_on_500_follow_the_schedule_then_fail(hooked_app, receiver, delivery):
    receiver.expect_request("/hook").respond_with_data("oops", status=500)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        waits, outcome = _follow_schedule(delivery, clock)
    _assert_schedule(waits)
    assert outcome == DeliveryStatus.FAILED
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == sending.MAX_ATTEMPTS
    assert delivery.last_status_code == 500 and "500" in delivery.last_error
    assert len(receiver.log) == sending.MAX_ATTEMPTS


def test_retries_on_a_dead_port_follow_the_schedule(hooked_app, delivery):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    Application.objects.filter(pk=hooked_app.pk).update(callback_url=f"http://127.0.0.1:{dead_port}/hook")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        waits, outcome = _follow_schedule(delivery, clock)
    _assert_schedule(waits)
    assert outcome == DeliveryStatus.FAILED
    assert delivery.last_status_code is None and delivery.last_error == "Could not connect to the callback."


def test_the_jitter_spreads_retries():
    waits = {round(sending.retry_delay(1), 3) for _ in range(20)}
    assert len(waits) > 1
    assert all(4 <= wait <= 6 for wait in waits)


def test_retry_after_is_honoured(hooked_app, receiver, delivery):
    receiver.expect_request("/hook").respond_with_data("busy", status=503, headers={"Retry-After": "120"})
    with time_machine.travel(timezone.now(), tick=False):
        attempt(delivery)
        assert (delivery.next_attempt_at - timezone.now()).total_seconds() >= 120


def test_a_retry_is_not_taken_before_it_is_due(hooked_app, receiver, delivery):
    receiver.expect_request("/hook").respond_with_data("", status=500)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        attempt(delivery)
        clock.shift(timedelta(seconds=2))
        assert sending.delivery_send(delivery_id=delivery.pk) is None
        assert sending.deliveries_claim_due()[0] == []
        clock.move_to(delivery.next_attempt_at)
        assert sending.deliveries_claim_due()[0] == [delivery.pk]
    assert len(receiver.log) == 1


def test_410_turns_off_the_callback_only_and_tells_the_owner(
    client, hooked_app, receiver, delivery, django_capture_on_commit_callbacks
):
    record_and_relay(hooked_app.device)  # a second delivery, waiting behind the first
    waiting = Delivery.objects.exclude(pk=delivery.pk).get()
    receiver.expect_request("/hook").respond_with_data("gone", status=410)
    with django_capture_on_commit_callbacks(execute=True):
        assert attempt(delivery) == DeliveryStatus.FAILED
    hooked_app.refresh_from_db()
    assert hooked_app.paused_at is None
    assert hooked_app.callback_url == "" and hooked_app.callback_off_at is not None
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.FAILED and "410" in waiting.last_error
    assert len(mail.outbox) == 1 and "turned off" in mail.outbox[0].subject
    # The API keeps answering.
    response = client.get("/api/v1/devices", **auth(hooked_app))
    assert response.status_code == 200 and response.json()["results"][0]["id"] == str(hooked_app.device.pk)
    # The owner sees why on the application page.
    client.force_login(hooked_app.owner)
    page = client.get(f"/apps/{hooked_app.app_id}/").content.decode()
    assert "The callback was turned off" in page and "410 Gone" in page
    # Events keep being recorded (and listed by the API) but nothing is sent without a callback.
    record_and_relay(hooked_app.device)
    assert Delivery.objects.count() == 2
    assert len(receiver.log) == 1
    # A new callback turns webhooks back on and the note goes.
    applications.application_update(
        application=hooked_app,
        name=hooked_app.name,
        callback_url=hook_url(receiver, "/new"),
        auth_style=hooked_app.auth_style,
        token_prefix=hooked_app.token_prefix,
    )
    hooked_app.refresh_from_db()
    assert hooked_app.callback_off_at is None and hooked_app.callback_off_reason == ""


def test_a_late_410_from_an_old_callback_leaves_the_new_one_on(hooked_app, receiver, delivery):
    receiver.expect_request("/hook").respond_with_data("gone", status=410)
    new_url = hook_url(receiver, "/new")
    assert not applications.application_callback_off(application=hooked_app, url=new_url, reason="410")
    hooked_app.refresh_from_db()
    assert hooked_app.callback_url == hook_url(receiver) and hooked_app.callback_off_at is None


def test_an_application_failing_for_five_days_is_paused_and_its_owner_emailed_once(
    hooked_app, receiver, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(fanout, "_deliveries_publish", lambda ids, lease, **options: None)
    receiver.expect_request("/hook").respond_with_data("", status=500)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock, django_capture_on_commit_callbacks(execute=True):
        record_and_relay(hooked_app.device)
        attempt(Delivery.objects.get())
        stale = Application.objects.get(pk=hooked_app.pk)
        assert stale.failing_since == start
        clock.move_to(start + timedelta(days=5))
        record_and_relay(hooked_app.device)
        attempt(Delivery.objects.get(attempts=0))
        # Another worker that saw the same failure with the application unpaused sends no second email.
        sending._failing_note(stale, timezone.now())
    hooked_app.refresh_from_db()
    assert hooked_app.paused_at is not None and "5 days" in hooked_app.pause_reason
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [hooked_app.owner.email]
    assert hooked_app.name in mail.outbox[0].subject


def test_a_success_clears_the_failing_streak(hooked_app, receiver):
    receiver.expect_oneshot_request("/hook").respond_with_data("", status=500)
    receiver.expect_request("/hook").respond_with_data("ok")
    record_and_relay(hooked_app.device, n=2)
    first, second = Delivery.objects.order_by("pk")
    attempt(first)
    assert Application.objects.get(pk=hooked_app.pk).failing_since is not None
    attempt(second)
    assert Application.objects.get(pk=hooked_app.pk).failing_since is None


def test_a_paused_application_gets_nothing_and_resuming_sends_what_waits(
    hooked_app, receiver, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr(fanout, "_deliveries_publish", lambda ids, lease, **options: queued.append(ids))
    record_and_relay(hooked_app.device)
    applications.application_pause(application=hooked_app, reason="Paused by the owner.")
    pending = Delivery.objects.get()
    assert sending.delivery_send(delivery_id=pending.pk, lease=pending.next_attempt_at) is None
    assert sending.deliveries_claim_due(now=timezone.now() + timedelta(hours=1))[0] == []
    with django_capture_on_commit_callbacks(execute=True):
        applications.application_resume(application=hooked_app)
    assert queued == [[pending.pk]]
    receiver.expect_request("/hook").respond_with_data("ok")
    assert attempt(pending) == DeliveryStatus.SUCCEEDED
    assert mail.outbox == []  # the owner paused it: nobody to tell


def test_events_during_a_pause_are_held_then_sent_in_order_on_resume(
    client, hooked_app, receiver, django_capture_on_commit_callbacks, monkeypatch
):
    # The queued task runs at once, as a worker would take it.
    monkeypatch.setattr(
        fanout,
        "_deliveries_publish",
        lambda ids, lease, **options: sending.deliveries_send(delivery_ids=ids, lease=lease),
    )
    receiver.expect_request("/hook").respond_with_data("ok")
    applications.application_pause(application=hooked_app, reason="Paused by the owner.")
    with django_capture_on_commit_callbacks(execute=True):
        record_and_relay(hooked_app.device, n=5)
    held = list(Delivery.objects.order_by("pk"))
    assert len(held) == 5 and all(d.status == DeliveryStatus.PENDING and d.next_attempt_at is None for d in held)
    assert sending.deliveries_claim_due(now=timezone.now() + timedelta(days=1))[0] == []
    assert receiver.log == []
    client.force_login(hooked_app.owner)
    assert "held until you resume" in client.get(f"/apps/{hooked_app.app_id}/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        applications.application_resume(application=hooked_app)

    recorded = list(DeviceEvent.objects.order_by("created_at").values_list("pk", flat=True))
    assert [request.headers["webhook-id"] for request, _ in receiver.log] == [str(pk) for pk in recorded]
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


def test_replay_failed_sends_them_again_with_a_fresh_schedule(hooked_app, receiver, delivery):
    receiver.expect_request("/hook").respond_with_data("gone", status=410)
    attempt(delivery)
    hooked_app.refresh_from_db()
    applications.application_update(
        application=hooked_app,
        name=hooked_app.name,
        callback_url=hook_url(receiver),
        auth_style=hooked_app.auth_style,
        token_prefix=hooked_app.token_prefix,
    )
    receiver.clear()
    receiver.expect_request("/hook").respond_with_data("ok")
    assert fanout.deliveries_replay_failed(application=hooked_app) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
    assert attempt(delivery) == DeliveryStatus.SUCCEEDED


def test_retry_one_delivery(hooked_app, receiver, delivery):
    receiver.expect_request("/hook").respond_with_data("", status=500)
    attempt(delivery)
    fanout.delivery_retry(delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.attempts == 0
    receiver.clear()
    receiver.expect_request("/hook").respond_with_data("ok")
    assert attempt(delivery) == DeliveryStatus.SUCCEEDED


def test_a_test_event_is_a_signed_ping(hooked_app, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    delivery = fanout.delivery_send_test(application=hooked_app)
    assert attempt(delivery) == DeliveryStatus.SUCCEEDED
    request, _ = receiver.log[0]
    body = json.loads(request.get_data())
    assert body["type"] == "ping" and body["device"] is None
    assert request.headers["webhook-id"] == body["id"]
    assert verify_standard_webhook(request, hooked_app.raw_signing_secret)


def test_the_same_attempt_is_taken_once(hooked_app, receiver, delivery):
    receiver.expect_request("/hook").respond_with_data("ok")
    lease = delivery.next_attempt_at
    assert sending.delivery_send(delivery_id=delivery.pk, lease=lease) == DeliveryStatus.SUCCEEDED
    assert sending.delivery_send(delivery_id=delivery.pk, lease=lease) is None
    assert len(receiver.log) == 1


def test_a_lost_message_is_queued_again_once_its_lease_ends(hooked_app, delivery, monkeypatch):
    queued = []
    monkeypatch.setattr(sending, "_deliveries_publish", lambda ids, lease, **options: queued.append(ids))
    assert sending.deliveries_send_due() == 0  # still leased to the message sent at fan-out
    with time_machine.travel(delivery.next_attempt_at + timedelta(seconds=1)):
        assert sending.deliveries_send_due() == 1
        assert sending.deliveries_send_due() == 0  # leased again, to the message just queued
    assert queued == [[delivery.pk]]


def test_nothing_secret_reaches_the_logs_or_the_error_text(hooked_app, receiver, delivery, caplog):
    receiver.expect_request("/hook").respond_with_data(hooked_app.raw_secret, status=500)
    with caplog.at_level(logging.DEBUG):
        attempt(delivery)
    signature = receiver.log[0][0].headers["webhook-signature"]
    for secret in (hooked_app.raw_secret, hooked_app.raw_signing_secret, signature.split(",", 1)[1]):
        assert secret not in caplog.text
        assert secret not in delivery.last_error


# --- chunks ------------------------------------------------------------------------------------


def _chunk(hooked_app, n):
    record_and_relay(hooked_app.device, n=n)
    deliveries = list(Delivery.objects.order_by("pk"))
    lease = deliveries[0].next_attempt_at
    return [delivery.pk for delivery in deliveries], lease


def test_a_chunk_is_sent_over_one_connection_with_successes_written_in_bulk(
    hooked_app, receiver, django_assert_max_num_queries
):
    receiver.expect_request("/hook").respond_with_data("ok")
    ids, lease = _chunk(hooked_app, 30)
    # claim, load, and two bulk writes of successes: no per-delivery query
    with django_assert_max_num_queries(4):
        outcomes = sending.deliveries_send(delivery_ids=ids, lease=lease)
    assert set(outcomes.values()) == {DeliveryStatus.SUCCEEDED}
    assert Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED, attempts=1, last_status_code=200).count() == 30
    assert len({request.headers["webhook-id"] for request, _ in receiver.log}) == 30


def test_after_a_receiver_fails_to_answer_the_rest_of_the_chunk_waits_for_its_retry(hooked_app):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    Application.objects.filter(pk=hooked_app.pk).update(callback_url=f"http://127.0.0.1:{dead_port}/hook")
    ids, lease = _chunk(hooked_app, 5)
    outcomes = sending.deliveries_send(delivery_ids=ids, lease=lease)
    assert list(outcomes.values()) == ["retrying"]
    first, *rest = Delivery.objects.order_by("pk")
    assert first.attempts == 1
    assert {(d.attempts, d.next_attempt_at) for d in rest} == {(0, first.next_attempt_at)}


def test_a_chunk_out_of_time_hands_the_rest_back_unattempted(
    hooked_app, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(fanout, "_deliveries_publish", lambda ids, lease, **options: queued.append(ids))
    monkeypatch.setattr(sending, "CHUNK_BUDGET_SECONDS", 0)
    receiver.expect_request("/hook").respond_with_data("ok")
    ids, lease = _chunk(hooked_app, 4)
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = sending.deliveries_send(delivery_ids=ids, lease=lease)
    assert list(outcomes) == ids[:1]
    assert queued == [ids[1:]]
    rest = Delivery.objects.filter(pk__in=ids[1:])
    assert set(rest.values_list("status", "attempts")) == {(DeliveryStatus.PENDING, 0)}
    assert len(receiver.log) == 1


def test_retry_after_as_an_http_date():
    from email.utils import format_datetime

    with time_machine.travel(timezone.now(), tick=False):
        later = format_datetime(timezone.now() + timedelta(minutes=10), usegmt=True)
        assert 590 <= sending._retry_after_seconds(later) <= 600
        assert sending._retry_after_seconds("soon") is None
        assert sending._retry_after_seconds(str(10**9)) == sending.MAX_RETRY_AFTER


def _misbehaving_receiver(server, behaviour, sent):
    """Answers 200 with a 10,000-byte Content-Length, then misbehaves."""
    connection, _ = server.accept()
    with connection:
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
        try:
            if behaviour == "trickles":  # each byte well within the timeout, the whole far past it
                for _ in range(10_000):
                    connection.sendall(b"x")
                    sent.append(1)
                    time.sleep(0.05)
            elif behaviour == "stalls":
                connection.recv(1)  # until the portal hangs up
            else:  # "hangs up early"
                connection.sendall(b"x" * 10)
        except OSError:
            pass  # the portal hung up


@pytest.mark.parametrize("behaviour", ["trickles", "stalls", "hangs up early"])
def test_a_receiver_that_answers_then_misbehaves_is_cut_off_and_the_send_recorded(
    hooked_app, delivery, settings, behaviour
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    sent = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        thread = threading.Thread(target=_misbehaving_receiver, args=(server, behaviour, sent), daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
        Application.objects.filter(pk=hooked_app.pk).update(callback_url=url)
        attempt(delivery)
        thread.join(timeout=60)
    assert delivery.status == DeliveryStatus.SUCCEEDED  # the status line is what counts
    assert delivery.attempts == 1
    assert not thread.is_alive() and len(sent) < 10_000


def test_the_due_work_takes_held_rows_of_resumed_applications_first_and_never_a_paused_ones(db):
    paused = ApplicationFactory(paused_at=timezone.now(), callback_url="https://paused.example/hook")
    running = ApplicationFactory(callback_url="https://running.example/hook")
    now = timezone.now()
    Delivery.objects.bulk_create(
        [Delivery(application=paused, event_type="device.data", next_attempt_at=None) for _ in range(5)]
    )
    due = Delivery.objects.create(application=running, event_type="device.data", next_attempt_at=now)
    held = Delivery.objects.create(application=running, event_type="device.data", next_attempt_at=None)
    Delivery.objects.create(application=running, event_type="device.data", next_attempt_at=now + timedelta(hours=1))
    assert sending.deliveries_claim_due(now=now, limit=1)[0] == [held.pk]
    assert sending.deliveries_claim_due(now=now)[0] == [due.pk]
    assert sending.deliveries_claim_due(now=now)[0] == []
