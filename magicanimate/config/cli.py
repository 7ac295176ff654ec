"""Command lines generated from config schemas: one flag per documented setting, values applied typed.

A flag's value is parsed by argparse with the field's own type and put into the config as that typed value
(no round trip through YAML text, so a path with backslashes or quotes arrives unchanged). Choices come from
the field's Enum. ``key=value`` overrides may appear anywhere on the command line, before or after flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from enum import Enum
from typing import Any, Dict, Iterable, Optional, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from magicanimate.errors import ConfigError


class CliParser(argparse.ArgumentParser):
    """argparse with the project's error convention: one ``error: ...`` line on stderr, exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        return args[0]
    return annotation


def _flag_for(field: dataclasses.Field, prefix: str) -> Optional[str]:
    meta = field.metadata or {}
    if meta.get("flag"):
        return meta["flag"]
    if prefix or not meta.get("help"):
        return None  # nested settings are reached with key=value unless they declare a flag
    return "--" + field.name.replace("_", "-")


def add_schema_flags(parser: argparse.ArgumentParser, schema: type, *, prefix: str = "",
                     skip: Iterable[str] = ()) -> Dict[str, str]:
    """Add a flag for every documented field of ``schema`` (recursing into nested sections for fields that
    declare ``flag=``); returns {argparse dest: dotted config key}."""
    hints = typing.get_type_hints(schema)
    dests: Dict[str, str] = {}
    for field in dataclasses.fields(schema):
        key = prefix + field.name
        annotation = _unwrap_optional(hints.get(field.name, field.type))
        if dataclasses.is_dataclass(annotation):
            dests.update(add_schema_flags(parser, annotation, prefix=key + ".", skip=skip))
            continue
        flag = _flag_for(field, prefix)
        if flag is None or key in skip:
            continue
        dest = "cfg__" + key.replace(".", "__")
        dests[dest] = key
        help_text = field.metadata.get("help", "")
        if annotation is bool:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif isinstance(annotation, type) and issubclass(annotation, Enum):
            parser.add_argument(flag, dest=dest, choices=[m.value for m in annotation], default=None,
                                help=help_text)
        else:
            kind = annotation if annotation in (int, float, str) else str
            parser.add_argument(flag, dest=dest, type=kind, default=None, metavar=field.name.upper(),
                                help=help_text)
    return dests


def flag_values(args: argparse.Namespace, dests: Dict[str, str]) -> Dict[str, Any]:
    """{dotted key: typed value} of the flags given on the command line."""
    return {key: getattr(args, dest) for dest, key in dests.items() if getattr(args, dest, None) is not None}


def apply_values(cfg: DictConfig, values: Dict[str, Any], *, where: str = "command line") -> DictConfig:
    """Put typed values into a structured config (type-checked by OmegaConf), in place."""
    for key, value in values.items():
        try:
            OmegaConf.update(cfg, key, value.value if isinstance(value, Enum) else value, merge=True)
        except OmegaConfBaseException as exc:
            detail = (getattr(exc, "msg", None) or str(exc)).split("\n")[0]
            raise ConfigError(f"{where}: bad value for '{key}': {detail}") from None
    return cfg


def parse_command_line(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None):
    """Flags and ``key=value`` overrides in any order (the parser's positional ``overrides`` collects them)."""
    return parser.parse_intermixed_args(argv)
