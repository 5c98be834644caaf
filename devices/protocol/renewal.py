"""Certificate renewal: a provisioned device trades its bearer token and a fresh CSR for a new
client certificate, without its owner (docs/device-protocol.md, "Renewal")."""

import logging

from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal import ratelimit

from ..ca import certificate_issue
from ..models import Device, RevokedCertificate
from ..services import certificate_revoke, token_digest
from .services import Unauthenticated

logger = logging.getLogger(__name__)

# Each renewal puts a serial on the product's revocation list for good: a device renews about once
# in its certificate's last third, so a few a day leave room for lost answers and stop a device
# (or a stolen token) from growing the list without bound.
RENEWALS_PER_DAY = 10


def device_certificate_renew(*, token: str, csr_pem) -> dict:
    """Issues a new certificate for the device holding `token` from its CSR (the provisioning
    rules: csr_load's keys, CN if any = serial) and voids the one it replaces at once: its serial
    goes on the product CA's revocation list. A device without a certificate gets its first one.

    The token keeps working, so a device whose answer was lost renews again. Like any use of the
    token, this ends the provisioning hand-over: a later poll cannot void the new certificate.
    Raises Unauthenticated (before the CSR is looked at) or CsrError; nothing changes then.
    """
    digest = token_digest(token)
    device = Device.objects.select_related("product").filter(token_digest=digest).first()
    if device is None:
        raise Unauthenticated()
    ratelimit.hit("certificate-renewal", str(device.pk), limit=RENEWALS_PER_DAY, window=24 * 3600)
    # Signed before the row lock, as provisioning does: signing is the slow part.
    certificate, serial_number = certificate_issue(product=device.product, serial=device.serial, csr_pem=csr_pem)
    with transaction.atomic():
        # A reset, a revocation or a new owner may have voided the token while we signed: then the
        # new certificate was never handed out and is simply dropped.
        replaced = (
            Device.objects.select_for_update()
            .filter(pk=device.pk, token_digest=digest)
            .values_list("certificate_serial", flat=True)
            .first()
        )
        if replaced is None:
            raise Unauthenticated()
        Device.objects.filter(pk=device.pk).update(
            certificate_pem=certificate,
            certificate_serial=serial_number,
            token_used_at=Coalesce("token_used_at", timezone.now()),
        )
        certificate_revoke(
            product_id=device.product_id,
            serial_number=replaced,
            reason=RevokedCertificate.Reason.SUPERSEDED,
            device_id=device.pk,
        )
    logger.info(
        "device.certificate_renewed",
        extra={"device_id": str(device.pk), "certificate_serial": serial_number, "replaced_serial": replaced or None},
    )
    return {"certificate": certificate, "ca_chain": device.product.ca_certificate_pem}
