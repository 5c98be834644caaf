"""200 devices checking in at the same moment on PostgreSQL: every check-in is stored.

A server answers them with a bounded number of workers (each holding one database connection),
so 200 simultaneous requests are served by 20 worker threads here, released together.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connection

from devices.models import Device, DeviceEvent, DeviceStatus, Reading
from devices.protocol.services import device_checkin
from devices.services import token_digest

from ..factories import DeviceFactory

DEVICES = 200
WORKERS = 20


def test_two_hundred_check_ins_at_once_are_all_stored(transactional_db, requires_postgres, owner):
    devices = [DeviceFactory(owner=owner, token_digest=token_digest(f"token-{i}")) for i in range(DEVICES)]
    barrier = threading.Barrier(WORKERS)
    released = threading.Event()
    answers, errors = [], []

    def check_in(i):
        try:
            if not released.is_set():  # the first round of every worker starts together
                barrier.wait()
                released.set()
            answers.append(device_checkin(token=f"token-{i}", values={"n": i}, ip=f"10.2.{i // 250}.{i % 250}"))
        except Exception as exc:  # a failure is the finding: collect it for the assertion
            errors.append(repr(exc))

    def worker_thread(indexes):
        for i in indexes:
            check_in(i)
        connection.close()

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(worker_thread, [range(w, DEVICES, WORKERS) for w in range(WORKERS)]))

    assert errors == []
    assert len(answers) == DEVICES
    assert Reading.objects.count() == DEVICES
    assert Device.objects.filter(pk__in=[d.pk for d in devices], status=DeviceStatus.ONLINE).count() == DEVICES
    assert DeviceEvent.objects.filter(type="device.data").count() == DEVICES
    print(f"\n{DEVICES} concurrent check-ins: {len(answers)} answered, {Reading.objects.count()} readings stored")
