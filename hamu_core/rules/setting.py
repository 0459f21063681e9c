"""Each rule setting declared once: default, range, label and help in the dataclass field.

A rule's fields carry a :class:`Setting` in their metadata (scikit-learn declares parameter
constraints the same way). Three readers use that one declaration, so no range is ever
copied: :func:`validate` (called by every rule's ``__post_init__``), the Unlearn page's
settings form (label, help, bounds, choices) and the CLI's ``--set NAME=VALUE``
(:func:`parse_setting`). A setting is one of four kinds, told by its default and metadata:
a choice among strings, a flag, a number, or an optional number that ``None`` turns off.
"""

from __future__ import annotations

import math
from dataclasses import Field, dataclass, field, fields
from typing import Any

KEY = "hamu_setting"


@dataclass(frozen=True)
class Setting:
    """What a user may set a field to, and how the field is named and explained to them."""

    label: str  # the widget's label
    help: str  # one line for the widget's tooltip and the CLI
    low: float | None = None  # smallest allowed number (None: unbounded)
    high: float | None = None  # largest allowed number (None: unbounded)
    low_open: bool = False  # True when ``low`` itself is not allowed (a strictly positive number)
    choices: tuple[str, ...] = ()  # the allowed strings of a choice setting
    optional: bool = False  # None is allowed and turns the setting off (the form shows it as 0)
    flag: bool = False  # a yes/no setting (set by ``setting`` from a bool default)

    def describe(self) -> str:
        """The allowed values in words, for error messages and help texts."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.flag:
            return "true or false"
        low = "" if self.low is None else (f"> {self.low:g}" if self.low_open else f">= {self.low:g}")
        high = "" if self.high is None else f"<= {self.high:g}"
        bounds = " and ".join(b for b in (low, high) if b)
        return " ".join(("a finite number", bounds)).strip() + (" (or none to turn it off)" if self.optional else "")

    def check(self, name: str, value: Any) -> None:
        """Raise a ValueError naming the field and the allowed values unless ``value`` is allowed."""
        if value is None and self.optional:
            return
        if self.choices or self.flag:
            if value not in (self.choices or (True, False)) or (self.flag and not isinstance(value, bool)):
                raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and value > self.high
        if not math.isfinite(value) or below or above:
            raise ValueError(f"{name} must be {self.describe()}, got {value}")


def setting(default: Any, label: str, help: str, **limits: Any) -> Any:
    """A dataclass field with ``default`` whose metadata declares the setting (see :class:`Setting`)."""
    return field(default=default, metadata={KEY: Setting(label, help, flag=isinstance(default, bool), **limits)})


def declared(rule_class: type) -> dict[str, tuple[Field, Setting]]:
    """Every declared setting of a rule class, in field order: name → (field, setting)."""
    return {f.name: (f, f.metadata[KEY]) for f in fields(rule_class) if KEY in f.metadata}


def validate(rule: Any) -> None:
    """Check every declared setting of ``rule`` against its declaration (ValueError naming the field)."""
    for name, (_, spec) in declared(type(rule)).items():
        spec.check(name, getattr(rule, name))


def parse_setting(rule_class: type, name: str, text: str) -> Any:
    """Turn the text of ``--set NAME=TEXT`` into the value the field takes, checked against its range.

    Raises a ValueError naming the setting: an unknown name lists the rule's settings, a
    value of the wrong kind or out of range says what is allowed.
    """
    settings = declared(rule_class)
    if name not in settings:
        raise ValueError(f"unknown setting {name!r} for {rule_class.name}; settings: {', '.join(settings)}")
    spec = settings[name][1]
    word = text.strip()
    if spec.optional and word.lower() in ("none", "off"):
        value: Any = None
    elif spec.choices:
        value = word
    elif spec.flag:
        if word.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{name} must be true or false, got {text!r}")
        value = word.lower() in ("true", "1", "yes")
    else:
        try:
            value = float(word)
        except ValueError:
            raise ValueError(f"{name} must be {spec.describe()}, got {text!r}") from None
    spec.check(name, value)
    return value
