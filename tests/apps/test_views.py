"""The owner's application pages."""

import re
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.models import Application, AppLink, Connection, Delivery, DeliveryStatus
from apps.services import applications, links
from portal.secrets import decrypt

from ..factories import ApplicationFactory, DeviceFactory


@pytest.fixture
def own_app(owner):
    return ApplicationFactory(owner=owner, name="Dashboard")


def _detail(application):
    return reverse("apps:detail", args=[application.app_id])


# --- list --------------------------------------------------------------------------------------


def test_the_list_shows_own_managed_and_connected_applications(owner_client, owner, other_owner, own_app):
    ApplicationFactory(owner=None, managed=True, name="Maker Cloud", registration_url="https://maker.example")
    connected = ApplicationFactory(owner=other_owner, name="Energy Coach")
    Connection.objects.create(application=connected, user=owner)
    ApplicationFactory(owner=other_owner, name="Somebody Else's")
    response = owner_client.get(reverse("apps:list"))
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    for name in ("Dashboard", "Maker Cloud", "Energy Coach"):
        assert name in body
    assert "Somebody Else" not in body
    assert 'href="https://maker.example"' in body
    assert reverse("apps:create") in body


def test_the_list_is_a_fixed_number_of_queries(owner_client, owner, django_assert_num_queries):
    for _ in range(10):
        application = ApplicationFactory(owner=owner)
        application.links.create(device=DeviceFactory(owner=owner))
    ApplicationFactory(owner=None, managed=True)
    # session, user, the applications with their linked-device counts
    with django_assert_num_queries(3):
        response = owner_client.get(reverse("apps:list"))
    assert response.status_code == HTTPStatus.OK


def test_pages_need_a_login(client, own_app):
    for url in (reverse("apps:list"), reverse("apps:create"), _detail(own_app)):
        response = client.get(url)
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"].startswith(reverse("account_login"))


# --- create ------------------------------------------------------------------------------------


def test_create_shows_the_app_id_and_secret_once(owner_client, owner):
    response = owner_client.post(
        reverse("apps:create"),
        {
            "name": "Dashboard",
            "callback_url": "",
            "auth_style": "basic",
            "token_prefix": "Token",
            "secret_choice": "generate",
        },
    )
    # Redirect after the POST: the Secret is on the page it leads to, and only the first time.
    assert response.status_code == HTTPStatus.FOUND
    response = owner_client.get(response.url)
    assert response.status_code == HTTPStatus.OK
    assert "no-store" in response["Cache-Control"]
    application = Application.objects.get(owner=owner)
    body = response.content.decode()
    secret = re.search(r'data-secret="([^"]+)"', body).group(1)
    assert f'data-app-id="{application.app_id}"' in body
    assert decrypt(application.secret_encrypted) == secret and len(secret) >= 43
    assert 'data-copy="#app-secret"' in body
    detail = owner_client.get(_detail(application)).content.decode()
    assert secret not in detail


def test_reloading_the_page_with_a_new_secret_creates_nothing_and_shows_it_no_more(owner_client, owner):
    form = {"name": "Dashboard", "auth_style": "basic", "token_prefix": "Token", "secret_choice": "generate"}
    shown_at = owner_client.post(reverse("apps:create"), form).url
    secret = re.search(r'data-secret="([^"]+)"', owner_client.get(shown_at).content.decode()).group(1)
    reloaded = owner_client.get(shown_at, follow=True)
    assert Application.objects.filter(owner=owner).count() == 1
    assert secret not in reloaded.content.decode()
    assert reloaded.redirect_chain[-1][0] == _detail(Application.objects.get(owner=owner))
    assert "shown only once" in reloaded.content.decode()


def test_a_secret_shown_once_is_not_kept_in_the_session_in_clear(owner_client, owner):
    form = {"name": "Dashboard", "auth_style": "basic", "token_prefix": "Token", "secret_choice": "own"}
    owner_client.post(reverse("apps:create"), {**form, "secret": "my-very-own-secret-123"})
    from django.contrib.sessions.models import Session

    assert all("my-very-own-secret-123" not in str(s.get_decoded()) for s in Session.objects.all())


def test_create_with_my_own_secret_and_token_style(owner_client, owner):
    response = owner_client.post(
        reverse("apps:create"),
        {
            "name": "Tok",
            "auth_style": "token",
            "token_prefix": "Bearer",
            "secret_choice": "own",
            "secret": "typed-by-me-1234567890",
        },
    )
    assert response.status_code == HTTPStatus.FOUND
    application = Application.objects.get(owner=owner)
    assert application.token_prefix == "Bearer"
    assert decrypt(application.secret_encrypted) == "typed-by-me-1234567890"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"callback_url": "https://127.1/hook"}, "not allowed"),
        ({"callback_url": "http://example.com/hook"}, "https://"),
        ({"secret_choice": "own", "secret": ""}, "Type your Secret"),
        ({"secret_choice": "own", "secret": "short"}, "16 to 200"),
        ({"name": ""}, "required"),
    ],
)
def test_create_shows_errors_next_to_the_fields(owner_client, data, message):
    form = {"name": "Dashboard", "auth_style": "basic", "token_prefix": "Token", "secret_choice": "generate", **data}
    response = owner_client.post(reverse("apps:create"), form)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert message in response.content.decode()
    assert not Application.objects.exists()


# --- details -----------------------------------------------------------------------------------


def test_the_owner_sees_details_signing_secret_log_and_health(owner_client, own_app):
    Delivery.objects.create(
        application=own_app, event_type="ping", status=DeliveryStatus.FAILED, attempts=8, last_error="Boom 500"
    )
    response = owner_client.get(_detail(own_app))
    body = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert own_app.raw_signing_secret in body
    assert own_app.raw_secret not in body
    assert "Success rate (24 h)" in body and "Last success" in body and "Last failure" in body
    assert "Boom 500" in body
    assert "no-store" in response["Cache-Control"]


def test_the_log_filters_failed_deliveries(owner_client, own_app):
    Delivery.objects.create(application=own_app, event_type="device.data", status=DeliveryStatus.SUCCEEDED)
    Delivery.objects.create(application=own_app, event_type="device.offline", status=DeliveryStatus.FAILED)
    body = owner_client.get(_detail(own_app) + "?status=failed").content.decode()
    assert "device.offline" in body and "device.data" not in body


def test_a_managed_application_shows_no_secrets_to_owners(owner_client):
    managed = ApplicationFactory(owner=None, managed=True, description="Charts for everything.")
    response = owner_client.get(_detail(managed))
    body = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert "Charts for everything." in body
    assert managed.raw_signing_secret not in body
    assert "Deliveries" not in body


def test_linking_and_unlinking_from_the_application_page(owner_client, owner, own_app):
    device = DeviceFactory(owner=owner, name="Kitchen")
    response = owner_client.post(reverse("apps:device-link", args=[own_app.app_id]), {"device": device.pk})
    assert response.status_code == HTTPStatus.FOUND
    assert AppLink.objects.filter(application=own_app, device=device).exists()
    assert "Kitchen" in owner_client.get(_detail(own_app)).content.decode()
    owner_client.post(reverse("apps:device-unlink", args=[own_app.app_id]), {"device": device.pk})
    assert not AppLink.objects.exists()


def test_linking_from_the_device_page_returns_there(owner_client, owner):
    managed = ApplicationFactory(owner=None, managed=True)
    device = DeviceFactory(owner=owner)
    back = reverse("devices:detail", args=[device.pk])
    response = owner_client.post(
        reverse("apps:device-link", args=[managed.app_id]), {"device": device.pk, "next": back}
    )
    assert response["Location"] == back
    assert AppLink.objects.filter(application=managed, device=device).exists()


@pytest.mark.parametrize("device_value", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "foreign"])
def test_linking_a_device_that_is_not_yours_changes_nothing(owner_client, other_owner, own_app, device_value):
    if device_value == "foreign":
        device_value = DeviceFactory(owner=other_owner).pk
    response = owner_client.post(reverse("apps:device-link", args=[own_app.app_id]), {"device": device_value})
    assert response.status_code == HTTPStatus.FOUND
    assert not AppLink.objects.exists()


def test_settings_are_saved_and_a_bad_callback_is_a_form_error(owner_client, own_app):
    url = reverse("apps:settings", args=[own_app.app_id])
    data = {"name": "Renamed", "callback_url": "https://10.1.2.3/x", "auth_style": "token", "token_prefix": "Key"}
    response = owner_client.post(url, data)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "private address" in response.content.decode()
    response = owner_client.post(url, {**data, "callback_url": ""})
    assert response.status_code == HTTPStatus.FOUND
    own_app.refresh_from_db()
    assert (own_app.name, own_app.auth_style, own_app.token_prefix) == ("Renamed", "token", "Key")


def test_replacing_the_secret_shows_the_new_one_once(owner_client, own_app):
    response = owner_client.post(
        reverse("apps:secret", args=[own_app.app_id]), {"secret_choice": "own", "secret": "a-brand-new-secret-42"},
        follow=True,
    )
    assert response.status_code == HTTPStatus.OK
    assert 'data-secret="a-brand-new-secret-42"' in response.content.decode()
    own_app.refresh_from_db()
    assert decrypt(own_app.secret_encrypted) == "a-brand-new-secret-42"


def test_rotating_the_signing_secret(owner_client, own_app):
    owner_client.post(reverse("apps:signing-secret", args=[own_app.app_id]))
    own_app.refresh_from_db()
    assert applications.application_signing_secret(own_app) != own_app.raw_signing_secret


def test_pause_and_resume(owner_client, own_app):
    url = reverse("apps:pause", args=[own_app.app_id])
    owner_client.post(url)
    assert Application.objects.get(pk=own_app.pk).paused_at is not None
    owner_client.post(url)
    assert Application.objects.get(pk=own_app.pk).paused_at is None


def test_send_test_event_queues_a_ping(owner_client, own_app, private_targets):
    Application.objects.filter(pk=own_app.pk).update(callback_url="http://127.0.0.1:9/hook")
    response = owner_client.post(reverse("apps:test", args=[own_app.app_id]))
    assert response.status_code == HTTPStatus.FOUND
    assert Delivery.objects.get().event_type == "ping"


def test_send_test_event_without_a_callback_says_so(owner_client, own_app):
    response = owner_client.post(reverse("apps:test", args=[own_app.app_id]), follow=True)
    assert "Set a callback URL first." in response.content.decode()
    assert not Delivery.objects.exists()


def test_retry_and_replay(owner_client, own_app, private_targets):
    Application.objects.filter(pk=own_app.pk).update(callback_url="http://127.0.0.1:9/hook")
    failed = Delivery.objects.create(application=own_app, event_type="ping", status=DeliveryStatus.FAILED, attempts=8)
    owner_client.post(reverse("apps:retry", args=[own_app.app_id, failed.pk]))
    failed.refresh_from_db()
    assert failed.status == DeliveryStatus.PENDING and failed.attempts == 0
    Delivery.objects.filter(pk=failed.pk).update(status=DeliveryStatus.FAILED)
    owner_client.post(reverse("apps:replay", args=[own_app.app_id]))
    assert Delivery.objects.get().status == DeliveryStatus.PENDING


def test_delete(owner_client, own_app):
    assert owner_client.get(reverse("apps:delete", args=[own_app.app_id])).status_code == HTTPStatus.OK
    owner_client.post(reverse("apps:delete", args=[own_app.app_id]))
    assert not Application.objects.exists()


# --- isolation ---------------------------------------------------------------------------------


def _app_urls(application, delivery):
    app_id = application.app_id
    return [
        ("get", reverse("apps:detail", args=[app_id])),
        ("post", reverse("apps:settings", args=[app_id])),
        ("post", reverse("apps:secret", args=[app_id])),
        ("post", reverse("apps:signing-secret", args=[app_id])),
        ("post", reverse("apps:pause", args=[app_id])),
        ("get", reverse("apps:delete", args=[app_id])),
        ("post", reverse("apps:delete", args=[app_id])),
        ("post", reverse("apps:connect-link", args=[app_id])),
        ("post", reverse("apps:remove", args=[app_id])),
        ("post", reverse("apps:device-link", args=[app_id])),
        ("post", reverse("apps:device-unlink", args=[app_id])),
        ("post", reverse("apps:replay", args=[app_id])),
        ("post", reverse("apps:test", args=[app_id])),
        ("post", reverse("apps:retry", args=[app_id, delivery.pk])),
    ]


def test_another_owner_gets_404_on_every_application_url(client, other_owner, own_app):
    delivery = Delivery.objects.create(application=own_app, event_type="ping", status=DeliveryStatus.FAILED)
    client.force_login(other_owner)
    for method, url in _app_urls(own_app, delivery):
        response = getattr(client, method)(url, {"name": "Mine now", "device": "x"})
        assert response.status_code == HTTPStatus.NOT_FOUND, url
    own_app.refresh_from_db()
    assert own_app.name == "Dashboard" and own_app.paused_at is None
    assert Application.objects.filter(pk=own_app.pk).exists()


def test_an_app_id_no_database_can_hold_is_refused_cleanly(owner_client, owner):
    assert owner_client.get("/apps/abc%00def/").status_code == HTTPStatus.BAD_REQUEST
    device = DeviceFactory(owner=owner)
    response = owner_client.post(reverse("apps-device:link", args=[device.pk]), {"application": "a\x00b"})
    assert response.status_code == HTTPStatus.FOUND
    assert not AppLink.objects.filter(device=device).exists()


def test_owners_may_not_manage_a_managed_application(owner_client):
    managed = ApplicationFactory(owner=None, managed=True)
    delivery = Delivery.objects.create(application=managed, event_type="ping")
    manage_only = {"settings", "secret", "signing-secret", "pause", "delete", "connect-link", "replay", "test", "retry"}
    for method, url in _app_urls(managed, delivery):
        if url.rstrip("/").rsplit("/", 1)[-1] in manage_only or "/retry/" in url:
            assert getattr(owner_client, method)(url).status_code == HTTPStatus.NOT_FOUND, url


def test_another_owners_delivery_is_not_found_through_my_application(owner_client, other_owner, own_app):
    foreign = Delivery.objects.create(application=ApplicationFactory(owner=other_owner), event_type="ping")
    response = owner_client.post(reverse("apps:retry", args=[own_app.app_id, foreign.pk]))
    assert response.status_code == HTTPStatus.NOT_FOUND


# --- connect links -----------------------------------------------------------------------------


def _path(url):
    return url[url.index("/apps/connect/") :]


def test_a_connect_link_asks_for_a_login_first(client, other_owner):
    _, url = links.connect_link_create(application=ApplicationFactory(owner=other_owner))
    response = client.get(_path(url))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))


def test_the_consent_page_names_the_application_and_accepting_adds_it(owner_client, owner, other_owner):
    application = ApplicationFactory(owner=other_owner, name="Energy Coach")
    _, url = links.connect_link_create(application=application)
    page = owner_client.get(_path(url))
    assert page.status_code == HTTPStatus.OK
    body = page.content.decode()
    assert "Energy Coach" in body and "receive the device" in body
    response = owner_client.post(_path(url), {"accept": "1"})
    assert response.status_code == HTTPStatus.FOUND
    assert Connection.objects.filter(application=application, user=owner).exists()
    assert "Energy Coach" in owner_client.get(reverse("apps:list")).content.decode()


def test_declining_adds_nothing_and_the_link_still_works(owner_client, owner, other_owner):
    application = ApplicationFactory(owner=other_owner)
    _, url = links.connect_link_create(application=application)
    owner_client.post(_path(url), {"decline": "1"})
    assert not Connection.objects.exists()
    assert owner_client.get(_path(url)).status_code == HTTPStatus.OK


def test_a_used_or_unknown_connect_link_is_a_clear_404(owner_client):
    response = owner_client.get("/apps/connect/not-a-real-token")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert "expired or was already used" in response.content.decode()


def test_the_owner_mints_a_connect_link_shown_once(owner_client, own_app):
    response = owner_client.post(reverse("apps:connect-link", args=[own_app.app_id]))
    assert response.status_code == HTTPStatus.FOUND
    response = owner_client.get(response.url)
    assert "/apps/connect/" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert "/apps/connect/" not in owner_client.get(response.wsgi_request.path, follow=True).content.decode()


def test_the_application_page_costs_the_same_queries_with_more_deliveries(owner_client, owner, own_app):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def delivery_page_queries(n):
        for _ in range(n):
            device = DeviceFactory(owner=owner)
            own_app.links.create(device=device)
            event = device.events.create(type="device.data", created_at=timezone.now())
            Delivery.objects.create(application=own_app, event=event, event_type=event.type)
        with CaptureQueriesContext(connection) as queries:
            assert owner_client.get(_detail(own_app)).status_code == HTTPStatus.OK
        return len(queries)

    # No query per delivery or per linked device: the log and the links are one query each.
    assert delivery_page_queries(3) == delivery_page_queries(30)
