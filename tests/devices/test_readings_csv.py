"""The readings of a chart's range as CSV (issue 19): streamed, the range and the viewer's history
bound as the charts have them, declared fields first, and no cell a spreadsheet would run."""

import csv
import io
import json
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from devices.models import Reading
from tests.factories import DeviceFactory, ProductFieldFactory

pytestmark = pytest.mark.django_db


def _csv(response):
    assert response.status_code == HTTPStatus.OK
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def reporting(owner):
    now = timezone.now()
    device = DeviceFactory(owner=owner, serial="TP-0001", owned_since=now - timedelta(hours=2),
                           values={"temperature": 21.5, "rssi": -70})  # fmt: skip
    ProductFieldFactory(product=device.product, key="temperature", label="Temperature", unit="°C")
    Reading.objects.bulk_create(
        [
            Reading(device=device, recorded_at=now - timedelta(hours=3), values={"temperature": 1}),  # earlier owner
            Reading(device=device, recorded_at=now - timedelta(minutes=90), values={"temperature": 19}),  # outside 1 h
            Reading(device=device, recorded_at=now - timedelta(minutes=20),
                    values={"temperature": 20.5, "rssi": -71, "note": "=HYPERLINK(\"http://x\")", "door": True}),
            Reading(device=device, recorded_at=now - timedelta(minutes=10), values={"temperature": 21.5, "rssi": -70}),
        ]
    )  # fmt: skip
    return device


def test_the_owner_downloads_the_ranges_readings_oldest_first(owner_client, reporting):
    response = owner_client.get(reverse("devices:readings-csv", args=[reporting.pk]) + "?range=1h")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="TP-0001-readings-1h.csv"'
    rows = _csv(response)
    assert rows[0] == ["recorded_at", "temperature", "rssi", "other"]
    assert [row[1:3] for row in rows[1:]] == [["20.5", "'-71"], ["21.5", "'-70"]]
    # A key no longer sent goes to "other", as JSON; its formula is text, not a formula.
    assert json.loads(rows[1][3]) == {"note": '=HYPERLINK("http://x")', "door": True}
    assert rows[1][0].endswith("+00:00")


def test_a_cell_that_would_run_as_a_formula_is_written_as_text(owner_client, owner):
    device = DeviceFactory(owner=owner, values={"cmd": "=1+1"})
    Reading.objects.create(device=device, recorded_at=timezone.now(), values={"cmd": "=1+1"})
    rows = _csv(owner_client.get(reverse("devices:readings-csv", args=[device.pk])))
    assert rows[1][1] == "'=1+1"


def test_the_download_starts_where_the_viewers_history_does(owner_client, reporting):
    rows = _csv(owner_client.get(reverse("devices:readings-csv", args=[reporting.pk]) + "?range=24h"))
    assert [row[1] for row in rows[1:]] == ["19", "20.5", "21.5"]  # not the earlier owner's reading


def test_the_csv_link_stands_by_the_range_switch_with_the_range(owner_client, reporting):
    html = owner_client.get(reverse("devices:detail", args=[reporting.pk]) + "?range=7d").content.decode()
    switch = html[html.index('class="range-switch"'):html.index("</nav>", html.index('class="range-switch"'))]
    assert f'href="/devices/{reporting.pk}/readings.csv?range=7d"' in switch


def test_a_stranger_gets_404(client, other_owner, reporting):
    client.force_login(other_owner)
    assert client.get(reverse("devices:readings-csv", args=[reporting.pk])).status_code == HTTPStatus.NOT_FOUND
