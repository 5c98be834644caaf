"""What a product's values mean: its declared fields (`ProductField`), the rules on a set of them,
and how a value is shown with its field (decimals and unit, on/off, a state's name).

A device may send keys no field declares: they are stored as sent and shown raw, after the
declared ones. Fields change how values are shown, never what is stored or what webhooks carry.
"""

from portal.errors import ValidationError

from .models import ProductField, ProductFieldKind
from .reading_charts import number_label, plottable_number

PRIMARY_LIMIT = 2


def product_fields_validate(fields) -> None:
    """The rules on one product's set of fields (`fields`: ProductField instances, saved or not,
    those to keep): keys unique, at most PRIMARY_LIMIT primary ("the one or two that matter"),
    a states field maps each value to a name, an expected range whose low end is below its high end.
    ValidationError naming the field's key otherwise."""
    keys = [field.key for field in fields]
    if duplicates := sorted({key for key in keys if keys.count(key) > 1}):
        raise ValidationError(f"Each key is declared once: {', '.join(duplicates)} is declared twice.")
    primary = [field.key for field in fields if field.primary]
    if len(primary) > PRIMARY_LIMIT:
        raise ValidationError(
            f"At most {PRIMARY_LIMIT} fields are primary (marked now: {', '.join(primary)}).",
            fields={"primary": primary},
        )
    for field in fields:
        if field.kind == ProductFieldKind.STATES:
            states = field.states
            named = isinstance(states, dict) and states and all(isinstance(v, str) and v for v in states.values())
            if not named:
                raise ValidationError(
                    f'{field.key}: named states need a map of value to name, e.g. {{"0": "Idle", "1": "Heating"}}.'
                )
        low, high = field.expected_min, field.expected_max
        if low is not None and high is not None and low >= high:
            raise ValidationError(f"{field.key}: the expected minimum is below the expected maximum.")


def fields_for_product(product) -> list[ProductField]:
    """The product's fields in their order (the primary ones are flagged, not moved). One query,
    kept on the product instance: the device page's values, charts and CSV panels read them alike."""
    cached = getattr(product, "_declared_fields", None)
    if cached is None:
        cached = product._declared_fields = list(ProductField.objects.filter(product=product).order_by("order", "key"))
    return cached


def primary_values_attach(devices) -> None:
    """Sets `primary_values` on each device: [(label, text)] of its product's primary fields, for the
    device list. One query for the page, whatever its size (none when it holds no device)."""
    product_ids = {device.product_id for device in devices}
    primary = {}
    if product_ids:
        for field in ProductField.objects.filter(product_id__in=product_ids, primary=True).order_by("order", "key"):
            primary.setdefault(field.product_id, []).append(field)
    for device in devices:
        values = device.values or {}
        device.primary_values = [
            (field.label, value_text(field, values[field.key]))
            for field in primary.get(device.product_id, [])
            if field.key in values
        ]


def value_text(field: ProductField, value) -> str:
    """`value` as the device page shows it under `field`: a number with its decimals and unit, a
    boolean as on/off, a state by its name; anything that does not fit its kind is shown raw
    (a device may send what its product did not expect)."""
    if value is None:
        return "—"
    if field.kind == ProductFieldKind.NUMBER and (number := plottable_number(value)) is not None:
        if field.decimals is None:  # a key nobody declared (chart_fields): the decimals it needs
            text = number_label(number)
        else:
            text = f"{number:,.{field.decimals}f}".replace(",", "\u202f")  # thin space between thousands
        return f"{text}\u00a0{field.unit}" if field.unit else text
    if field.kind == ProductFieldKind.BOOLEAN and isinstance(value, bool):
        return "on" if value else "off"
    if field.kind == ProductFieldKind.STATES:
        key = _state_key(value)
        if key in (field.states or {}):
            return field.states[key]
    return str(value)


def _state_key(value) -> str:
    """The states map's key for `value`: JSON object keys are text, so a device's 1, 1.0 and "1"
    all name the state "1", and true names "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def values_shown(fields, values: dict) -> tuple[list[dict], list[tuple[str, object]]]:
    """The device's latest `values` under its product's `fields`: (one row per declared field, in
    order — label, key, text, whether it was reported, primary — , the undeclared keys raw, sorted)."""
    values = values or {}
    declared = [
        {
            "key": field.key,
            "label": field.label,
            "text": value_text(field, values.get(field.key)),
            "reported": field.key in values,
            "primary": field.primary,
            "kind": field.kind,
        }
        for field in fields
    ]
    keys = {field.key for field in fields}
    return declared, sorted((key, value) for key, value in values.items() if key not in keys)


def chart_fields(fields, values, *, limit) -> list[ProductField]:
    """What the device page charts: the declared number fields, then the keys no field declares
    whose latest value is a number (a product with no fields still gets its charts), at most `limit`."""
    declared = [field for field in fields if field.kind == ProductFieldKind.NUMBER]
    keys = {field.key for field in fields}
    undeclared = [
        ProductField(key=key, label=key, decimals=None)
        for key, value in sorted((values or {}).items())
        if key not in keys and plottable_number(value) is not None
    ]
    return (declared + undeclared)[:limit]
