from django import forms

from devices import codes
from devices.forms import CommandForm  # noqa: F401  (the device page's command form, shared with support)
from devices.services import PIN_MAX_LENGTH, PIN_MIN_LENGTH, PIN_RULE


class SerialsField(forms.MultipleChoiceField):
    """The serials ticked on a batch code; the claim service checks the code covers them."""

    def valid_value(self, value):
        return True


class ApplicationChoiceMixin:
    """An optional "link to this application" choice, offered from the owner's applications."""

    def _set_applications(self, applications):
        self.applications = {app.app_id: app for app in applications}
        self.fields["application"].choices = [("", "No application for now")] + [
            (app.app_id, f"{app.name} (managed)" if app.managed else app.name) for app in applications
        ]
        if not applications:
            self.fields["application"].widget = forms.HiddenInput()

    def clean_application(self):
        app_id = self.cleaned_data.get("application")
        return self.applications.get(app_id) if app_id else None


class ClaimCodeForm(ApplicationChoiceMixin, forms.Form):
    method = forms.CharField(widget=forms.HiddenInput, initial="code")
    code = forms.CharField(
        label="Claim code",
        max_length=64,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "placeholder": "XXXXX-XXXXX",
                "class": "mono",
            }
        ),
        help_text="Printed on the label, under the QR code. Spaces, dashes and case do not matter.",
    )
    serials = SerialsField(label="Devices to claim", required=False, widget=forms.CheckboxSelectMultiple)
    # Set once the devices of a batch code were shown: from then on, an empty choice is a mistake.
    picked = forms.BooleanField(required=False, widget=forms.HiddenInput)
    application = forms.ChoiceField(label="Link to an application", required=False, choices=())

    def __init__(self, *args, applications=(), devices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self._set_applications(list(applications))
        self.set_devices(devices)

    def set_devices(self, devices):
        """The unowned devices a batch code covers, offered as checkboxes (all ticked)."""
        self.devices = list(devices)
        self.fields["serials"].choices = [(d.serial, d.serial) for d in self.devices]
        self.fields["serials"].initial = [d.serial for d in self.devices]

    def clean_code(self):
        code = self.cleaned_data["code"]
        if not codes.normalize(code):
            raise forms.ValidationError("Enter the claim code printed on the label.")
        return code


class ClaimPinForm(ApplicationChoiceMixin, forms.Form):
    method = forms.CharField(widget=forms.HiddenInput, initial="pin")
    serial = forms.CharField(
        label="Serial number",
        max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "class": "mono"}),
        help_text="As printed on the label; case does not matter.",
    )
    pin = forms.CharField(
        label="PIN",
        max_length=PIN_MAX_LENGTH,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )
    application = forms.ChoiceField(label="Link to an application", required=False, choices=())

    def __init__(self, *args, applications=(), **kwargs):
        super().__init__(*args, **kwargs)
        self._set_applications(list(applications))


class TransferForm(forms.Form):
    to_email = forms.EmailField(
        label="New owner's email address",
        widget=forms.EmailInput(attrs={"autocomplete": "off", "placeholder": "name@example.com"}),
    )


class PinSettingsForm(forms.Form):
    # The PIN rule is devices.services.pin_validate, applied by device_pin_set (its refusal lands on `pin`).
    pin = forms.CharField(
        label="New PIN",
        required=False,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                "class": "mono",
                "minlength": PIN_MIN_LENGTH,
                "maxlength": PIN_MAX_LENGTH,
            }
        ),
        help_text=f"{PIN_RULE}; 6 or more are far harder to guess.",
    )
    claimable = forms.BooleanField(
        label="Anyone with the serial number and this PIN may claim the device",
        required=False,
    )

    def __init__(self, *args, has_pin=False, **kwargs):
        super().__init__(*args, **kwargs)
        # Only a PIN this owner set can be kept: a change of owner clears it.
        if has_pin:
            self.fields["pin"].help_text += " Leave empty to keep the current PIN."
