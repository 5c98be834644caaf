"""Which parameters each command takes, and the one check every sender goes through.

A definition is plain data (name, parameters with type, range, required, default) so that it can
later be read from a per-product table instead of this catalogue without changing its callers.
A product command name the catalogue does not declare keeps the generic rule: any flat object.
"""

import math
from dataclasses import dataclass, field

from portal.errors import ValidationError

INT, FLOAT, BOOL, STRING, CHOICE = "int", "float", "bool", "string", "choice"
TYPE_WORDS = {INT: "a whole number", FLOAT: "a number", BOOL: "true or false", STRING: "text", CHOICE: "one of"}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    required: bool = False
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    default: object = None
    help: str = ""

    def rule(self) -> str:
        """What a value must be, in words, as the owner's form and the error messages show it."""
        if self.type == CHOICE:
            return f"one of {', '.join(self.choices)}"
        if self.type == STRING and self.max is not None:
            return f"text of {_number(self.min or 0)} to {_number(self.max)} characters"
        words = TYPE_WORDS[self.type]
        if self.min is not None and self.max is not None:
            return f"{words} from {_number(self.min)} to {_number(self.max)}"
        if self.min is not None:
            return f"{words} of at least {_number(self.min)}"
        if self.max is not None:
            return f"{words} of at most {_number(self.max)}"
        return words

    def describe(self) -> str:
        if self.required:
            return f"{self.rule()}, required"
        if self.default is not None:
            return f"{self.rule()}, default {self.default}"
        return f"{self.rule()}, optional"

    def fits(self, value) -> bool:
        if self.type == BOOL:
            return isinstance(value, bool)
        if self.type == CHOICE:
            return isinstance(value, str) and value in self.choices
        if self.type == STRING:
            if not isinstance(value, str):
                return False
            value = len(value)
        elif not _finite_number(value) or (self.type == INT and not _whole(value)):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True)
class CommandDefinition:
    name: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    help: str = ""

    def describe(self) -> str:
        if not self.params:
            return f"{self.name}: no parameters"
        return f"{self.name}: " + "; ".join(f"{p.name} ({p.describe()})" for p in self.params)


def _finite_number(value) -> bool:
    # An int of hundreds of digits (JSON allows it) has no float: compare it as it is.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _whole(value) -> bool:
    return isinstance(value, int) or value.is_integer()


def _number(value) -> str:
    return f"{value:,.0f}".replace(",", " ") if float(value).is_integer() else str(value)


BUILT_IN = {
    definition.name: definition
    for definition in (
        CommandDefinition("reboot", help="Restart the device; it keeps its credentials."),
        CommandDefinition(
            "identify",
            (Param("seconds", INT, min=1, max=600, default=10, help="How long the LED blinks."),),
            help="Blink the device's LED.",
        ),
        CommandDefinition(
            "set_interval",
            (Param("seconds", INT, required=True, min=1, max=86_400, help="Seconds between check-ins."),),
            help="Change how often the device checks in.",
        ),
    )
}


def command_definitions_for_product(product) -> dict[str, CommandDefinition | None]:
    """The product's accepted command names, each with its definition (None: not declared)."""
    return {name: BUILT_IN.get(name) for name in (product.commands or [])}


def command_params_clean(definition: CommandDefinition, params: dict) -> dict:
    """The params checked against the definition, defaults filled in; ValidationError naming
    each offending parameter as `params.<name>` (unknown ones too)."""
    declared = {p.name: p for p in definition.params}
    errors = {}
    for name in params:
        if name not in declared:
            allowed = ", ".join(declared) or "none"
            errors[f"params.{name}"] = [f"{definition.name} takes no parameter {name!r} (parameters: {allowed})."]
    cleaned = {}
    for param in definition.params:
        if param.name not in params or params[param.name] is None:
            if param.required:
                errors[f"params.{param.name}"] = [f"{param.name} is required: {param.describe()}."]
            elif param.default is not None:
                cleaned[param.name] = param.default
            continue
        value = params[param.name]
        if not param.fits(value):
            errors[f"params.{param.name}"] = [f"{param.name} must be {param.rule()}."]
            continue
        cleaned[param.name] = int(value) if param.type == INT else value
    if errors:
        first = next(iter(errors.values()))[0]
        raise ValidationError(f"Parameters of {definition.name} are not valid: {first}", fields=errors)
    return cleaned
