"""A product declares its own commands and their parameters; the API, the owner's form and the admin
all go by that declaration."""

import json

import pytest

from devices.admin import ProductForm
from devices.command_queue import command_send
from portal.errors import ValidationError

from ..factories import DeviceFactory, ProductFactory

pytestmark = pytest.mark.django_db

SET_LEVEL = {
    "name": "set_level",
    "help": "Dim the lamp.",
    "params": [
        {"name": "level", "type": "int", "min": 0, "max": 10, "required": True},
        {"name": "mode", "type": "choice", "choices": ["soft", "hard"], "default": "soft"},
    ],
}


@pytest.fixture
def lamp():
    return DeviceFactory(product=ProductFactory(slug="lamp", commands=["reboot", SET_LEVEL]))


def test_a_products_own_command_takes_what_it_declares(lamp):
    command = command_send(device=lamp, name="set_level", params={"level": 7})
    assert command.params == {"level": 7, "mode": "soft"}
    assert command_send(device=lamp, name="reboot").params == {}


@pytest.mark.parametrize(
    ("params", "field"),
    [({}, "params.level"), ({"level": 11}, "params.level"), ({"level": 3, "mode": "loud"}, "params.mode"),
     ({"level": 3, "colour": "red"}, "params.colour")],
)
def test_a_products_own_command_refuses_what_does_not_fit_naming_the_parameter(lamp, params, field):
    with pytest.raises(ValidationError) as refused:
        command_send(device=lamp, name="set_level", params=params)
    assert field in refused.value.fields


def test_a_command_another_product_declares_is_not_accepted(lamp):
    other = DeviceFactory()  # the default built-in commands
    with pytest.raises(ValidationError) as refused:
        command_send(device=other, name="set_level", params={"level": 1})
    assert refused.value.code == "unknown_command"


def test_the_owners_form_lists_the_declared_parameters(client, lamp, owner):
    type(lamp).objects.filter(pk=lamp.pk).update(owner=owner)
    client.force_login(owner)
    html = client.get(f"/devices/{lamp.pk}/").content.decode()
    # A field per declared parameter (issue 19), its rule beside it.
    assert "set_level" in html and "A whole number from 0 to 10, required." in html


def _form(commands):
    return ProductForm(
        data={"name": "Lamp", "slug": "lamp-2", "description": "", "offline_after": 600, "checkin_interval": 60,
              "poll_cap": 300, "certificate_days": 365, "commands": json.dumps(commands)}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("commands", "says"),
    [
        ("reboot", "a list of command names or declarations"),
        ([{"name": "x", "params": [{"name": "a", "type": "decimal"}]}], "needs a type"),
        ([{"name": "x", "params": [{"name": "a", "type": "int", "min": 5, "default": 1}]}], "its default does not fit"),
        ([{"name": "x", "params": [{"name": "a", "type": "choice"}]}], "a choice needs a list of texts"),
        ([{"name": "x", "params": [{"name": "a", "type": "int"}] * 2}], "names a parameter twice"),
        (["reboot", "reboot"], "listed twice"),
        ([{"name": "x", "parms": []}], "unknown keys: parms"),
    ],
)
def test_the_admin_refuses_a_declaration_that_does_not_hold_together(commands, says):
    form = _form(commands)
    assert not form.is_valid()
    assert says in str(form.errors["commands"])


def test_the_admin_takes_a_good_declaration():
    form = _form(["reboot", SET_LEVEL])
    assert form.is_valid(), form.errors
    assert form.cleaned_data["commands"][1]["name"] == "set_level"
