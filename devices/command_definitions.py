"""Which parameters each command takes, and the one check every sender goes through.

A product's `commands` lists what its devices accept. An entry is a built-in command's name
(`reboot`, `identify`, `set_interval`: declared in BUILT_IN below) or the product's own
declaration, an object with `name`, optional `label`, `help` and `params` (each with `name`, `type` of
int/float/bool/string/choice, and optional `required`, `min`, `max`, `choices`, `default`, `help`):
`product_commands_validate` checks it where an admin types it. A bare name that no built-in
declares keeps the generic rule: any flat object.
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
    label: str = ""  # what the owner's form calls it; the name, made readable, when none is declared

    @property
    def title(self) -> str:
        return self.label or command_title(self.name)

    def describe(self) -> str:
        if not self.params:
            return f"{self.name}: no parameters"
        return f"{self.name}: " + "; ".join(f"{p.name} ({p.describe()})" for p in self.params)


def command_title(name: str) -> str:
    """A command's name as a person reads it: set_interval → Set interval."""
    return name.replace("_", " ").replace("-", " ").strip().capitalize() or name


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
        CommandDefinition("reboot", help="Restart the device; it keeps its credentials.", label="Reboot"),
        CommandDefinition(
            "identify",
            (Param("seconds", INT, min=1, max=600, default=10, help="How long the LED blinks."),),
            help="Blink the device's LED.",
            label="Identify (blink the LED)",
        ),
        CommandDefinition(
            "set_interval",
            (Param("seconds", INT, required=True, min=1, max=86_400, help="Seconds between check-ins."),),
            help="Change how often the device checks in.",
            label="Set the check-in interval",
        ),
    )
}


def command_definitions_for_product(product) -> dict[str, CommandDefinition | None]:
    """The product's accepted command names, each with its definition (None: not declared)."""
    definitions = {}
    for entry in product.commands or []:
        if isinstance(entry, str):
            definitions[entry] = BUILT_IN.get(entry)
        else:
            definition = _definition_from_json(entry)
            definitions[definition.name] = definition
    return definitions


_PARAM_KEYS = {"name", "type", "required", "min", "max", "choices", "default", "help"}
_NAME_LIMIT = 64


def _definition_from_json(entry: dict) -> CommandDefinition:
    params = tuple(_definition_param(param) for param in entry.get("params") or ())
    return CommandDefinition(entry["name"], params, entry.get("help", ""), entry.get("label", ""))


def _param_problem(param) -> str | None:
    if not isinstance(param, dict) or not isinstance(param.get("name"), str) or not param["name"].strip():
        return "each parameter is an object with a name"
    label = f"parameter {param['name']!r}"
    if unknown := set(param) - _PARAM_KEYS:
        return f"{label} has unknown keys: {', '.join(sorted(unknown))}"
    if param.get("type") not in TYPE_WORDS:
        return f"{label} needs a type: one of {', '.join(TYPE_WORDS)}"
    for bound in ("min", "max"):
        if param.get(bound) is not None and not _finite_number(param[bound]):
            return f"{label}: {bound} must be a number"
    choices = param.get("choices")
    texts = isinstance(choices, list) and choices and all(isinstance(choice, str) for choice in choices)
    if param["type"] == CHOICE and not texts:
        return f"{label}: a choice needs a list of texts in choices"
    if param.get("default") is not None and not _definition_param(param).fits(param["default"]):
        return f"{label}: its default does not fit it"
    return None


def _definition_param(param) -> Param:
    return Param(**{**param, "choices": tuple(param.get("choices") or ())})


def product_commands_validate(commands) -> list:
    """`commands` as a product may hold it, or ValidationError saying what is wrong."""
    def refuse(problem):
        example = '["reboot", {"name": "set_level", "params": [{"name": "level", "type": "int", "min": 0, "max": 10}]}]'
        raise ValidationError(f"Commands: {problem}. For example: {example}", fields={"commands": [problem]})

    if not isinstance(commands, list):
        refuse("a list of command names or declarations")
    names = []
    for entry in commands:
        if isinstance(entry, str):
            name = entry.strip()
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            name = entry["name"].strip()
            if unknown := set(entry) - {"name", "label", "help", "params"}:
                refuse(f"command {name!r} has unknown keys: {', '.join(sorted(unknown))}")
            if not all(isinstance(entry.get(key, ""), str) for key in ("label", "help")):
                refuse(f"the label and help of {name!r} are texts")
            params = entry.get("params") or []
            if not isinstance(params, list):
                refuse(f"the params of {name!r} are a list")
            for param in params:
                if problem := _param_problem(param):
                    refuse(f"in {name!r}, {problem}")
            if len({p["name"] for p in params}) != len(params):
                refuse(f"{name!r} names a parameter twice")
        else:
            refuse("each entry is a command name or an object with a name")
        if not name or len(name) > _NAME_LIMIT:
            refuse(f"a command name has 1 to {_NAME_LIMIT} characters")
        if name in names:
            refuse(f"{name!r} is listed twice")
        names.append(name)
    return [entry.strip() if isinstance(entry, str) else {**entry, "name": entry["name"].strip()} for entry in commands]


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
