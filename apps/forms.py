from django import forms

from .models import Application, CallbackAuthStyle
from .services.applications import SECRET_MAX_LENGTH, SECRET_MIN_LENGTH

SECRET_CHOICES = [("generate", "Generate a Secret for me"), ("own", "Use my own Secret")]


class ServiceErrorsMixin:
    """Puts a service's ValidationError next to the fields it names, the rest at the top."""

    def add_service_error(self, exc):
        placed = False
        for field, messages in (exc.fields or {}).items():
            if field in self.fields:
                for message in messages:
                    self.add_error(field, message)
                placed = True
        if not placed:
            self.add_error(None, exc.message)


class SecretChoiceMixin:
    def clean(self):
        cleaned = super().clean()
        if cleaned.get("secret_choice") == "own" and not cleaned.get("secret"):
            self.add_error("secret", "Type your Secret, or let the portal generate one.")
        if cleaned.get("secret_choice") != "own":
            cleaned["secret"] = ""
        return cleaned


def _secret_field():
    return forms.CharField(
        label="Your Secret",
        required=False,
        max_length=SECRET_MAX_LENGTH,
        strip=True,
        help_text=f"{SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} printable characters, no spaces.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "class": "mono"}),
    )


def _secret_choice_field():
    return forms.ChoiceField(label="Secret", choices=SECRET_CHOICES, initial="generate", widget=forms.RadioSelect)


class ApplicationSettingsForm(ServiceErrorsMixin, forms.Form):
    name = forms.CharField(label="Name", max_length=Application._meta.get_field("name").max_length)
    callback_url = forms.CharField(
        label="HTTPS callback URL",
        required=False,
        max_length=Application._meta.get_field("callback_url").max_length,
        help_text="Optional. Device events are POSTed here as JSON.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/webhooks/devices", "inputmode": "url"}),
    )
    auth_style = forms.ChoiceField(
        label="Authorization header sent to the callback",
        choices=CallbackAuthStyle.choices,
        initial=CallbackAuthStyle.BASIC,
        widget=forms.RadioSelect,
    )
    token_prefix = forms.CharField(
        label="Token prefix",
        required=False,
        initial="Token",
        max_length=Application._meta.get_field("token_prefix").max_length,
        help_text="For the Token style: <code>Authorization: &lt;prefix&gt; &lt;Secret&gt;</code>. "
        "Leave empty to send the Secret alone.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class ApplicationCreateForm(SecretChoiceMixin, ApplicationSettingsForm):
    secret_choice = _secret_choice_field()
    secret = _secret_field()


class SecretReplaceForm(ServiceErrorsMixin, SecretChoiceMixin, forms.Form):
    secret_choice = _secret_choice_field()
    secret = _secret_field()
