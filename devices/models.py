"""The devices app's models: products and what their values mean, devices, readings, commands,
events (the outbox), credentials, and who else may see a device (shares, invitations, support
grants and their audit).

Over 500 lines on purpose: Django keeps an app's models in one module by default, and these refer to
each other (a share, a command and an event each name a device); a `models/` package would only
scatter one schema across files.
"""

import json
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.core.validators import RegexValidator
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


class ProductFieldKind(models.TextChoices):
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "On / off"
    TEXT = "text", "Text"
    STATES = "states", "Named states"


class ProductField(models.Model):
    """What one key of a product's values means: its label, unit and kind, how it is shown.

    Keys a device sends that no field declares are still stored and shown raw. The rules on a
    product's set of fields (at most two primary, a states map for kind states) are in
    `devices.product_fields`, which the admin's inline calls."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="fields", db_index=False)
    key = models.CharField(
        max_length=64,
        help_text="The name the device sends the value under.",
        # A chart reads the key through a JSON path on SQLite ($."key"): no quote or backslash in it.
        validators=[RegexValidator(r'^[^"\\]+$', 'A key has no " or \\ in it.')],
    )
    label = models.CharField(max_length=80)
    unit = models.CharField(max_length=16, blank=True, help_text="Shown after the value: °C, %, V, s.")
    kind = models.CharField(max_length=10, choices=ProductFieldKind.choices, default=ProductFieldKind.NUMBER)
    decimals = models.PositiveSmallIntegerField(default=1, help_text="Decimals shown of a number.")
    expected_min = models.FloatField(null=True, blank=True, help_text="The low end of a chart's axis.")
    expected_max = models.FloatField(null=True, blank=True, help_text="The high end of a chart's axis.")
    states = models.JSONField(
        default=dict, blank=True, help_text='For named states: value → name, e.g. {"0": "Idle", "1": "Heating"}.'
    )
    primary = models.BooleanField(default=False, help_text="One or two primary fields stand first.")
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["product", "order", "key"]
        constraints = [
            # One meaning per key; its index also serves reading a product's fields (product_id = %s).
            models.UniqueConstraint(fields=["product", "key"], name="product_field_key_unique"),
        ]

    def __str__(self):
        return f"{self.label} ({self.key})"


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
        permissions = [
            ("view_device_owner", "Can see who owns a device"),
            # The maker's support: sees (and commands, if allowed) a device only under its owner's live grant.
            ("support_device", "Can support devices whose owner granted access"),
        ]
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

    @property
    def result_text(self) -> str:
        """The result the device reported, as compact JSON for a page ("" when it reported none)."""
        return json.dumps(self.result, ensure_ascii=False, separators=(", ", ": ")) if self.result else ""


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


# --- sharing (docs/sharing.md) -----------------------------------------------------------------


class ShareRole(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"


class Share(models.Model):
    """A person other than the owner with a role on a device, from an accepted invitation.

    A viewer sees the device (status, values, history, commands sent); an operator also sends
    commands. Only the owner manages the device. A share ends (the row goes) on revoke, on leaving
    and on every change of owner (devices.sharing.sharing_end_for_device)."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="shares", db_index=False)
    # No index of its own: share_user_device_role leads with the user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="device_shares", db_index=False
    )
    role = models.CharField(max_length=10, choices=ShareRole.choices, default=ShareRole.VIEWER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One role per person and device; also the index of "who has access to this device".
            models.UniqueConstraint(fields=["device", "user"], name="share_device_user_unique"),
        ]
        indexes = [
            # devices.access: a person's shared devices (the device list), and whether this device is
            # shared with them in this role (one device, each row's role): one index range by user.
            models.Index(fields=["user", "device", "role"], name="share_user_device_role"),
        ]

    def __str__(self):
        return f"{self.get_role_display()} of {self.device_id}"


class InvitationState(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    CANCELLED = "cancelled", "Cancelled"
    # Ended by a change of owner, or replaced by a new invitation after it expired.
    ENDED = "ended", "Ended"


class Invitation(models.Model):
    """The owner's invitation of an email address to a device with a role, accepted or declined
    through an emailed link valid 7 days. Only the link token's keyed digest is stored."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="invitations", db_index=False)
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=ShareRole.choices, default=ShareRole.VIEWER)
    token_digest = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=InvitationState.choices, default=InvitationState.PENDING)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one pending invitation of an address to a device; an expired one is ended
            # before a new one is made (devices.sharing.invitations_send).
            models.UniqueConstraint(
                fields=["device", "email"],
                condition=Q(state="pending"),
                name="invitation_one_pending_per_address",
            ),
        ]
        indexes = [
            # The owner's pending invitations of a device; a change of owner ends them.
            models.Index(fields=["device", "state"], name="invitation_device_state"),
        ]

    def __str__(self):
        return f"Invitation of {self.email} to {self.device_id}"


class SupportGrant(models.Model):
    """The owner lets the maker's support staff (`devices.support_device`) see one device, and
    command it when `allow_commands`, until `ends_at`. Live while not ended and ends_at is ahead:
    decided at query time (devices.access), so an expired grant gives nothing even before the beat
    task (devices.sharing.support_grants_expire) writes its end."""

    class EndedReason(models.TextChoices):
        EXPIRED = "expired", "Its time ran out"
        OWNER = "owner", "Ended by the owner"
        REPLACED = "replaced", "Replaced by a new grant"
        OWNER_CHANGED = "owner_changed", "The device changed owner"

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="support_grants", db_index=False)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ends_at = models.DateTimeField()
    allow_commands = models.BooleanField(default=False)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=16, choices=EndedReason.choices, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One live grant per device: a new one ends the old one first.
            models.UniqueConstraint(
                fields=["device"], condition=Q(ended_at__isnull=True), name="support_grant_one_open_per_device"
            ),
        ]
        indexes = [
            # The beat task's due work, and support's list of granted devices: open grants by end.
            models.Index(fields=["ends_at"], condition=Q(ended_at__isnull=True), name="support_grant_open_ends"),
        ]

    def __str__(self):
        return f"Support grant of {self.device_id} until {self.ends_at:%Y-%m-%d %H:%M}"


class SupportView(models.Model):
    """A staff member looked at a device under a grant: shown to the owner."""

    grant = models.ForeignKey(SupportGrant, on_delete=models.CASCADE, related_name="views")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    viewed_at = models.DateTimeField(auto_now_add=True)
    what = models.CharField(max_length=120)

    def __str__(self):
        return f"{self.what} of grant {self.grant_id}"


class AccessEventKind(models.TextChoices):
    INVITED = "invited", "Invited"
    ACCEPTED = "accepted", "Accepted the invitation"
    DECLINED = "declined", "Declined the invitation"
    CANCELLED = "cancelled", "Cancelled the invitation"
    ROLE_CHANGED = "role_changed", "Changed the role"
    REVOKED = "revoked", "Revoked access"
    LEFT = "left", "Left the device"
    GRANT_STARTED = "grant_started", "Granted support access"
    GRANT_ENDED = "grant_ended", "Ended support access"
    GRANTS_EXPIRED = "grants_expired", "Support access ran out"
    SUPPORT_VIEWED = "support_viewed", "Support looked at the device"
    ENDED_BY_OWNER_CHANGE = "ended_by_owner_change", "Ended by a change of owner"


class AccessEvent(models.Model):
    """The audit trail of who was given, used or lost access to a device, by whom, from where;
    the owner reads it on the device page (OwnershipEvent is the trail of ownership itself)."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="access_events", db_index=False)
    kind = models.CharField(max_length=24, choices=AccessEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    # Whom it was about (the invited address, the person whose share changed); empty for support.
    subject_email = models.EmailField(blank=True)
    role = models.CharField(max_length=10, blank=True)
    detail = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        # The owner's audit panel: a device's events, newest first.
        indexes = [models.Index(fields=["device", "-created_at"], name="access_event_device_time")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.device_id}"
