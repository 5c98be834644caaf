"""A revoked certificate stops connecting within seconds (the bridge's watch, every few seconds).

Mosquitto checks a client's certificate against its CRL file when the client connects, and reads
that file again on SIGHUP; an open connection is never checked again. So on every new revocation
(a reset, a new owner, the owner's revocation, a renewal replacing a certificate) the bridge
1. writes the product CAs' lists again and sends the broker SIGHUP: the old certificate is refused
   at its next connection, while a new certificate with the same CN (the serial) is accepted;
2. ends the device's live session: it connects with the device's client id (its serial, as the
   device protocol asks) and a clean start, which makes the broker take the session over and close
   the device's connection (MQTT's session takeover), then leaves. The device reconnects, and is
   refused if its certificate is the revoked one.
The lists are also written again every hour, well before they expire (devices.ca.CRL_VALIDITY):
each is cached for an hour (devices.ca.product_crl_cached), then signed anew; and a product's new
CA (its first certificate, a rotation) joins the broker's cafile the same way.
"""

import logging
import time
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from ..models import RevokedCertificate
from . import broker
from .client import connect_and_wait, portal_client

logger = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 5.0
# Revocations this recent when a bridge starts still get their sessions ended (one may have
# happened while no bridge ran).
CATCH_UP = timedelta(minutes=10)
# The broker handles SIGHUP in its main loop: give it a moment before the device can reconnect.
RELOAD_SETTLE_SECONDS = 0.5


def sessions_end(serials, *, host=None, port=None) -> int:
    """Ends the live MQTT session of each device (client id = serial) by taking it over; returns
    how many takeovers the broker accepted."""
    ended = 0
    for serial in serials:
        client = portal_client(client_id=serial, host=host, port=port)
        try:
            connect_and_wait(client, clean_start=True, session_expiry=0)
        except (ConnectionError, OSError):
            logger.error("mqtt.session_end_failed", extra={"serial": serial[:64]}, exc_info=True)
            continue
        client.disconnect()
        client.loop_stop()
        ended += 1
        logger.info("mqtt.session_ended", extra={"serial": serial[:64]})
    return ended


class RevocationWatch:
    """The bridge's watch on the revocation list; `check()` is cheap (one indexed query) when
    nothing changed."""

    def __init__(self, *, directory: Path, host=None, port=None):
        self.directory, self.host, self.port = directory, host, port
        self.last_pk = (
            RevokedCertificate.objects.filter(revoked_at__lt=timezone.now() - CATCH_UP)
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
            or 0
        )
        self.checked_at = float("-inf")

    def due(self) -> bool:
        return time.monotonic() - self.checked_at >= CHECK_EVERY_SECONDS

    def check(self) -> int:
        """Brings the broker's CAs and lists up to date (a product's first CA, a rotation, a
        revocation, a list signed anew once the cached one is an hour old) and ends the sessions of
        the certificates revoked since the last check; returns how many it ended."""
        self.checked_at = time.monotonic()
        newest = RevokedCertificate.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        if broker.trust_write(self.directory):
            broker.broker_reload(self.directory)
            time.sleep(RELOAD_SETTLE_SECONDS)
        if newest == self.last_pk:
            return 0
        serials = set(
            RevokedCertificate.objects.filter(pk__gt=self.last_pk, pk__lte=newest, device__isnull=False).values_list(
                "device__serial", flat=True
            )
        )
        self.last_pk = newest
        return sessions_end(sorted(serials), host=self.host, port=self.port) if serials else 0
