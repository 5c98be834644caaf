"""The device page's charts (issue 19): one per numeric field, a time axis, ranges of 1 h to 30 days,
the readings bucketed in SQL (never more points than the chart is wide), the same buckets on both
databases as in Python, bounded where the viewer's history starts."""

import math
import random
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from devices import reading_charts, selectors
from devices.models import Reading
from devices.sql import NUMBER_LIMIT
from tests.factories import DeviceFactory, ProductFieldFactory

from .test_device_page import PAGE_QUERIES, _busy

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"


def _python_buckets(samples, *, start, width):
    """The buckets computed in Python from (time, value) pairs: {bucket: (count, min, max, avg)}."""
    grouped = {}
    for when, value in samples:
        if isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) < NUMBER_LIMIT:
            continue
        grouped.setdefault(math.floor((when.timestamp() - start) / width), []).append(float(value))
    return {b: (len(v), min(v), max(v), sum(v) / len(v)) for b, v in grouped.items()}


@pytest.mark.parametrize("range_key", list(reading_charts.RANGES))
def test_the_buckets_in_sql_are_the_buckets_in_python(range_key):
    device = DeviceFactory(owner=None)
    window = reading_charts.chart_window(range_key, timezone.now())
    rng = random.Random(19)
    seconds = window.end - window.start
    samples = []
    for _ in range(600):
        # Irregular times with fractions of a second, a few exactly on a bucket's edge.
        offset = rng.choice([rng.uniform(0, seconds - 1), window.width * rng.randrange(reading_charts.BUCKETS)])
        value = rng.choice([rng.uniform(-50, 50), rng.randrange(-5, 5), "n/a", True, None, 10**400])
        samples.append((datetime.fromtimestamp(window.start + offset, tz=UTC), value))
    Reading.objects.bulk_create(
        [Reading(device=device, recorded_at=when, values={"t": value, "other": 1}) for when, value in samples]
    )
    rows = selectors.reading_buckets_for_device(
        device, keys=["t"], since=window.since, until=window.until, start=window.start, width=window.width
    )
    in_sql = {row[0]: (row[1], row[2], row[3], row[4]) for row in rows if row[1]}
    in_python = _python_buckets(samples, start=window.start, width=window.width)
    assert in_sql.keys() == in_python.keys()
    assert len(rows) <= reading_charts.BUCKETS
    for b, (count, low, high, average) in in_python.items():
        assert in_sql[b][:3] == (count, pytest.approx(low), pytest.approx(high))
        assert float(in_sql[b][3]) == pytest.approx(average)


def test_a_month_of_readings_every_minute_draws_no_more_points_than_the_chart_is_wide(owner_client, owner):
    device = DeviceFactory(owner=owner, values={"temperature": 20.0})
    ProductFieldFactory(product=device.product, key="temperature", label="Temperature", unit="°C", decimals=1)
    now = timezone.now()
    Reading.objects.bulk_create(
        [
            Reading(device=device, recorded_at=now - timedelta(minutes=i), values={"temperature": math.sin(i / 90)})
            for i in range(0, 30 * 24 * 60, 5)  # every 5 minutes: the same buckets, a faster test
        ]
    )
    response = owner_client.get(reverse("devices:detail", args=[device.pk]) + "?range=30d")
    svg = _svg(response, "temperature")
    circles = svg.findall(f".//{SVG}g[@class='chart-points']/{SVG}circle")
    assert 200 <= len(circles) <= reading_charts.BUCKETS <= int(svg.get("viewBox").split()[2])
    assert all(float(c.get("cx")) <= reading_charts.PLOT_RIGHT for c in circles)


def _svg(response, key):
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    start = html.rindex("<svg", 0, html.index(f'aria-labelledby="chart-{key}-t') + 1)
    end = html.index("</svg>", start) + len("</svg>")
    return ET.fromstring(html[start:end].replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


def test_a_chart_has_axes_labels_its_unit_and_a_text_alternative(owner_client, owner):
    device = DeviceFactory(owner=owner, values={"temperature": 21.5})
    ProductFieldFactory(product=device.product, key="temperature", label="Temperature", unit="°C", decimals=1)
    now = timezone.now()
    Reading.objects.bulk_create(
        [
            Reading(device=device, recorded_at=now - timedelta(minutes=i), values={"temperature": 18 + i / 10})
            for i in range(50)
        ]
    )
    svg = _svg(owner_client.get(reverse("devices:detail", args=[device.pk]) + "?range=1h"), "temperature")
    assert svg.find(f"{SVG}title").text == "Temperature (°C)"
    assert svg.find(f"{SVG}desc").text == (
        "Temperature, the last hour: minimum 18.0\xa0°C, maximum 22.9\xa0°C, average 20.4\xa0°C, from 50 readings."
    )
    assert len(svg.findall(f"{SVG}line[@class='chart-axis']")) == 2  # the time axis and the value axis
    labels = [text.text for text in svg.iter(f"{SVG}text")]
    assert any(":" in label for label in labels)  # times on the time axis (15 minutes apart)
    assert {"18", "20", "22"} <= set(labels)  # round values on the value axis
    circles = svg.findall(f".//{SVG}circle")
    assert len(circles) == 50
    assert circles[-1].find(f"{SVG}title").text.endswith("18.0\xa0°C")  # the newest reading, on hover or tap
    # hard-coded colours would not read in a dark theme: the chart's colours are the stylesheet's
    assert not any(el.get("fill") or el.get("stroke") for el in svg.iter())


@pytest.mark.parametrize(
    ("query", "current"), [("?range=1h", "1h"), ("?range=7d", "7d"), ("?range=x", "24h"), ("", "24h")]
)
def test_the_range_switch_is_links_and_an_unknown_range_is_the_default(owner_client, owned_device, query, current):
    html = owner_client.get(reverse("devices:detail", args=[owned_device.pk]) + query).content.decode()
    words = reading_charts.RANGES[current][1]
    assert f'<a href="?range={current}#history" title="The last {words}" aria-current="true"' in html
    assert html.count('aria-current="true"') == 1


@pytest.mark.parametrize("range_key", list(reading_charts.RANGES))
def test_each_range_is_the_same_number_of_queries(owner_client, owner, range_key, django_assert_num_queries):
    device = _busy(owner, links=1, commands=1)
    with django_assert_num_queries(PAGE_QUERIES):
        response = owner_client.get(reverse("devices:detail", args=[device.pk]) + f"?range={range_key}")
    assert response.status_code == HTTPStatus.OK


def test_what_an_earlier_owner_saw_stays_out_of_the_chart(owner_client, owner):
    now = timezone.now()
    device = DeviceFactory(owner=owner, owned_since=now - timedelta(minutes=27), values={"t": 1})
    Reading.objects.bulk_create(
        [Reading(device=device, recorded_at=now - timedelta(minutes=m), values={"t": m}) for m in range(0, 60, 5)]
    )
    svg = _svg(owner_client.get(reverse("devices:detail", args=[device.pk]) + "?range=1h"), "t")
    assert "from 6 readings" in svg.find(f"{SVG}desc").text  # minutes 0 to 25, not 30 to 55


def test_keys_no_field_declares_are_charted_when_numbers_and_text_is_not(owner_client, owner):
    device = DeviceFactory(owner=owner, values={"rssi": -70, "door": "open", "on": True})
    html = owner_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    assert 'aria-labelledby="chart-rssi-t' in html
    assert "chart-door-t" not in html and "chart-on-t" not in html


def test_a_range_without_readings_says_so(owner_client, owner):
    device = DeviceFactory(owner=owner, values={"t": 1})
    html = owner_client.get(reverse("devices:detail", args=[device.pk]) + "?range=1h").content.decode()
    assert "t: no readings in the last hour." in html


def test_the_line_breaks_where_the_device_was_silent(owner_client, owner):
    device = DeviceFactory(owner=owner, values={"t": 1})  # offline after 600 s (the product's default)
    now = timezone.now()
    minutes = [*range(0, 10), *range(40, 50)]  # half an hour of silence between two runs
    Reading.objects.bulk_create(
        [Reading(device=device, recorded_at=now - timedelta(minutes=m), values={"t": m}) for m in minutes]
    )
    svg = _svg(owner_client.get(reverse("devices:detail", args=[device.pk]) + "?range=1h"), "t")
    assert svg.find(f"{SVG}path").get("d").count("M") == 2
