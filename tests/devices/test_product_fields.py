"""A product declares what its values mean (`ProductField`): the rules on a set of fields, how a
value is shown under its field, the admin's inline and its permission, the demo's fields."""

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from devices.models import ProductField, ProductFieldKind
from devices.product_fields import product_fields_validate, value_text, values_shown
from portal.errors import ValidationError
from tests.factories import ProductFactory, ProductFieldFactory, UserFactory


def field(**kwargs):
    return ProductField(**{"key": "t", "label": "T", **kwargs})


@pytest.mark.parametrize(
    ("declared", "value", "shown"),
    [
        ({"unit": "°C", "decimals": 1}, 21.456, "21.5\u00a0°C"),
        ({"decimals": 0}, 1234567, "1\u202f234\u202f567"),
        ({"unit": "%", "decimals": 2}, 7, "7.00\u00a0%"),
        ({"unit": "V"}, "n/a", "n/a"),  # what does not fit its kind is shown raw
        ({"unit": "V"}, True, "True"),  # a switch is not a quantity
        ({"kind": ProductFieldKind.BOOLEAN}, True, "on"),
        ({"kind": ProductFieldKind.BOOLEAN}, False, "off"),
        ({"kind": ProductFieldKind.STATES, "states": {"0": "Idle", "1": "Heating"}}, 1, "Heating"),
        ({"kind": ProductFieldKind.STATES, "states": {"0": "Idle", "1": "Heating"}}, 1.0, "Heating"),
        ({"kind": ProductFieldKind.STATES, "states": {"0": "Idle"}}, 7, "7"),
        ({"kind": ProductFieldKind.TEXT}, "open", "open"),
        ({}, None, "—"),
    ],
)
def test_a_value_is_shown_under_its_field(declared, value, shown):
    assert value_text(field(**declared), value) == shown


def test_declared_fields_first_in_order_then_undeclared_keys_raw():
    fields = [field(key="t", label="Temperature", unit="°C"), field(key="h", label="Humidity", decimals=0)]
    declared, raw = values_shown(fields, {"t": 20, "zeta": 1, "alpha": "x"})
    assert [(row["label"], row["text"], row["reported"]) for row in declared] == [
        ("Temperature", "20.0\u00a0°C", True),
        ("Humidity", "—", False),
    ]
    assert raw == [("alpha", "x"), ("zeta", 1)]


def test_at_most_two_fields_are_primary():
    product_fields_validate([field(key="a", primary=True), field(key="b", primary=True), field(key="c")])
    with pytest.raises(ValidationError, match="At most 2 fields are primary"):
        product_fields_validate([field(key=key, primary=True) for key in "abc"])


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ([field(key="a"), field(key="a")], "declared twice"),
        ([field(kind=ProductFieldKind.STATES)], "named states need a map"),
        ([field(kind=ProductFieldKind.STATES, states={"0": ""})], "named states need a map"),
        ([field(expected_min=10, expected_max=5)], "expected minimum is below"),
    ],
)
def test_a_set_of_fields_that_breaks_a_rule_is_refused(fields, says):
    with pytest.raises(ValidationError, match=says):
        product_fields_validate(fields)


# --- the admin's inline ----------------------------------------------------------------------------

PRODUCT_DATA = {
    "name": "P1",
    "slug": "p1",
    "description": "",
    "offline_after": 600,
    "checkin_interval": 60,
    "poll_cap": 300,
    "certificate_days": 365,
    "commands": '["reboot"]',
}


def _inline(*rows):
    data = {
        "fields-TOTAL_FORMS": str(len(rows)),
        "fields-INITIAL_FORMS": "0",
        "fields-MIN_NUM_FORMS": "0",
        "fields-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        defaults = {"order": "0", "kind": "number", "decimals": "1", "states": "{}", "unit": ""}
        data.update({f"fields-{i}-{name}": value for name, value in {**defaults, **row}.items()})
    return data


@pytest.fixture
def product_admin(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = UserFactory(is_staff=True)
    codenames = ["view_product", "change_product", "view_productfield", "add_productfield", "change_productfield"]
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="devices", codename__in=codenames))
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_admin_declares_a_products_fields_inline(product_admin):
    product = ProductFactory(slug="p1", name="P1")
    url = reverse("admin:devices_product_change", args=[product.pk])
    rows = [{"key": "temperature", "label": "Temperature", "unit": "°C", "primary": "on"},
            {"key": "mode", "label": "Mode", "kind": "states", "states": '{"0": "Idle", "1": "Heating"}'}]  # fmt: skip
    response = product_admin.post(url, {**PRODUCT_DATA, **_inline(*rows)})
    assert response.status_code == HTTPStatus.FOUND
    assert [(f.key, f.unit, f.primary, f.states) for f in product.fields.order_by("key")] == [
        ("mode", "", False, {"0": "Idle", "1": "Heating"}),
        ("temperature", "°C", True, {}),
    ]


@pytest.mark.django_db
def test_the_admin_refuses_a_third_primary_field(product_admin):
    product = ProductFactory(slug="p1", name="P1")
    url = reverse("admin:devices_product_change", args=[product.pk])
    rows = [{"key": key, "label": key, "primary": "on"} for key in ("a", "b", "c")]
    response = product_admin.post(url, {**PRODUCT_DATA, **_inline(*rows)})
    assert response.status_code == HTTPStatus.OK
    assert "At most 2 fields are primary" in response.content.decode()
    assert not product.fields.exists()


@pytest.mark.django_db
def test_the_inline_needs_the_fields_permission(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="devices", codename__in=["view_product", "change_product"])
    )
    client.force_login(user)
    ProductFieldFactory(product=ProductFactory(slug="p1"), key="temperature")
    html = client.get(reverse("admin:devices_product_change", args=[ProductFactory(slug="p1").pk])).content.decode()
    assert "fields-TOTAL_FORMS" not in html and "temperature" not in html
