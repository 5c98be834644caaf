"""Sending deliveries: taking an attempt (the lease), the HTTP POST, the retry schedule, recording
successes and failures, and the due work the beat task queues.

Delivery is at least once and the truth is in the database: the outbox relay hands DeviceEvents to
`fanout.deliveries_fan_out`, which writes one Delivery row per (event, linked application) and queues a
send after commit. A Delivery's `next_attempt_at` is both its schedule and its lease: whoever moves
it forward with a conditional UPDATE owns the next attempt, so a lost task message, a killed worker
or a broker that was down only delays a delivery until the beat task (`deliveries_send_due`, every
30 s) finds it due again.
"""

import logging
import os
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
import urllib3
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import ssrf
from ..models import Application, Delivery, DeliveryStatus
from ..sql import successes_write
from .applications import application_callback_off, application_pause
from .fanout import DUE_BATCH, ENQUEUE_LEASE, _deliveries_enqueue, _deliveries_publish
from .webhooks import webhook_credentials, webhook_request

logger = logging.getLogger(__name__)

# Waits after the 1st, 2nd, ... failed attempt; after the last one the delivery is `failed`.
RETRY_DELAYS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
RETRY_JITTER = 0.2
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
MAX_RETRY_AFTER = 10 * 3600
PAUSE_AFTER_FAILING = timedelta(days=5)
# Waits this short are queued with a countdown; longer ones are left to the beat task.
SHORT_WAIT_SECONDS = 60
RESPONSE_READ_LIMIT = 64 * 1024
# The time after which a send task starts no new send, and how many successes it writes at a time.
CHUNK_BUDGET_SECONDS = 60
SUCCESS_FLUSH = 25
SUCCESS_FLUSH_SECONDS = 0.5


_http_lock = threading.Lock()
_http_session = None
_http_pid = None


def http_session() -> requests.Session:
    """One connection pool per worker process, so sends to one receiver reuse connections."""
    global _http_session, _http_pid
    if _http_session is None or _http_pid != os.getpid():
        with _http_lock:
            if _http_session is None or _http_pid != os.getpid():
                _http_session, _http_pid = ssrf.session_create(), os.getpid()
    return _http_session


def _send_lease(count) -> timedelta:
    # Longer than a task can spend on its deliveries, so only a dead worker's are ever taken over.
    budget = CHUNK_BUDGET_SECONDS if count > 1 else 0
    return timedelta(seconds=budget + 2 * settings.WEBHOOK_TIMEOUT_SECONDS + 30)


def _claim(delivery_ids, lease, now) -> list[Delivery]:
    """Takes the next attempt of those deliveries no other worker has; returns them, loaded.

    One conditional UPDATE decides; its new `next_attempt_at` (this call's own timestamp) then
    tells the rows this call took apart from the others.
    """
    # The paused check is an IN (subquery) on applications, not a join: with a join Django moves the
    # whole WHERE into a subquery, and PostgreSQL would not re-check next_attempt_at on the row a
    # concurrent claim just changed, so two workers could take the same attempt.
    active = Application.objects.filter(paused_at__isnull=True).values("pk")
    rows = Delivery.objects.filter(pk__in=delivery_ids, status=DeliveryStatus.PENDING, application_id__in=active)
    rows = rows.filter(next_attempt_at=lease) if lease is not None else rows.filter(next_attempt_at__lte=now)
    claimed_until = now + _send_lease(len(delivery_ids))
    # Counted when taken, so a delivery that kills its worker still runs out of attempts.
    if not rows.update(next_attempt_at=claimed_until, attempts=F("attempts") + 1):
        return []
    return list(
        Delivery.objects.filter(pk__in=delivery_ids, next_attempt_at=claimed_until)
        .select_related("application__owner", "event__device__product")
        .order_by("pk")
    )


def _post(url, body, headers):
    """(status code, Retry-After seconds or None, error text). Error texts never quote the URL,
    the headers or the response, which could hold secrets."""
    try:
        # Prepared by hand: Session.post would merge session-level settings the portal never sets.
        request = requests.PreparedRequest()
        request.prepare(method="POST", url=url, headers=headers, data=body)
        response = http_session().send(
            request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS, allow_redirects=False, stream=True
        )
    except ssrf.UnsafeTarget as exc:
        return None, None, exc.message
    except requests.exceptions.SSLError:
        return None, None, "TLS handshake or certificate check failed."
    except requests.exceptions.ConnectTimeout:
        return None, None, "Connection timed out."
    except requests.exceptions.ReadTimeout:
        return None, None, f"No response within {settings.WEBHOOK_TIMEOUT_SECONDS} s."
    except requests.exceptions.ConnectionError:
        return None, None, "Could not connect to the callback."
    except requests.exceptions.RequestException as exc:
        return None, None, f"Request failed ({type(exc).__name__})."
    try:
        # Drained (so the connection is reused) up to a size and a time; past either, or on any
        # error, the connection is dropped. The timeout bounds each read, not the whole answer:
        # read1 takes what has arrived instead of waiting for a full buffer, and no read starts
        # once the timeout has passed, so a receiver trickling or stalling its body costs at most
        # twice the timeout.
        read = 0
        drain_until = time.monotonic() + settings.WEBHOOK_TIMEOUT_SECONDS
        while read <= RESPONSE_READ_LIMIT and time.monotonic() < drain_until:
            chunk = response.raw.read1(8192, decode_content=False)
            if not chunk:
                break
            read += len(chunk)
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError):
        pass  # the status line is what counts
    finally:
        response.close()
    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
    if 200 <= response.status_code < 300:
        return response.status_code, None, ""
    if 300 <= response.status_code < 400:
        return response.status_code, retry_after, f"Redirect ({response.status_code}) not followed."
    reason = (response.reason or "")[:60]
    return response.status_code, retry_after, f"The callback answered {response.status_code} {reason}".strip()


def _retry_after_seconds(value) -> int | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(int(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, min(int((moment - timezone.now()).total_seconds()), MAX_RETRY_AFTER))


def retry_delay(attempts: int, retry_after: int | None = None) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: the schedule ±20 %, and never
    before the receiver's Retry-After."""
    base = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    delay = base * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def delivery_send(*, delivery_id, lease=None) -> str | None:
    """Makes one attempt of a delivery if this caller can take it; returns the outcome
    (`succeeded`, `retrying`, `failed`) or None when there was nothing to do."""
    return deliveries_send(delivery_ids=[delivery_id], lease=lease).get(delivery_id)


def deliveries_send(*, delivery_ids, lease=None) -> dict:
    """One attempt of each delivery this caller can take, in turn over the worker's connection
    pool; returns {delivery id: outcome}.

    `lease` is the `next_attempt_at` the queuing side set: only the task carrying it may take the
    deliveries before they are due again. Successes are written in bulk (a crash before that only
    means they are sent again: at least once). A task stops starting sends after
    CHUNK_BUDGET_SECONDS and hands the rest back; after a receiver fails to answer, the rest of
    its deliveries in the chunk wait for its first retry instead of each waiting for a timeout.
    """
    now = timezone.now()
    deliveries = _claim(delivery_ids, lease, now)
    outcomes = {}
    succeeded = []
    later = {}  # application id -> when its remaining deliveries are due again
    credentials = {}
    handed_back = []
    started = flushed = time.monotonic()
    for index, delivery in enumerate(deliveries):
        application = delivery.application
        out_of_time = index > 0 and time.monotonic() - started > CHUNK_BUDGET_SECONDS
        if application.pk in later or out_of_time:
            handed_back.append(delivery)
            continue
        if not application.callback_url:
            outcomes[delivery.pk] = _attempt_record(
                delivery, status_code=None, error="The application has no callback URL.", final=True
            )
            continue
        if application.pk not in credentials:
            credentials[application.pk] = webhook_credentials(application)
        body, headers = webhook_request(delivery, credentials=credentials[application.pk])
        attempt_started = time.monotonic()
        callback_url = application.callback_url
        status_code, retry_after, error = _post(callback_url, body, headers)
        latency_ms = int((time.monotonic() - attempt_started) * 1000)
        if not error:
            delivery.last_status_code, delivery.last_latency_ms = status_code, latency_ms
            succeeded.append(delivery)
            outcomes[delivery.pk] = DeliveryStatus.SUCCEEDED
            if len(succeeded) >= SUCCESS_FLUSH or time.monotonic() - flushed > SUCCESS_FLUSH_SECONDS:
                _successes_record(succeeded)
                succeeded, flushed = [], time.monotonic()
            continue
        if status_code == 410:
            outcomes[delivery.pk] = _attempt_record(
                delivery, status_code=410, error=error, latency_ms=latency_ms, final=True
            )
            application_callback_off(
                application=application, url=callback_url, reason="The callback answered 410 Gone."
            )
            later[application.pk] = timezone.now()
            continue
        outcomes[delivery.pk] = _attempt_record(
            delivery, status_code=status_code, error=error, latency_ms=latency_ms, retry_after=retry_after
        )
        if status_code is None or retry_after is not None:
            later[application.pk] = delivery.next_attempt_at or timezone.now()
    _successes_record(succeeded)
    if handed_back:
        _hand_back(handed_back, later)
    return outcomes


def _successes_record(deliveries):
    """Writes a batch of successes; delivered_at is the time of the write (within a flush period)."""
    if not deliveries:
        return
    now = timezone.now()
    successes_write(deliveries, now)
    healed = {delivery.application_id for delivery in deliveries if delivery.application.failing_since is not None}
    if healed:
        Application.objects.filter(pk__in=healed).update(failing_since=None)
    for delivery in deliveries:
        logger.info(
            "delivery.sent",
            extra={
                "delivery_id": delivery.pk,
                "app_id": delivery.application.app_id,
                "attempt": delivery.attempts,
                "status": delivery.last_status_code,
                "ms": delivery.last_latency_ms,
            },
        )


def _hand_back(deliveries, later):
    """Returns unattempted deliveries: their attempt is not counted; those of a receiver that just
    failed wait for its retry, the others are queued again at once."""
    now = timezone.now()
    requeue = []
    for delivery in deliveries:
        due = later.get(delivery.application_id)
        if due is None:
            requeue.append(delivery.pk)
        else:
            Delivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") - 1, next_attempt_at=due)
    if requeue:
        lease = now + ENQUEUE_LEASE
        Delivery.objects.filter(pk__in=requeue).update(attempts=F("attempts") - 1, next_attempt_at=lease)
        _deliveries_enqueue(requeue, lease)


@transaction.atomic
def _attempt_record(delivery, *, status_code, error, latency_ms=None, retry_after=None, final=False):
    now = timezone.now()
    application = delivery.application
    fields = {"last_attempt_at": now, "last_status_code": status_code, "last_latency_ms": latency_ms}
    log = {"delivery_id": delivery.pk, "app_id": application.app_id, "attempt": delivery.attempts}
    if final or delivery.attempts >= MAX_ATTEMPTS:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=error[:300], **fields
        )
        delivery.next_attempt_at = None
        outcome = DeliveryStatus.FAILED
    else:
        delay = retry_delay(delivery.attempts, retry_after)
        next_attempt_at = now + timedelta(seconds=delay)
        Delivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=next_attempt_at, last_error=error[:300], **fields
        )
        delivery.next_attempt_at = next_attempt_at
        if delay <= SHORT_WAIT_SECONDS:
            _deliveries_enqueue([delivery.pk], next_attempt_at, countdown=delay)
        outcome = "retrying"
    logger.warning("delivery.failed", extra={**log, "status": status_code, "outcome": outcome})
    _failing_note(application, now)
    return outcome


def _failing_note(application, now):
    """Remembers since when the application fails; after PAUSE_AFTER_FAILING it is paused and
    its owner emailed (once)."""
    if application.failing_since is None:
        Application.objects.filter(pk=application.pk, failing_since__isnull=True).update(failing_since=now)
        return
    if now - application.failing_since >= PAUSE_AFTER_FAILING:
        days = PAUSE_AFTER_FAILING.days
        application_pause(
            application=application, reason=f"Deliveries have failed for {days} days in a row.", notify=True
        )


def deliveries_claim_due(*, now=None, limit=DUE_BATCH) -> tuple[list[int], datetime]:
    """Leases due deliveries for queuing. skip_locked lets several beat runs or workers share the
    work without waiting on each other; the lease keeps the next run from queuing them again."""
    now = now or timezone.now()
    lease = now + ENQUEUE_LEASE
    pending = Delivery.objects.select_for_update(skip_locked=True, of=("self",)).filter(
        status=DeliveryStatus.PENDING, application__paused_at__isnull=True
    )
    with transaction.atomic():
        # Held rows (no next attempt) of an application that is not paused are due too, first: one
        # fanned out while a concurrent resume ran would otherwise wait for ever. Two queries, so
        # each has its own partial index (delivery_held, delivery_due) and the held rows of paused
        # applications, however many, are never read.
        ids = list(pending.filter(next_attempt_at__isnull=True).order_by("pk").values_list("pk", flat=True)[:limit])
        if len(ids) < limit:
            due = pending.filter(next_attempt_at__lte=now).order_by("next_attempt_at", "pk")
            ids += due.values_list("pk", flat=True)[: limit - len(ids)]
        if ids:
            Delivery.objects.filter(pk__in=ids).update(next_attempt_at=lease)
    return ids, lease


def deliveries_send_due(*, limit=DUE_BATCH, max_batches=20) -> int:
    """Queues every due delivery (the beat task, every 30 s)."""
    total = 0
    for _ in range(max_batches):
        ids, lease = deliveries_claim_due(limit=limit)
        if ids:
            _deliveries_publish(ids, lease)
        total += len(ids)
        if len(ids) < limit:
            break
    if total:
        logger.info("delivery.due_queued", extra={"deliveries": total})
    return total


def lease_parse(value) -> datetime | None:
    if value in (None, ""):
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
