import json

from django import forms

from .command_definitions import command_definitions_for_product
from .models import Device, ShareRole


class DeviceRenameForm(forms.Form):
    name = forms.CharField(
        label="Name",
        required=False,
        max_length=Device._meta.get_field("name").max_length,
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "Kitchen sensor"}),
        help_text="Your nickname for the device. Leave empty to show its serial number.",
    )


class CommandForm(forms.Form):
    name = forms.ChoiceField(label="Command", choices=())
    params = forms.CharField(
        label="Parameters (JSON object)",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": '{"seconds": 30}', "class": "mono", "spellcheck": "false"}),
    )

    def __init__(self, *args, device, **kwargs):
        super().__init__(*args, **kwargs)
        definitions = command_definitions_for_product(device.product)
        self.fields["name"].choices = [(name, name) for name in definitions]
        self.fields["params"].help_text = " · ".join(d.describe() for d in definitions.values() if d)

    def add_service_error(self, exc):
        """A refusal of command_send, on the field it names (`params.<name>` on params)."""
        for key, messages in (exc.fields or {None: [exc.message]}).items():
            field = key.split(".", 1)[0] if key else None
            for message in messages:
                self.add_error(field if field in self.fields else None, message)

    def clean_params(self):
        raw = self.cleaned_data.get("params", "").strip()
        if not raw:
            return {}
        try:
            params = json.loads(raw)
        except ValueError:
            raise forms.ValidationError('Write the parameters as a JSON object, for example {"seconds": 30}.') from None
        if not isinstance(params, dict):
            raise forms.ValidationError('Write the parameters as a JSON object, for example {"seconds": 30}.')
        return params


# --- sharing -----------------------------------------------------------------------------------


class InviteForm(forms.Form):
    """The owner's invitation: an address and a role, nothing else (the email carries no text of theirs)."""

    email = forms.EmailField(
        label="Email address",
        widget=forms.EmailInput(attrs={"autocomplete": "off", "placeholder": "name@example.com"}),
    )
    role = forms.ChoiceField(
        label="Role",
        choices=ShareRole.choices,
        initial=ShareRole.VIEWER,
        help_text="A viewer sees the device; an operator also sends it commands.",
    )


class ShareRoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=ShareRole.choices)


class SupportGrantForm(forms.Form):
    """How long the maker's support may see the device (1 hour to 30 days), and whether it may command it."""

    PERIODS = [
        ("1", "1 hour"),
        ("4", "4 hours"),
        ("24", "1 day"),
        ("72", "3 days"),
        ("168", "7 days"),
        ("720", "30 days"),
    ]
    hours = forms.TypedChoiceField(label="For", choices=PERIODS, coerce=int, initial="24")
    allow_commands = forms.BooleanField(label="Support may also send commands", required=False)
