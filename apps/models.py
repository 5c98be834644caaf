from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from devices.models import Device, DeviceEvent, DeviceEventType

# Events about one link are heard by that link's application only, on webhooks and in the API: the
# others have no business knowing which applications a device is linked to.
LINK_EVENTS = (DeviceEventType.LINKED, DeviceEventType.UNLINKED)
# Events heard only by the application their data names: link events, and command.updated (an
# application hears only of the commands it sent).
PRIVATE_EVENTS = (*LINK_EVENTS, DeviceEventType.COMMAND_UPDATED)


class CallbackAuthStyle(models.TextChoices):
    BASIC = "basic", "Basic base64(AppId:Secret)"
    TOKEN = "token", "Token: [prefix ]secret"


class Application(models.Model):
    """An integration: an owner's external application, or a managed one offered by the OEM.

    The Secret is stored twice: encrypted (it goes into callback headers) and as a keyed digest
    (API authentication compares against it). The signing secret signs webhook bodies.
    """

    app_id = models.CharField(max_length=40, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="applications"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    managed = models.BooleanField(default=False, help_text="Offered by the OEM to every owner.")
    logo_url = models.URLField(blank=True)
    registration_url = models.URLField(blank=True)
    callback_url = models.URLField(blank=True, max_length=500)
    auth_style = models.CharField(max_length=8, choices=CallbackAuthStyle.choices, default=CallbackAuthStyle.BASIC)
    token_prefix = models.CharField(max_length=32, blank=True, default="Token")
    secret_encrypted = models.TextField(editable=False)
    secret_digest = models.CharField(max_length=64, editable=False)
    signing_secret_encrypted = models.TextField(editable=False)
    # After a rotation the previous signing secret also signs until it expires, so receivers can
    # switch to the new one without refusing webhooks meanwhile.
    previous_signing_secret_encrypted = models.TextField(editable=False, blank=True)
    previous_signing_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set when deliveries have failed for too long; resumed by the owner.
    paused_at = models.DateTimeField(null=True, blank=True)
    pause_reason = models.CharField(max_length=200, blank=True)
    # Set when the receiver answered 410 Gone and the portal cleared the callback URL; cleared when
    # the owner sets a callback again. The API keeps working meanwhile.
    callback_off_at = models.DateTimeField(null=True, blank=True)
    callback_off_reason = models.CharField(max_length=200, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["owner", "name"], name="application_owner_name")]
        # An owner's application carries their Secret in its callbacks: an OEM admin who curates the
        # managed applications does not reach owners' ones without this.
        permissions = [("manage_owner_applications", "Can see and change applications that owners made")]

    def __str__(self):
        return self.name


class Connection(models.Model):
    """A user who added a managed or platform application through a connect link."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="connections")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="app_connections")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["application", "user"], name="connection_unique")]

    def __str__(self):
        return f"{self.user_id} → {self.application_id}"


class ConnectLink(models.Model):
    """A single-use link, valid one hour, that lets an owner add an application to their list."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="connect_links")
    token_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self):
        return f"Connect link for {self.application_id}"


class AppLink(models.Model):
    """A device linked to an application: the application hears its events and may act on it."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="links")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="app_links")
    # When the application starts hearing the device's events; a link made within a claim dates
    # from that claim's device.claimed, so the application hears it.
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["application", "device"], name="applink_unique")]
        # Fan-out looks up the applications of a device.
        indexes = [models.Index(fields=["device"], name="applink_device")]

    def __str__(self):
        return f"{self.device_id} → {self.application_id}"


class EndedLink(models.Model):
    """A link that ended (unlink, reset, transfer): which of the device's events its application
    heard, [linked_at, unlinked_at], kept after the link is gone. Append-only."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="ended_links")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    linked_at = models.DateTimeField()
    unlinked_at = models.DateTimeField()

    class Meta:
        indexes = [
            # Fan-out: the links of a batch's devices that ended after its oldest event.
            models.Index(fields=["device", "unlinked_at"], name="endedlink_device_time"),
            # The events API: the devices an application heard.
            models.Index(fields=["application", "device"], name="endedlink_app_device"),
        ]

    def __str__(self):
        return f"{self.device_id} → {self.application_id} (ended)"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One event to one application's callback, with its attempts. The truth about webhooks."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="deliveries")
    # Empty for a "ping" test event, which has no DeviceEvent behind it.
    event = models.ForeignKey(DeviceEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=32)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        constraints = [
            # Fan-out is idempotent: the relay may hand the same event over twice.
            models.UniqueConstraint(fields=["event", "application"], name="delivery_event_app_unique"),
        ]
        indexes = [
            # The due-work beat task: pending deliveries whose time has come.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="delivery_due"),
            # The same task's look for held rows (a paused application's) whose application resumed.
            models.Index(
                fields=["application"],
                condition=Q(status="pending", next_attempt_at__isnull=True),
                name="delivery_held",
            ),
            # The application page's delivery log, newest first.
            models.Index(fields=["application", "-created_at"], name="delivery_app_time"),
        ]

    def __str__(self):
        return f"{self.event_type} to {self.application_id} ({self.status})"
