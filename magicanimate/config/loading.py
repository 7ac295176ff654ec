"""Loading typed configs: schema defaults, then a YAML file, then ``key=value`` overrides, strictly.

Each area defines its schema as dataclasses in its own module and loads it with :func:`load_config`::

    cfg = load_config(InferenceConfig, "configs/inference/default.yaml", ["steps=10", "size=[512,512]"])

Loading is strict: an unknown or misspelled key, a value of the wrong type, a scalar where a section is
expected, an unresolvable ``${...}`` interpolation or a required (``MISSING``) value left unset raises one
:class:`~magicanimate.errors.ConfigError` that names the key, the file (or the override) and, for unknown
keys, the closest valid key. Overrides are ``dotted.key=value`` strings; values are YAML
(``lr=1e-4``, ``sizes=[64,128]``, ``name=null``, ``items.0=3`` or ``items[0]=3`` for one list element).

:func:`save_config` writes the resolved config (interpolations replaced by their values) next to an output.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import typing
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.nodes import StringNode
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue, OmegaConfBaseException

from magicanimate.errors import ConfigError
from magicanimate.utils.files import atomic_path

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_CONFIG_NAME = "config.yaml"



# ------------------------------------------------------------------------------------------- loading

def load_config(schema: Any, path: Optional[PathLike] = None, overrides: Sequence[str] = (), *,
                allow_missing: bool = False) -> DictConfig:
    """Build the typed config: ``schema`` defaults, then the YAML file at ``path``, then ``overrides``.

    Args:
        schema: a dataclass type (or instance) describing the config.
        path: YAML file; ``None`` uses the schema's defaults only.
        overrides: ``dotted.key=value`` strings, applied in order after the file.
        allow_missing: accept required (``MISSING``) values left unset; they then raise on access.

    Returns:
        a struct-mode ``DictConfig`` typed by ``schema`` (attribute access; unknown keys cannot be set).
        :func:`to_object` turns it into the dataclass instance.
    """
    if not (dataclasses.is_dataclass(schema)):
        raise TypeError(f"schema must be a dataclass type or instance, got {schema!r}")
    _check_field_names(schema if isinstance(schema, type) else type(schema))
    cfg = OmegaConf.structured(schema)
    if path is not None:
        path = Path(path)
        data = _read_yaml(path)
        _check_against(cfg, data, where=str(path), prefix="")
        try:
            cfg = OmegaConf.merge(cfg, data)
        except OmegaConfBaseException as exc:
            raise _as_config_error(exc, where=str(path)) from None
    apply_overrides(cfg, overrides)
    _check_complete(cfg, where=str(path) if path is not None else "the config defaults",
                    allow_missing=allow_missing)
    return cfg


_DICTCONFIG_ATTRIBUTES = frozenset(name for name in dir(DictConfig) if not name.startswith("_"))


def _check_field_names(schema: type, seen: Optional[set] = None) -> None:
    """Refuse schema fields that DictConfig's own methods would hide (``cfg.items`` is a method)."""
    seen = set() if seen is None else seen
    if schema in seen:
        return
    seen.add(schema)
    try:
        hints = typing.get_type_hints(schema)
    except Exception:  # unresolvable forward references: OmegaConf will report them itself
        hints = {}
    for f in dataclasses.fields(schema):
        if f.name in _DICTCONFIG_ATTRIBUTES:
            raise TypeError(f"config schema {schema.__name__}: field '{f.name}' is shadowed by DictConfig.{f.name}; "
                            f"rename it")
        for t in _flatten_type(hints.get(f.name, f.type)):
            if dataclasses.is_dataclass(t) and isinstance(t, type):
                _check_field_names(t, seen)


def _flatten_type(t: Any) -> List[Any]:
    out = [t]
    for arg in getattr(t, "__args__", ()) or ():
        out.extend(_flatten_type(arg))
    return out


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from None
    try:
        data = yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level of a config must be a mapping of keys, got {type(data).__name__}")
    return data


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4``-style numbers as floats (YAML 1.1 requires a dot)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


# ----------------------------------------------------------------------------------------- overrides

def parse_override(text: str) -> Tuple[str, Any]:
    """Split ``"a.b=value"`` into ``("a.b", parsed YAML value)``; ``"a.b="`` gives the empty string."""
    key, raw = _split_override(text)
    return key, _yaml_value(text, raw)


def _split_override(text: str) -> Tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value (e.g. steps=25 or size=[512,512])")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or not re.fullmatch(r"[A-Za-z_][\w\-]*(?:\.\w[\w\-]*|\[\d+\])*", key):
        raise ConfigError(f"override {text!r}: {key!r} is not a valid dotted key")
    return key, raw


def _yaml_value(text: str, raw: str) -> Any:
    if raw.strip() == "":
        return ""
    try:
        return yaml.load(raw, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None


def apply_overrides(cfg: DictConfig, overrides: Iterable[str]) -> DictConfig:
    """Apply ``key=value`` overrides to ``cfg`` in place (strictly, like a file) and return it."""
    for text in overrides:
        key, raw = _split_override(text)
        where = f"override {text!r}"
        _check_override_key(cfg, key, where)
        if isinstance(_node_at(cfg, key), StringNode):
            value = _string_override(text, raw)
        else:
            value = _yaml_value(text, raw)
        if isinstance(value, dict):
            node = _node_at(cfg, key)
            if isinstance(node, DictConfig):
                _check_against(node, value, where=where, prefix=key + ".")
        try:
            OmegaConf.update(cfg, key, value, merge=True)
        except OmegaConfBaseException as exc:
            raise _as_config_error(exc, where=where, full_key=key) from None
    return cfg


def _string_override(text: str, raw: str) -> Any:
    """A text setting (a path, a name) takes the text after ``=`` as it is: read as YAML, a path could lose
    a ``#...`` part as a comment or become a mapping at ``": "``. ``null``/``~`` still mean None, and a value
    quoted as a whole is unquoted as YAML does."""
    stripped = raw.strip()
    if stripped in ("null", "~", "Null", "NULL"):
        return None
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        value = _yaml_value(text, stripped)
        if isinstance(value, str):
            return value
    return raw


def _split_key(key: str) -> List[str]:
    return [p for p in re.split(r"\.|\[|\]", key) if p != ""]


def _check_override_key(cfg: DictConfig, key: str, where: str) -> None:
    """Validate a dotted override key against the schema; create unset optional sections on the way."""
    node: Any = cfg
    walked: List[str] = []
    parts = _split_key(key)
    for i, part in enumerate(parts):
        if isinstance(node, ListConfig):
            if node._is_none() or node._is_missing():
                raise ConfigError(f"{where}: '{'.'.join(walked)}' is unset; set the whole list, e.g. "
                                  f"{'.'.join(walked)}=[...]")
            if not part.isdigit():
                raise ConfigError(f"{where}: '{'.'.join(walked)}' is a list; index it with a number, not {part!r}")
            if int(part) >= len(node):
                raise ConfigError(
                    f"{where}: index {part} is out of range for '{'.'.join(walked)}' ({len(node)} items); "
                    f"set the whole list instead, e.g. {'.'.join(walked)}=[...]")
            node = node._get_node(int(part))
        elif isinstance(node, DictConfig):
            if node._is_none() or node._is_missing():
                section_type = _section_type(node)
                if section_type is None:
                    return  # free-form section: OmegaConf creates it
                # `maybe.lr=1` on an unset Optional section: start from that section's defaults.
                OmegaConf.update(cfg, ".".join(walked), OmegaConf.structured(section_type), merge=False)
                node = OmegaConf.select(cfg, ".".join(walked))
            if _is_structured(node) and not _has_key(node, part):
                raise ConfigError(_unknown_key_message(cfg, node, walked, part, where))
            if not _has_key(node, part):
                return  # free-form mapping (Dict[str, ...]): new keys are allowed
            node = node._get_node(part)
        else:
            raise ConfigError(f"{where}: '{'.'.join(walked)}' is a single value, it has no key {part!r}")
        walked.append(part)


def _node_at(cfg: DictConfig, key: str) -> Any:
    node: Any = cfg
    for part in _split_key(key):
        if isinstance(node, ListConfig):
            node = node._get_node(int(part))
        elif isinstance(node, DictConfig) and _has_key(node, part):
            node = node._get_node(part)
        else:
            return None
    return node


def _section_type(node: DictConfig) -> Optional[type]:
    """The dataclass a DictConfig node is typed with, also when its value is None or missing."""
    node_type = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(node_type):
        return node_type
    ref_type = getattr(node._metadata, "ref_type", None)
    return ref_type if dataclasses.is_dataclass(ref_type) else None


# ------------------------------------------------------------------------------------------ checking

def _is_structured(node: DictConfig) -> bool:
    return dataclasses.is_dataclass(OmegaConf.get_type(node))


def _check_against(node: DictConfig, data: Any, *, where: str, prefix: str, root: Optional[DictConfig] = None) -> None:
    """Walk raw YAML ``data`` against the schema ``node``: unknown keys, and sections given as scalars."""
    root = node if root is None else root
    if not isinstance(data, dict):
        return
    if node._is_none() or node._is_missing():
        # an Optional section that is None in the schema: check against a default instance of its type
        section_type = _section_type(node)
        if section_type is None:
            return
        node = OmegaConf.structured(section_type)
    structured = _is_structured(node)
    for key, value in data.items():
        full = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ConfigError(f"{where}: key {key!r} (under '{prefix.rstrip('.') or 'top level'}') must be a string")
        if not _has_key(node, key):
            if structured:
                raise ConfigError(_unknown_key_message(root, node, _split_key(prefix), key, where))
            continue
        child = node._get_node(key)
        if _is_interpolation(value) or value is None:
            continue
        if isinstance(child, DictConfig):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: '{full}' is a section (mapping of keys), got {value!r}")
            _check_against(child, value, where=where, prefix=full + ".", root=root)
        elif isinstance(child, ListConfig):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}: '{full}' must be a list, got {value!r}")
            element_type = child._metadata.element_type
            if dataclasses.is_dataclass(element_type):
                template = OmegaConf.structured(element_type)
                for i, item in enumerate(value):
                    if not isinstance(item, dict) and not _is_interpolation(item):
                        raise ConfigError(f"{where}: '{full}[{i}]' is a section (mapping of keys), got {item!r}")
                    _check_against(template, item, where=where, prefix=f"{full}[{i}].", root=template)


def _has_key(node: DictConfig, key: str) -> bool:
    # `key in node` is False for keys whose value is MISSING ("???"); those are valid keys all the same.
    return key in node.keys()


def _is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def closest_key(key: str, candidates: Iterable[str]) -> Optional[str]:
    """The candidate most similar to ``key`` (difflib), or ``None`` if none is close."""
    matches = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _all_paths(node: Any, prefix: str = "") -> List[str]:
    paths = []
    if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
        for k in node.keys():
            full = f"{prefix}{k}"
            paths.append(full)
            paths.extend(_all_paths(node._get_node(k), full + "."))
    return paths


def _join_key(parts: Sequence[str]) -> str:
    """``["items", "0", "name"]`` -> ``"items[0].name"`` (OmegaConf's spelling of list elements)."""
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _unknown_key_message(root: DictConfig, node: DictConfig, parent: List[str], key: str, where: str) -> str:
    parent_name = _join_key(parent)
    full = f"{parent_name}.{key}" if parent_name else key
    siblings = [str(k) for k in node.keys()]
    section = f"section '{parent_name}'" if parent_name else "the top level"
    msg = f"{where}: unknown key '{full}'"
    suggestion = closest_key(key, siblings)
    if suggestion is not None:
        hint = f"{parent_name}.{suggestion}" if parent_name else suggestion
        return f"{msg}; did you mean '{hint}'? (valid keys in {section}: {', '.join(siblings)})"
    # Maybe the key exists, or nearly so, in another section (e.g. `lr` at the top level instead of `optim.lr`).
    elsewhere = [p for p in _all_paths(root) if p.rsplit(".", 1)[-1] == key]
    if not elsewhere:
        leaf = closest_key(key, {p.rsplit(".", 1)[-1] for p in _all_paths(root)})
        elsewhere = [p for p in _all_paths(root) if leaf is not None and p.rsplit(".", 1)[-1] == leaf]
    if elsewhere:
        return f"{msg}; did you mean '{elsewhere[0]}'? (valid keys in {section}: {', '.join(siblings)})"
    return f"{msg} (valid keys in {section}: {', '.join(siblings) or 'none'})"


def _as_config_error(exc: OmegaConfBaseException, *, where: str, full_key: Optional[str] = None) -> ConfigError:
    key = getattr(exc, "full_key", None) or full_key
    detail = (getattr(exc, "msg", None) or str(exc)).split("\n")[0].strip()
    if key:
        return ConfigError(f"{where}: bad value for '{key}': {detail}")
    return ConfigError(f"{where}: {detail}")


def _check_complete(cfg: DictConfig, *, where: str, allow_missing: bool) -> None:
    if not allow_missing:
        try:
            missing = sorted(OmegaConf.missing_keys(cfg))
        except OmegaConfBaseException as exc:
            raise _as_config_error(exc, where=where) from None
        if missing:
            raise ConfigError(
                f"{where}: required key(s) not set: {', '.join(missing)} "
                f"(set them in the YAML file or as overrides, e.g. {missing[0]}=...)")
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        if not allow_missing:
            raise
    except OmegaConfBaseException as exc:
        raise _as_config_error(exc, where=where) from None


# ------------------------------------------------------------------------------------ saving / using

def save_config(cfg: Any, path_or_dir: PathLike, *, name: str = DEFAULT_CONFIG_NAME) -> Path:
    """Write ``cfg`` as resolved YAML (atomically) and return the file's path.

    ``path_or_dir`` is either the YAML file to write (it has a ``.yaml``/``.yml`` suffix) or a folder, in
    which case the file is ``<folder>/<name>``. ``cfg`` may be a DictConfig, a dataclass instance or a dict.
    """
    target = Path(path_or_dir)
    if target.suffix.lower() not in (".yaml", ".yml") or target.is_dir():
        target = target / name
    if not isinstance(cfg, (DictConfig, ListConfig)):
        cfg = OmegaConf.structured(cfg) if dataclasses.is_dataclass(cfg) else OmegaConf.create(cfg)
    try:
        text = OmegaConf.to_yaml(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise _as_config_error(exc, where=f"saving {target}") from None
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def to_object(cfg: DictConfig) -> Any:
    """The dataclass instance (with nested dataclasses) that a structured ``cfg`` describes."""
    return OmegaConf.to_object(cfg)


def add_config_arguments(parser: argparse.ArgumentParser, *, default_config: Optional[str] = None,
                         required: bool = False) -> argparse.ArgumentParser:
    """Add ``--config PATH`` and trailing ``key=value`` overrides to a script's argument parser.

    After ``args = parser.parse_args()``: ``load_config(Schema, args.config, args.overrides)``.
    """
    parser.add_argument("--config", default=default_config, required=required and default_config is None,
                        help="YAML config file" + (f" (default: {default_config})" if default_config else ""))
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="override config values, e.g. steps=25 size=[512,512] model.path=...")
    return parser
