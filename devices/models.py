import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

DEFAULT_COMMANDS = ["reboot", "identify", "set_interval"]


def default_commands():
    return list(DEFAULT_COMMANDS)


class Product(models.Model):
    """A manufacturer's model line; its settings apply to all of its devices."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    offline_after = models.PositiveIntegerField(
        default=600, help_text="Seconds without a check-in before a device counts as offline."
    )
    poll_cap = models.PositiveIntegerField(
        default=300, help_text="Longest wait, in seconds, between provisioning polls of an unclaimed device."
    )
    checkin_interval = models.PositiveIntegerField(
        default=60, help_text="Seconds between check-ins the portal asks devices for."
    )
    certificate_days = models.PositiveIntegerField(
        default=365, help_text="Validity of device certificates signed by this product's CA."
    )
    commands = models.JSONField(
        default=default_commands,
        blank=True,
        help_text="What this product's devices accept: built-in command names (reboot, identify, set_interval) "
        'or declarations such as {"name": "set_level", "params": [{"name": "level", "type": "int", "min": 0, '
        '"max": 10, "required": true}]} (types: int, float, bool, string, choice with "choices").',
    )
    # The product's CA: generated on first use; the private key is encrypted at rest (portal.secrets).
    ca_certificate_pem = models.TextField(blank=True, editable=False)
    ca_key_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ClaimCode(models.Model):
    """A human-typed code; one code may cover many devices (an OEM batch).

    Found by the keyed digest of its normalised form. The code itself is kept encrypted only so
    that OEM admins can reprint labels.
    """

    digest = models.CharField(max_length=64, unique=True)
    code_encrypted = models.TextField()
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "claim code"

    def __str__(self):
        return f"Claim code #{self.pk}"


class DeviceStatus(models.TextChoices):
    NEVER_SEEN = "never_seen", "Never seen"
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"


# Device.stale_check_at of a device the stale sweep should look at in its next run.
LOOK_AT_ONCE = datetime(1970, 1, 1, tzinfo=UTC)


class Device(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    serial = models.CharField(max_length=64, unique=True)
    # Foreign keys without an index of their own where a composite index leads with them: every
    # index is written again on each check-in (its UPDATE changes an indexed column).
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="devices", db_index=False)
    name = models.CharField(max_length=80, blank=True, help_text="The owner's nickname for the device.")
    factory_key_digest = models.CharField(max_length=64, editable=False)
    claim_code = models.ForeignKey(
        ClaimCode, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="devices",
        db_index=False,
    )
    owned_since = models.DateTimeField(null=True, blank=True)
    # Pre-claim by an OEM admin for an address that has no account yet; applied at sign-up.
    preclaim_email = models.EmailField(blank=True)

    # PIN claiming (serial + PIN): no PIN set means not claimable.
    claimable = models.BooleanField(default=True)
    pin_digest = models.CharField(max_length=64, blank=True, editable=False)

    status = models.CharField(max_length=12, choices=DeviceStatus.choices, default=DeviceStatus.NEVER_SEEN)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # When the stale sweep looks at this online device next (LOOK_AT_ONCE: at its next run); never
    # later than last_seen_at plus the product's offline_after. The sweep indexes this instead of
    # last_seen_at, which every check-in changes: a check-in moves it only once half the threshold
    # has passed, so most check-ins leave every index alone (PostgreSQL's HOT updates).
    stale_check_at = models.DateTimeField(default=LOOK_AT_ONCE, editable=False)
    last_ip = models.GenericIPAddressField(null=True, blank=True)
    values = models.JSONField(default=dict, blank=True)

    # Credentials. token_used_at stays empty until the device first authenticates with its token;
    # until then each provisioning poll issues fresh credentials.
    token_digest = models.CharField(max_length=64, null=True, blank=True, editable=False)
    token_issued_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The address of the provisioning poll that received the current credentials: shown to the owner,
    # who can tell a poll from their own network from one by someone else holding the factory key.
    token_issued_ip = models.GenericIPAddressField(null=True, blank=True, editable=False)
    token_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    certificate_pem = models.TextField(blank=True, editable=False)
    certificate_serial = models.CharField(max_length=64, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["serial"]
        permissions = [("view_device_owner", "Can see who owns a device")]
        constraints = [
            # A constraint rather than unique=True: no second, pattern-matching index on digests.
            models.UniqueConstraint(fields=["token_digest"], name="device_token_digest_unique"),
        ]
        indexes = [
            # The owner's device list: filter by owner (and status), ordered by serial.
            models.Index(fields=["owner", "serial"], name="device_owner_serial"),
            models.Index(fields=["owner", "status", "serial"], name="device_owner_status_serial"),
            # The stale sweep reads only online devices that are due: a small partial index.
            models.Index(
                fields=["stale_check_at"], condition=Q(status="online"), name="device_online_stale_check"
            ),
            models.Index(fields=["product", "status"], name="device_product_status"),
            models.Index(fields=["preclaim_email"], condition=~Q(preclaim_email=""), name="device_preclaim"),
            # A PIN claim matches the serial as a label is read, case ignored (serial__iexact).
            models.Index(Upper("serial"), name="device_serial_upper"),
        ]

    def __str__(self):
        return self.name or self.serial

    @property
    def display_name(self):
        return self.name or self.serial


class Reading(models.Model):
    """Values a device reported at a time: the history behind charts and the readings API."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="readings", db_index=False)
    recorded_at = models.DateTimeField()
    values = models.JSONField()

    class Meta:
        indexes = [
            # History of one device, newest first (also the foreign key's index); retention prunes by time.
            models.Index(fields=["device", "-recorded_at"], name="reading_device_time"),
            models.Index(fields=["recorded_at"], name="reading_time"),
        ]

    def __str__(self):
        return f"{self.device_id} at {self.recorded_at:%Y-%m-%d %H:%M:%S}"


class CommandStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


class Command(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="commands")
    name = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=CommandStatus.choices, default=CommandStatus.PENDING)
    result = models.JSONField(default=dict, blank=True)
    # Who sent it: an owner (user) or an application (its App Id); kept loose to respect layering.
    sent_by_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    sent_by_app = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Check-in fetches a device's open commands.
            models.Index(
                fields=["device", "created_at"],
                condition=Q(status__in=["pending", "delivered"]),
                name="command_device_open",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.status})"


class DeviceEventType(models.TextChoices):
    DATA = "device.data"
    ONLINE = "device.online"
    OFFLINE = "device.offline"
    CLAIMED = "device.claimed"
    RELEASED = "device.released"
    LINKED = "device.linked"
    UNLINKED = "device.unlinked"
    COMMAND_UPDATED = "command.updated"


class DeviceEvent(models.Model):
    """The outbox: every fact an application may hear, written in the transaction of the change.

    `handled_at` is set once the relay has handed the event to every consumer.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="events", db_index=False)
    type = models.CharField(max_length=32, choices=DeviceEventType.choices)
    data = models.JSONField(default=dict, blank=True)
    # The owner's nickname when the event happened: a retry or replay after a change of owner
    # must not carry the next owner's name, which the device row has by then.
    device_name = models.CharField(max_length=80, blank=True, default="")
    created_at = models.DateTimeField(db_index=True)
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The relay's due-work query: unhandled events, oldest first.
            models.Index(fields=["created_at"], condition=Q(handled_at__isnull=True), name="event_unhandled"),
            models.Index(fields=["device", "-created_at"], name="event_device_time"),
        ]

    def __str__(self):
        return f"{self.type} {self.id}"


class NotificationPreference(models.Model):
    """An owner's choice of device status emails: for one device, or for all of theirs when
    `device` is empty. A device's own row wins over the all-devices row; with neither, both
    emails are on."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    offline = models.BooleanField(default=True, help_text="Email when the device goes offline.")
    online = models.BooleanField(default=True, help_text="Email when the device comes back online.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "device"], condition=Q(device__isnull=False), name="notification_pref_device"
            ),
            models.UniqueConstraint(
                fields=["user"], condition=Q(device__isnull=True), name="notification_pref_all_devices"
            ),
        ]

    def __str__(self):
        return f"Notifications of {self.user_id} for {self.device_id or 'all devices'}"


class NotificationState(models.Model):
    """What a device's owner last heard about its status, so emails are grouped and rate-limited.

    `status` is the status the owner knows (mailed, or a change they chose not to hear about);
    `notified_at` is the last email naming the device (at most one an hour); `pending` marks a
    change held back by that limit, or by a failed send, to be mailed on a later sweep.
    """

    device = models.OneToOneField(Device, primary_key=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=12, choices=DeviceStatus.choices, default=DeviceStatus.ONLINE)
    notified_at = models.DateTimeField(null=True, blank=True)
    pending = models.BooleanField(default=False)

    class Meta:
        indexes = [
            # Each sweep looks for held-back changes and for devices back from offline: only these rows.
            models.Index(
                fields=["device"], condition=Q(pending=True) | Q(status="offline"), name="notification_attention"
            ),
        ]

    def __str__(self):
        return f"{self.device_id} known {self.status}"


class RevokedCertificate(models.Model):
    """A device certificate voided before its end (reset, new owner, the owner's revocation, or a
    re-issue replacing it): its serial goes on the product CA's revocation list."""

    class Reason(models.TextChoices):
        OWNER_CHANGED = "owner_changed", "Reset or new owner"
        REVOKED = "revoked", "Revoked by the owner"
        SUPERSEDED = "superseded", "Replaced by a new certificate"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="revoked_certificates")
    serial_number = models.CharField(max_length=64, help_text="Hex, as Device.certificate_serial.")
    # Whose certificate it was: the MQTT bridge ends that device's live broker session (the broker
    # checks the list only when a client connects). Null for rows from before it was recorded.
    device = models.ForeignKey("Device", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    revoked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "serial_number"], name="revoked_certificate_unique"),
        ]

    def __str__(self):
        return f"{self.serial_number} ({self.reason})"
