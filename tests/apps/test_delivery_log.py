"""An application's delivery log: 25 a page by cursor, newest first, refreshed in place (portal/live.py)."""

import re
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.models import Delivery, DeliveryStatus
from apps.selectors import delivery_page_for_application

from ..factories import ApplicationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(owner):
    """60 deliveries, a second apart, some of them sharing a created_at (ties broken by id)."""
    application = ApplicationFactory(owner=owner, callback_url="https://hooks.example.com/in")
    now = timezone.now()
    for i in range(60):
        delivery = Delivery.objects.create(
            application=application, event_type="device.data",
            status=DeliveryStatus.FAILED if i % 3 == 0 else DeliveryStatus.SUCCEEDED,
        )  # fmt: skip
        Delivery.objects.filter(pk=delivery.pk).update(created_at=now - timedelta(seconds=i // 2))
    return application


def _ids(page):
    return [d.pk for d in page.rows]


def test_pages_walk_the_whole_log_once_each_way(logged):
    log = Delivery.objects.filter(application=logged).order_by("-created_at", "-pk")
    everything = list(log.values_list("pk", flat=True))
    first = delivery_page_for_application(logged)
    assert len(first.rows) == 25 and first.newer is None and first.older
    second = delivery_page_for_application(logged, before=first.older)
    third = delivery_page_for_application(logged, before=second.older)
    assert _ids(first) + _ids(second) + _ids(third) == everything
    assert third.older is None and len(third.rows) == 10
    assert _ids(delivery_page_for_application(logged, after=third.newer)) == _ids(second)
    # From the second page, newer is the first page, whole.
    back = delivery_page_for_application(logged, after=second.newer)
    assert _ids(back) == _ids(first) and back.newer is None


def test_a_malformed_cursor_shows_the_first_page(logged):
    first = _ids(delivery_page_for_application(logged))
    for cursor in ("", "nonsense", "!!!", "bm90fGE"):
        assert _ids(delivery_page_for_application(logged, before=cursor)) == first


def test_the_page_links_keep_the_filter(owner_client, logged):
    html = owner_client.get(reverse("apps:detail", args=[logged.app_id]), {"status": "failed"}).content.decode()
    assert html.count('<td data-label="Event"') == 20
    assert "Older" not in html  # 20 failed: one page
    html = owner_client.get(reverse("apps:detail", args=[logged.app_id])).content.decode()
    assert html.count('<td data-label="Event"') == 25
    older = re.search(r'href="\?before=([\w-]+)#deliveries" rel="next"', html)
    assert older
    page_two = owner_client.get(reverse("apps:detail", args=[logged.app_id]), {"before": older.group(1)})
    assert 'rel="prev">← Newer' in page_two.content.decode()


def test_the_log_refreshes_in_place(owner_client, logged, django_assert_max_num_queries):
    url = reverse("apps:deliveries-live", args=[logged.app_id])
    page = owner_client.get(reverse("apps:detail", args=[logged.app_id])).content.decode()
    assert f'data-live-url="{url}"' in page and 'data-live="deliveries"' in page and 'data-live="health"' in page
    first = owner_client.get(url)
    assert set(first.json()["fragments"]) == {"health", "deliveries"}
    # Session, user, the application, the page of deliveries: no rendering.
    with django_assert_max_num_queries(4):
        assert owner_client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == HTTPStatus.NOT_MODIFIED
    newest = Delivery.objects.filter(application=logged).order_by("-created_at", "-pk").first()
    Delivery.objects.filter(pk=newest.pk).update(status=DeliveryStatus.PENDING, attempts=4, last_error="timed out")
    changed = owner_client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == HTTPStatus.OK and "timed out" in changed.json()["fragments"]["deliveries"]


def test_only_the_owner_reads_the_log(other_owner, logged):
    client = Client()
    client.force_login(other_owner)
    assert client.get(reverse("apps:deliveries-live", args=[logged.app_id])).status_code == HTTPStatus.NOT_FOUND
