"""The command form is built from the product's command declarations (issue 19): one form per
command, in a <details>, a typed field per parameter; what fits is still command_send's to say."""

import re
from http import HTTPStatus

import pytest
from django.urls import reverse

from devices.forms import CommandForm, command_forms
from devices.models import Command
from tests.factories import DeviceFactory, ProductFactory

pytestmark = pytest.mark.django_db

HEATER = [
    "reboot",
    "identify",
    "open_door",  # declared by name alone: any flat object
    {"name": "set_mode", "label": "Set mode", "help": "The heating mode.", "params": [
        {"name": "mode", "type": "choice", "choices": ["eco", "comfort"], "required": True},
        {"name": "boost", "type": "bool", "default": False},
        {"name": "target", "type": "float", "min": 5, "max": 30.5},
        {"name": "note", "type": "string", "max": 40},
    ]},
]  # fmt: skip


@pytest.fixture
def heater(owner):
    return DeviceFactory(owner=owner, product=ProductFactory(slug="heater", commands=HEATER))


def test_each_parameter_is_a_typed_field():
    device = DeviceFactory(product=ProductFactory(slug="heater", commands=HEATER))
    html = {form.command: str(form) for form in command_forms(device)}
    assert list(html) == ["reboot", "identify", "open_door", "set_mode"]
    assert re.search(r'<input type="number" name="identify-params.seconds" value="10" [^>]*step="1" min="1" max="600"',
                     html["identify"])  # fmt: skip
    assert '<select name="set_mode-params.mode"' in html["set_mode"] and '<option value="comfort">' in html["set_mode"]
    assert '<input type="checkbox" name="set_mode-params.boost"' in html["set_mode"]
    assert 'step="any" min="5" max="30.5"' in html["set_mode"]
    assert 'maxlength="40"' in html["set_mode"]
    assert 'name="open_door-params"' in html["open_door"]  # its parameters as a JSON object
    assert "params" not in html["reboot"].replace('name="name"', "")


def test_the_page_has_one_form_per_command_each_in_a_details(owner_client, heater):
    html = owner_client.get(reverse("devices:detail", args=[heater.pk])).content.decode()
    assert html.count('<details id="command-') == 4
    assert "<summary>Set mode <span" in html and "The heating mode." in html
    assert html.count(f'action="/devices/{heater.pk}/commands/"') == 4
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # the forms stand side by side: no id twice


def test_a_command_is_sent_with_its_parameters_typed(owner_client, owner, heater):
    data = {"name": "set_mode", "set_mode-params.mode": "comfort", "set_mode-params.boost": "on",
            "set_mode-params.target": "21.5", "set_mode-params.note": ""}  # fmt: skip
    response = owner_client.post(reverse("devices:command", args=[heater.pk]), data)
    assert response.status_code == HTTPStatus.FOUND
    command = Command.objects.get(device=heater)
    assert (command.name, command.params) == ("set_mode", {"mode": "comfort", "boost": True, "target": 21.5})


def test_an_unticked_box_is_false_and_an_empty_number_takes_its_default(owner_client, heater):
    owner_client.post(reverse("devices:command", args=[heater.pk]), {"name": "set_mode", "set_mode-params.mode": "eco"})
    owner_client.post(reverse("devices:command", args=[heater.pk]), {"name": "identify", "identify-params.seconds": ""})
    assert [c.params for c in Command.objects.order_by("created_at")] == [{"mode": "eco", "boost": False},
                                                                          {"seconds": 10}]  # fmt: skip


def test_a_value_out_of_range_is_an_error_on_its_field_and_its_form_stays_open(owner_client, heater):
    data = {"name": "set_mode", "set_mode-params.mode": "eco", "set_mode-params.target": "31"}
    response = owner_client.post(reverse("devices:command", args=[heater.pk]), data)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    form = response.context["command_form"]
    assert form.errors == {"params.target": ["target must be a number from 5 to 30.5."]}
    html = response.content.decode()
    assert '<details id="command-set_mode" open>' in html and html.count(" open>") == 1
    assert 'value="31"' in html  # what was typed stays
    assert not Command.objects.exists()


def test_a_command_the_product_does_not_accept_is_refused_on_top(owner_client, heater):
    response = owner_client.post(reverse("devices:command", args=[heater.pk]), {"name": "self_destruct"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.context["command_form"].non_field_errors()
    assert not Command.objects.exists()


def test_a_viewer_sees_the_commands_but_no_form(client, heater, settings):
    from tests.factories import ShareFactory

    share = ShareFactory(device=heater, role="viewer")
    client.force_login(share.user)
    html = client.get(reverse("devices:detail", args=[heater.pk])).content.decode()
    assert 'id="commands-h"' in html and "<details id=\"command-" not in html


def test_the_form_reads_what_was_typed_and_leaves_the_rule_to_the_service(heater):
    form = CommandForm({"name": "identify", "identify-params.seconds": "abc"}, device=heater, command="identify")
    assert form.is_valid() and form.cleaned_data["params"] == {"seconds": "abc"}
