from django import forms

from .models import Device


class DeviceRenameForm(forms.Form):
    name = forms.CharField(
        label="Name",
        required=False,
        max_length=Device._meta.get_field("name").max_length,
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "Kitchen sensor"}),
        help_text="Your nickname for the device. Leave empty to show its serial number.",
    )
