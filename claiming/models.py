from django.conf import settings
from django.db import models

from devices.models import Device


class OwnershipEventKind(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    RELEASED = "released", "Released"
    TRANSFERRED = "transferred", "Transferred"
    PRE_CLAIMED = "pre_claimed", "Pre-claimed"
    PIN_CHANGED = "pin_changed", "PIN changed"


class OwnershipEvent(models.Model):
    """The audit trail of who owned a device, and who changed that, from where."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="ownership_events")
    kind = models.CharField(max_length=16, choices=OwnershipEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The owner after the event (empty after a release).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["device", "-created_at"], name="ownership_device_time")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.device_id}"


class Transfer(models.Model):
    """An owner's offer to hand a device to another person, accepted through an emailed link."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="transfers")
    from_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    to_email = models.EmailField()
    token_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one open offer per device; a new offer cancels the old one first.
            models.UniqueConstraint(
                fields=["device"],
                condition=models.Q(accepted_at__isnull=True, cancelled_at__isnull=True),
                name="transfer_one_open_per_device",
            )
        ]

    def __str__(self):
        return f"Transfer of {self.device_id} to {self.to_email}"
