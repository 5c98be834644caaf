"""Links between devices and applications (who hears a device's events and may act on it), connect
links (a single-use URL that adds an application to whoever accepts it) and connections (the
applications added that way)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from devices import access
from devices.models import DeviceEvent, DeviceEventType
from devices.outbox import event_record, events_record
from portal.errors import NotFound
from portal.secrets import keyed_digest, random_token

from ..models import Application, AppLink, Connection, ConnectLink, EndedLink
from ..selectors import application_list_for_owner

logger = logging.getLogger(__name__)

CONNECT_LINK_PURPOSE = "connect-link"
CONNECT_LINK_TTL = timedelta(hours=1)


def _device_managed_by(device, actor):
    """Only who may manage the device (`devices.access`) links or unlinks it; NotFound otherwise."""
    if not access.may(actor, device, access.MANAGE):
        raise NotFound("No such device.")


def _visible_to(application, user):
    if not application_list_for_owner(user).filter(pk=application.pk).exists():
        raise NotFound("No such application.")


@transaction.atomic
def device_link(*, device, application, actor, linked_at=None) -> AppLink:
    """Links the device to the application, so it hears the device's events and may act on it.

    Only the device's owner may link it, and only to an application they can see. Linking twice
    changes nothing. Records `device.linked`. `linked_at` dates a link made within a claim from
    that claim's device.claimed, which the application then hears.
    """
    _device_managed_by(device, actor)
    _visible_to(application, actor)
    link, created = AppLink.objects.get_or_create(
        device=device, application=application, defaults={"created_at": linked_at or timezone.now()}
    )
    if created:
        event_record(device=device, type=DeviceEventType.LINKED, data={"application_id": application.app_id})
        logger.info("device.linked", extra={"device_id": str(device.pk), "app_id": application.app_id})
    return link


@transaction.atomic
def device_unlink(*, device, application, actor) -> None:
    """Unlinks the device from the application (only its owner may). Records `device.unlinked`."""
    _device_managed_by(device, actor)
    link = AppLink.objects.filter(device=device, application=application).first()
    if link is None:
        raise NotFound("This device is not linked to that application.")
    _links_delete(device=device, links=[link], reason="unlinked")


@transaction.atomic
def device_links_remove(*, device, actor=None) -> int:
    """Removes every link of the device (ownership reset or transfer); each application hears
    `device.unlinked`. Returns how many links were removed."""
    links = list(AppLink.objects.filter(device=device).select_related("application"))
    if links:
        _links_delete(device=device, links=links, reason="ownership_changed")
    return len(links)


def _links_delete(*, device, links, reason):
    """Records `device.unlinked` for each link, then ends the links.

    Each ended link is kept (EndedLink) with its time span, so events recorded while it lasted,
    this unlink included, still reach its application however late the relay runs.
    """
    events_record(
        [
            DeviceEvent(
                device=device,
                type=DeviceEventType.UNLINKED,
                data={"application_id": link.application.app_id, "reason": reason},
            )
            for link in links
        ]
    )
    unlinked_at = timezone.now()
    EndedLink.objects.bulk_create(
        [
            EndedLink(
                application_id=link.application_id, device=device, linked_at=link.created_at, unlinked_at=unlinked_at
            )
            for link in links
        ]
    )
    AppLink.objects.filter(pk__in=[link.pk for link in links]).delete()
    for link in links:
        logger.info("device.unlinked", extra={"device_id": str(device.pk), "app_id": link.application.app_id})


# --- connect links -----------------------------------------------------------------------------


def _connect_digest(token: str) -> str:
    return keyed_digest(token, purpose=CONNECT_LINK_PURPOSE)


@transaction.atomic
def connect_link_create(*, application) -> tuple[ConnectLink, str]:
    """A single-use link, valid one hour, that adds `application` to the list of whoever accepts it.

    Only the token's digest is stored; the URL is returned once.
    """
    token = random_token(32)
    link = ConnectLink.objects.create(
        application=application,
        token_digest=_connect_digest(token),
        expires_at=timezone.now() + CONNECT_LINK_TTL,
    )
    url = settings.PORTAL_BASE_URL + reverse("apps:connect", args=[token])
    logger.info("connect_link.created", extra={"app_id": application.app_id, "link_id": link.pk})
    return link, url


_CONNECT_INVALID = "This link has expired or was already used. Ask the application for a new one."


def connect_link_get(*, token: str) -> ConnectLink:
    """The connect link of `token` while it can still be accepted; NotFound otherwise."""
    link = (
        ConnectLink.objects.filter(token_digest=_connect_digest(token or ""), used_at__isnull=True)
        .select_related("application")
        .first()
    )
    if link is None or link.expires_at <= timezone.now():
        raise NotFound(_CONNECT_INVALID, code="connect_link_invalid")
    return link


@transaction.atomic
def connect_link_accept(*, token: str, user) -> Application:
    """Uses the link (once) and adds its application to `user`'s list."""
    link = connect_link_get(token=token)
    # Single use under concurrency: only the request that flips used_at wins.
    won = ConnectLink.objects.filter(pk=link.pk, used_at__isnull=True, expires_at__gt=timezone.now()).update(
        used_at=timezone.now(), used_by=user
    )
    if not won:
        raise NotFound(_CONNECT_INVALID, code="connect_link_invalid")
    application = link.application
    if application.owner_id != user.pk:
        Connection.objects.get_or_create(application=application, user=user)
    logger.info("connect_link.accepted", extra={"app_id": application.app_id, "user_id": user.pk})
    return application


@transaction.atomic
def connection_remove(*, application, user) -> None:
    """Removes a connected application from the user's list, unlinking their devices from it."""
    deleted, _ = Connection.objects.filter(application=application, user=user).delete()
    if not deleted:
        raise NotFound("No such application.")
    for link in AppLink.objects.filter(
        application=application, device__in=access.devices_visible_to(user, access.MANAGE)
    ).select_related("device"):
        _links_delete(device=link.device, links=[link], reason="unlinked")
