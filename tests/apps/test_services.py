"""Applications, links and connect links: the rules in apps.services (applications, links) and apps.selectors."""

import base64
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps import selectors
from apps.models import Application, AppLink, CallbackAuthStyle, Connection, ConnectLink, Delivery
from apps.services import applications, links
from devices.models import DeviceEvent
from devices.outbox import event_record, relay_pending
from portal.errors import NotFound, ValidationError
from portal.secrets import decrypt, digests_match

from ..factories import ApplicationFactory, DeviceFactory, UserFactory
from .conftest import hook_url

# --- create, secrets ---------------------------------------------------------------------------


def test_create_generates_a_secret_of_32_random_bytes(owner):
    application, secret = applications.application_create(owner=owner, name="Dashboard")
    assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) >= 32
    assert application.app_id.startswith("app_")
    assert application.owner == owner


def test_the_secret_is_stored_encrypted_and_as_a_keyed_digest(owner):
    application, secret = applications.application_create(owner=owner, name="Dashboard")
    application.refresh_from_db()
    assert secret not in application.secret_encrypted and secret != application.secret_digest
    assert decrypt(application.secret_encrypted) == secret
    assert digests_match(secret, application.secret_digest, purpose=applications.APP_SECRET_PURPOSE)


def test_the_owner_may_type_their_own_secret(owner):
    _, secret = applications.application_create(owner=owner, name="Mine", secret="my-own-secret-1234567")
    assert secret == "my-own-secret-1234567"


@pytest.mark.parametrize("secret", ["short", "has a space in it!!!", "x" * 201, "tab\tinside-the-secret"])
def test_a_typed_secret_must_be_usable_in_a_header(owner, secret):
    with pytest.raises(ValidationError) as caught:
        applications.application_create(owner=owner, name="Mine", secret=secret)
    assert "secret" in caught.value.fields
    assert secret not in caught.value.message


def test_the_signing_secret_is_a_standard_webhooks_key(owner):
    application, _ = applications.application_create(owner=owner, name="Dashboard")
    signing = applications.application_signing_secret(application)
    assert signing.startswith("whsec_")
    assert len(base64.b64decode(signing.removeprefix("whsec_"))) == 32


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"auth_style": "digest"}, "auth_style"),
        ({"token_prefix": "two words"}, "token_prefix"),
        ({"callback_url": "http://example.com/hook"}, "callback_url"),
        ({"callback_url": "not a url"}, "callback_url"),
    ],
)
def test_create_rejects_bad_input_by_field(owner, fields, field):
    with pytest.raises(ValidationError) as caught:
        applications.application_create(owner=owner, **{"name": "Dashboard", **fields})
    assert field in caught.value.fields
    assert not Application.objects.exists()


def test_token_style_with_an_editable_prefix(owner):
    application, _ = applications.application_create(
        owner=owner, name="Tok", auth_style=CallbackAuthStyle.TOKEN, token_prefix="Bearer"
    )
    assert application.auth_style == "token" and application.token_prefix == "Bearer"


def test_replacing_the_secret_changes_both_copies(owner):
    application, old = applications.application_create(owner=owner, name="Dashboard")
    new = applications.application_secret_replace(application=application)
    application.refresh_from_db()
    assert new != old
    assert decrypt(application.secret_encrypted) == new
    assert not digests_match(old, application.secret_digest, purpose=applications.APP_SECRET_PURPOSE)


def test_rotating_the_signing_secret(owner):
    application, _ = applications.application_create(owner=owner, name="Dashboard")
    before = applications.application_signing_secret(application)
    after = applications.application_signing_secret_rotate(application=application)
    application.refresh_from_db()
    assert after != before and applications.application_signing_secret(application) == after


def test_update_checks_the_callback_again(owner):
    application, _ = applications.application_create(owner=owner, name="Dashboard")
    with pytest.raises(ValidationError) as caught:
        applications.application_update(
            application=application,
            name="Dashboard",
            callback_url="https://169.254.169.254/latest",
            auth_style="basic",
            token_prefix="",
        )
    assert "callback_url" in caught.value.fields


# --- visibility --------------------------------------------------------------------------------


def test_an_owner_sees_their_own_managed_and_connected_applications(owner, other_owner):
    own = ApplicationFactory(owner=owner)
    managed = ApplicationFactory(owner=None, managed=True)
    connected = ApplicationFactory(owner=other_owner)
    Connection.objects.create(application=connected, user=owner)
    foreign = ApplicationFactory(owner=other_owner)
    visible = set(selectors.application_list_for_owner(owner))
    assert visible == {own, managed, connected}
    assert foreign not in visible


def test_another_owners_application_is_not_found(owner, other_owner):
    foreign = ApplicationFactory(owner=other_owner)
    with pytest.raises(NotFound):
        selectors.application_get_for_owner(owner, foreign.app_id)


def test_an_anonymous_user_sees_nothing(db):
    from django.contrib.auth.models import AnonymousUser

    ApplicationFactory(owner=None, managed=True)
    assert list(selectors.application_list_for_owner(AnonymousUser())) == []


# --- links -------------------------------------------------------------------------------------


def test_linking_records_device_linked(owner):
    application = ApplicationFactory(owner=owner)
    device = DeviceFactory(owner=owner)
    links.device_link(device=device, application=application, actor=owner)
    assert AppLink.objects.filter(device=device, application=application).exists()
    event = DeviceEvent.objects.get(type="device.linked")
    assert event.data == {"application_id": application.app_id}


def test_linking_twice_changes_nothing(owner):
    application = ApplicationFactory(owner=owner)
    device = DeviceFactory(owner=owner)
    links.device_link(device=device, application=application, actor=owner)
    links.device_link(device=device, application=application, actor=owner)
    assert AppLink.objects.count() == 1 and DeviceEvent.objects.count() == 1


def test_an_application_hears_only_of_its_own_link(owner, receiver, private_targets):
    device = DeviceFactory(owner=owner)
    first = ApplicationFactory(owner=owner, callback_url=hook_url(receiver))
    second = ApplicationFactory(owner=owner, callback_url=hook_url(receiver))
    links.device_link(device=device, application=first, actor=owner)
    links.device_link(device=device, application=second, actor=owner)
    relay_pending()
    for application in (first, second):
        delivery = application.deliveries.get()
        assert delivery.event.data["application_id"] == application.app_id


def test_a_device_may_be_linked_to_several_applications(owner):
    device = DeviceFactory(owner=owner)
    for application in (ApplicationFactory(owner=owner), ApplicationFactory(owner=None, managed=True)):
        links.device_link(device=device, application=application, actor=owner)
    assert set(Application.objects.filter(links__device=device)) == set(Application.objects.all())


def test_only_the_devices_owner_may_link_it(owner, other_owner):
    application = ApplicationFactory(owner=other_owner)
    device = DeviceFactory(owner=owner)
    with pytest.raises(NotFound):
        links.device_link(device=device, application=application, actor=other_owner)
    assert not AppLink.objects.exists()


def test_a_device_is_linked_only_to_an_application_its_owner_can_see(owner, other_owner):
    foreign = ApplicationFactory(owner=other_owner)
    device = DeviceFactory(owner=owner)
    with pytest.raises(NotFound):
        links.device_link(device=device, application=foreign, actor=owner)
    assert not AppLink.objects.exists()


def test_unlinking_records_device_unlinked_and_the_application_hears_it(owner, receiver, private_targets):
    application = ApplicationFactory(owner=owner, callback_url=hook_url(receiver))
    device = DeviceFactory(owner=owner)
    links.device_link(device=device, application=application, actor=owner)
    relay_pending()
    links.device_unlink(device=device, application=application, actor=owner)
    relay_pending()
    assert not AppLink.objects.exists()
    assert list(Delivery.objects.order_by("pk").values_list("event_type", flat=True)) == [
        "device.linked",
        "device.unlinked",
    ]


def test_unlinking_a_device_that_is_not_linked_is_not_found(owner):
    with pytest.raises(NotFound):
        links.device_unlink(
            device=DeviceFactory(owner=owner), application=ApplicationFactory(owner=owner), actor=owner
        )


def test_removing_every_link_lets_each_application_hear_what_happened(owner, receiver, private_targets):
    """The claiming app calls this on a reset, right after recording device.released."""
    first = ApplicationFactory(owner=owner, callback_url=hook_url(receiver))
    second = ApplicationFactory(owner=owner, callback_url=hook_url(receiver))
    device = DeviceFactory(owner=owner)
    for application in (first, second):
        links.device_link(device=device, application=application, actor=owner)
    relay_pending()
    event_record(device=device, type="device.released", data={"reason": "reset"})
    assert links.device_links_remove(device=device, actor=owner) == 2
    relay_pending()
    assert not AppLink.objects.exists()
    for application in (first, second):
        heard = list(application.deliveries.order_by("event__created_at").values_list("event_type", flat=True))
        assert heard == ["device.linked", "device.released", "device.unlinked"]
    unlinked = DeviceEvent.objects.filter(type="device.unlinked")
    assert {event.data["application_id"] for event in unlinked} == {first.app_id, second.app_id}


def test_removing_links_of_a_device_without_any_does_nothing(owner):
    assert links.device_links_remove(device=DeviceFactory(owner=owner)) == 0
    assert not DeviceEvent.objects.exists()


def test_deleting_an_application_unlinks_its_devices(owner):
    application = ApplicationFactory(owner=owner)
    device = DeviceFactory(owner=owner)
    links.device_link(device=device, application=application, actor=owner)
    applications.application_delete(application=application)
    assert not Application.objects.exists()
    assert DeviceEvent.objects.filter(type="device.unlinked", device=device).exists()


# --- connect links -----------------------------------------------------------------------------


def test_a_connect_link_is_valid_one_hour_and_stores_only_a_digest(owner, settings):
    application = ApplicationFactory(owner=owner)
    link, url = links.connect_link_create(application=application)
    token = url.rsplit("/", 1)[1]
    assert url == f"{settings.PORTAL_BASE_URL}/apps/connect/{token}"
    assert token not in link.token_digest
    assert timedelta(minutes=59) < link.expires_at - timezone.now() <= timedelta(hours=1)


def test_accepting_a_connect_link_adds_the_application(owner, other_owner):
    application = ApplicationFactory(owner=other_owner)
    _, url = links.connect_link_create(application=application)
    assert links.connect_link_accept(token=url.rsplit("/", 1)[1], user=owner) == application
    assert application in selectors.application_list_for_owner(owner)


def test_a_connect_link_works_once(owner, other_owner):
    application = ApplicationFactory(owner=other_owner)
    _, url = links.connect_link_create(application=application)
    token = url.rsplit("/", 1)[1]
    links.connect_link_accept(token=token, user=owner)
    with pytest.raises(NotFound):
        links.connect_link_accept(token=token, user=UserFactory())
    assert Connection.objects.count() == 1


def test_an_expired_connect_link_is_refused(owner, other_owner):
    application = ApplicationFactory(owner=other_owner)
    _, url = links.connect_link_create(application=application)
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)), pytest.raises(NotFound):
        links.connect_link_accept(token=url.rsplit("/", 1)[1], user=owner)
    assert not Connection.objects.exists()


def test_an_unknown_token_is_refused(owner):
    with pytest.raises(NotFound):
        links.connect_link_accept(token="nope", user=owner)


def test_removing_a_connection_unlinks_the_users_devices(owner, other_owner):
    application = ApplicationFactory(owner=other_owner)
    Connection.objects.create(application=application, user=owner)
    device = DeviceFactory(owner=owner)
    links.device_link(device=device, application=application, actor=owner)
    links.connection_remove(application=application, user=owner)
    assert not AppLink.objects.exists()
    assert application not in selectors.application_list_for_owner(owner)
    assert ConnectLink.objects.count() == 0
