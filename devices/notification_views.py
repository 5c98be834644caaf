"""Notification settings (all devices, or per device; a shared device's subscription) and the signed
unsubscribe link."""

from http import HTTPStatus

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from portal.errors import ApplicationError

from . import access, notifications


class NotificationChoiceForm(forms.Form):
    offline = forms.BooleanField(required=False, label="When it goes offline")
    online = forms.BooleanField(required=False, label="When it comes back online")


class DeviceNotificationForm(NotificationChoiceForm):
    ALL, CUSTOM = "all", "custom"
    follow = forms.ChoiceField(
        choices=[(ALL, "Same as all my devices"), (CUSTOM, "Choose for this device")],
        widget=forms.RadioSelect,
        initial=ALL,
        label="Emails about this device",
    )


class DeviceChoiceField(forms.ModelChoiceField):
    def to_python(self, value):
        # Not a UUID is the same answer as somebody else's device: nothing to enumerate.
        try:
            return super().to_python(value)
        except forms.ValidationError as exc:
            if exc.code == "required":
                raise
            raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice") from exc

    def label_from_instance(self, device):
        # A nickname alone may be ambiguous; a serial alone is the name (shown once).
        return f"{device.name} ({device.serial})" if device.name else device.serial


class DevicePickForm(forms.Form):
    """One of the person's devices (their own and those shared with them: `access`), from a list."""

    device = DeviceChoiceField(
        queryset=None,
        label="Device",
        empty_label="Choose a device…",
        error_messages={"invalid_choice": "Choose one of your devices.", "required": "Choose one of your devices."},
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["device"].queryset = access.devices_visible_to(user, access.SEE, include_support=False).order_by(
            "name", "serial"
        )


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request):
    """Emails for all the owner's devices, and the devices that have a choice of their own."""
    default = notifications.notification_preference_get(user=request.user)
    form = NotificationChoiceForm(initial={"offline": default.offline, "online": default.online})
    find_form = DevicePickForm(user=request.user)
    status = HTTPStatus.OK
    if request.method == "POST" and request.POST.get("action") == "find":
        find_form = DevicePickForm(request.POST, user=request.user)
        if find_form.is_valid():
            return redirect("devices:notifications-device", pk=find_form.cleaned_data["device"].pk)
        status = HTTPStatus.BAD_REQUEST
    elif request.method == "POST":
        form = NotificationChoiceForm(request.POST)
        if form.is_valid():
            notifications.notification_preference_set(user=request.user, **form.cleaned_data)
            messages.success(request, "Saved. These emails apply to every device without a choice of its own.")
            return redirect("devices:notifications")
        status = HTTPStatus.BAD_REQUEST
    overrides = notifications.notification_preference_list_for_owner(
        request.user, access.devices_visible_to(request.user, access.SEE, include_support=False)
    )
    context = {"form": form, "find_form": find_form, "overrides": overrides}
    return render(request, "devices/notifications.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def notification_device(request, pk):
    """One device: follow the owner's choice for all devices, or a choice of its own; for a device
    shared with the user, whether they subscribe to its emails (off until they do)."""
    device = access.device_for(request.user, pk, access.SEE)
    role = access.role_of(request.user, device)
    if role == access.SUPPORT:
        raise access.CapabilityDenied("Status emails go to the device's owner and the people it is shared with.")
    if role != access.OWNER:
        return _shared_device_subscription(request, device)
    own = notifications.notification_preference_get(user=request.user, device=device)
    default = notifications.notification_preference_get(user=request.user)
    choice = own if own.pk else default
    form = DeviceNotificationForm(
        request.POST or None,
        initial={
            "follow": DeviceNotificationForm.CUSTOM if own.pk else DeviceNotificationForm.ALL,
            "offline": choice.offline,
            "online": choice.online,
        },
    )
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["follow"] == DeviceNotificationForm.ALL:
            notifications.notification_preference_clear(user=request.user, device=device)
        else:
            notifications.notification_preference_set(
                user=request.user,
                device=device,
                offline=form.cleaned_data["offline"],
                online=form.cleaned_data["online"],
            )
        messages.success(request, f"Saved the emails for {device.display_name}.")
        return redirect("devices:notifications")
    status = HTTPStatus.BAD_REQUEST if request.method == "POST" else HTTPStatus.OK
    context = {"device": device, "form": form, "default": default}
    return render(request, "devices/notifications_device.html", context, status=status)


def _shared_device_subscription(request, device):
    """A viewer or operator subscribes to (or leaves) a shared device's offline/online emails."""
    own = notifications.notification_preference_get(user=request.user, device=device, shared=True)
    # Bound on every POST: unticking both boxes posts nothing, which is a choice too.
    data = request.POST if request.method == "POST" else None
    form = NotificationChoiceForm(data, initial={"offline": own.offline, "online": own.online})
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["offline"] or form.cleaned_data["online"]:
            notifications.notification_preference_set(user=request.user, device=device, **form.cleaned_data)
        else:
            notifications.notification_preference_clear(user=request.user, device=device)
        messages.success(request, f"Saved the emails for {device.display_name}.")
        return redirect("devices:notifications")
    status = HTTPStatus.BAD_REQUEST if request.method == "POST" else HTTPStatus.OK
    context = {"device": device, "form": form, "shared": True}
    return render(request, "devices/notifications_device.html", context, status=status)


# The signed token is the proof, not a session: no login, and no CSRF token (mail clients POST
# here themselves for RFC 8058 one-click unsubscribe).
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def notification_unsubscribe(request, token):
    """GET asks to confirm (link scanners only GET); POST stops every device status email."""
    try:
        user = notifications.unsubscribe_user(token)
    except ApplicationError as exc:
        return render(
            request, "devices/notifications_unsubscribe.html", {"error": exc.message}, status=HTTPStatus.BAD_REQUEST
        )
    done = request.method == "POST"
    if done:
        notifications.notifications_unsubscribe(user=user)
    return render(request, "devices/notifications_unsubscribe.html", {"done": done})
