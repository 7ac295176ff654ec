"""One declaration per setting: default, value rules and help text, checked the same way in every schema.

    steps: int = setting(25, min=1, help="denoising steps")

Rules (all optional): ``min``/``max`` (inclusive), ``gt``/``lt`` (exclusive), ``multiple_of``. Every float
must be finite (NaN and infinities are refused: they make outputs silently black) unless the rule
``finite=False`` says otherwise. Choices are Enums (OmegaConf refuses other values when loading). Rules
that tie two settings together stay small functions beside the schema.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from magicanimate.errors import ConfigError

_RULES = ("min", "max", "gt", "lt", "multiple_of", "finite")


def setting(default: Any = MISSING, *, help: str = "", flag: Optional[str] = None, default_factory=None,
            **rules: Any) -> Any:
    """A dataclass field with its help text, an optional command-line flag name and its value rules."""
    unknown = set(rules) - set(_RULES)
    if unknown:
        raise TypeError(f"unknown setting rules {sorted(unknown)}; known: {', '.join(_RULES)}")
    metadata = {"help": help, "flag": flag, "rules": rules}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def describe_range(rules: dict) -> str:
    lo = f"({rules['gt']}" if "gt" in rules else (f"[{rules['min']}" if "min" in rules else None)
    hi = f"{rules['lt']})" if "lt" in rules else (f"{rules['max']}]" if "max" in rules else None)
    if lo and hi:
        return f"must be in {lo}, {hi}"
    if lo:
        return f"must be {'>' if lo[0] == '(' else '>='} {lo[1:]}"
    if hi:
        return f"must be {'<' if hi[-1] == ')' else '<='} {hi[:-1]}"
    return ""


def check_value(key: str, value: Any, rules: dict, *, is_float: bool) -> Optional[str]:
    """The problem with ``value`` under ``rules`` (a message), or None."""
    if value is None or isinstance(value, (bool, str, Enum)):
        return None
    if not isinstance(value, (int, float)):
        return None
    if is_float and rules.get("finite", True) and not math.isfinite(value):
        return f"{key}: must be a finite number, got {value}"
    bad = (("min" in rules and value < rules["min"]) or ("max" in rules and value > rules["max"])
           or ("gt" in rules and value <= rules["gt"]) or ("lt" in rules and value >= rules["lt"]))
    if bad:
        return f"{key}: {describe_range(rules)}, got {value}"
    if "multiple_of" in rules and value % rules["multiple_of"]:
        return f"{key}: must be a multiple of {rules['multiple_of']}, got {value}"
    return None


def _is_float(annotation: Any) -> bool:
    return annotation is float or float in (typing.get_args(annotation) or ())


def validate_fields(cfg: Any, schema: Optional[type] = None, *, where: str = "", prefix: str = "") -> None:
    """Check every field of ``cfg`` (a structured DictConfig or a dataclass instance) against its
    :func:`setting` rules, recursing into nested sections; raise one ConfigError naming the key."""
    schema = schema or (OmegaConf.get_type(cfg) if isinstance(cfg, DictConfig) else type(cfg))
    if not dataclasses.is_dataclass(schema):
        return
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        value = getattr(cfg, f.name)
        key = prefix + f.name
        annotation = hints.get(f.name, f.type)
        rules = dict(f.metadata.get("rules", {})) if f.metadata else {}
        if value is not None and (isinstance(value, DictConfig) or dataclasses.is_dataclass(value)):
            validate_fields(value, None, where=where, prefix=key + ".")
            continue
        is_list = isinstance(value, (list, tuple, ListConfig))
        element = (typing.get_args(annotation) or (None,))[0] if is_list else annotation
        for item in (list(value) if is_list else [value]):
            problem = check_value(key, item, rules, is_float=_is_float(element) or isinstance(item, float))
            if problem:
                raise ConfigError(f"{where}: {problem}" if where else problem)
