import json

from django import forms

from .command_definitions import BOOL, CHOICE, FLOAT, INT, command_definitions_for_product, command_title
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
    """The form of one command the device's product accepts: a field per declared parameter (a
    number input with its range, a checkbox, a text, a select), or, for a command declared by name
    alone, its parameters as a JSON object. The fields only read what was typed: whether it fits
    is `command_send`'s to say (devices.command_definitions), as for the API, and its refusal lands
    on the field it names (`add_service_error`)."""

    name = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, data=None, *, device, command, definition=None, **kwargs):
        definitions = command_definitions_for_product(device.product)
        definition = definition if definition is not None else definitions.get(command)
        # Each command's form stands on the page beside the others: its fields' names and ids
        # carry the command's name; the command itself travels as `name`, as the API names it.
        super().__init__(data, prefix=command, initial={"name": command}, **kwargs)
        self.fields["name"].widget.attrs["id"] = f"id_{command}-name"  # unprefixed, yet one id per form
        self.command = command
        self.definition = definition
        self.title = definition.title if definition else command_title(command)
        self.help = definition.help if definition else ""
        if definition is None:
            self.fields["params"] = forms.CharField(
                label="Parameters (JSON object)",
                required=False,
                widget=forms.TextInput(attrs={"placeholder": '{"level": 3}', "class": "mono", "spellcheck": "false"}),
                help_text="Optional; this command's parameters are not declared.",
            )
            return
        for param in definition.params:
            self.fields[f"params.{param.name}"] = _param_field(param)

    def add_prefix(self, field_name):
        return field_name if field_name == "name" else super().add_prefix(field_name)

    def add_service_error(self, exc):
        """A refusal of command_send, on the field it names (`params.<name>`), else at the top."""
        for key, messages in (exc.fields or {None: [exc.message]}).items():
            field = key if key in self.fields else (key or "").split(".", 1)[0]
            # `name` is hidden: a refusal of the command itself goes on top of its form.
            shown = field in self.fields and field != "name"
            for message in messages:
                self.add_error(field if shown else None, message)

    def clean(self):
        cleaned = super().clean()
        if self.definition is None:
            cleaned["params"] = _json_params(self, cleaned.get("params", ""))
            return cleaned
        # What the owner left empty is not sent: the command's default (or its "required") applies.
        params = {}
        for param in self.definition.params:
            value = cleaned.pop(f"params.{param.name}", None)
            if value is not None and value != "":
                params[param.name] = _typed(param, value)
        cleaned["params"] = params
        return cleaned


def _param_field(param):
    label = command_title(param.name)
    rule = param.describe()
    help_text = " ".join(part for part in (param.help, f"{rule[0].upper()}{rule[1:]}.") if part)
    if param.type == BOOL:
        return forms.BooleanField(label=label, required=False, initial=bool(param.default), help_text=help_text)
    attrs = {"data-param": param.name}
    if param.type in (INT, FLOAT):
        attrs["step"] = "1" if param.type == INT else "any"
        attrs.update({bound: _html_number(getattr(param, bound)) for bound in ("min", "max")
                      if getattr(param, bound) is not None})  # fmt: skip
        widget = forms.NumberInput(attrs=attrs)
    elif param.type == CHOICE:
        empty = [] if param.required else [("", "—")]
        widget = forms.Select(attrs=attrs, choices=empty + [(choice, choice) for choice in param.choices])
    else:
        if param.max is not None:
            attrs["maxlength"] = int(param.max)
        widget = forms.TextInput(attrs=attrs)
    if param.required:
        widget.attrs["required"] = True
    # Not required here even when the command requires it: the service says so, in its own words.
    return forms.CharField(label=label, required=False, strip=False, widget=widget, initial=param.default,
                           help_text=help_text)  # fmt: skip


def _html_number(value):
    return int(value) if float(value).is_integer() else value


def _typed(param, value):
    """What the owner typed, as the JSON value the API would carry: a number parsed, when it parses
    (else the text as typed, which the service refuses naming the rule), a checkbox's True/False."""
    if param.type in (INT, FLOAT) and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and param.type == INT else number
    return value


def _json_params(form, raw):
    raw = (raw or "").strip()
    if not raw:
        return {}
    try:
        params = json.loads(raw)
    except ValueError:
        params = None
    if not isinstance(params, dict):
        form.add_error("params", 'Write the parameters as a JSON object, for example {"seconds": 30}.')
        return {}
    return params


def command_forms(device, *, bound=None) -> list[CommandForm]:
    """One form per command the device's product accepts, in its order; `bound` (a POST's form,
    with its errors) stands in place of its command's."""
    definitions = command_definitions_for_product(device.product)
    # A command the product does not accept (a stale page, a forged request): its refusal on top.
    forms_ = [bound] if bound is not None and bound.command not in definitions else []
    for name, definition in definitions.items():
        if bound is not None and bound.command == name:
            forms_.append(bound)
        else:
            forms_.append(CommandForm(device=device, command=name, definition=definition))
    return forms_


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
