"""Settings that travel with a model, and the layering of every source of inference settings.

A saved pipeline folder may hold ``settings.yaml``: the values of :class:`SamplingConfig` (and the output
size) it was trained and validated with, e.g. the bundled demo's 64 px, 10 steps, guidance 2.5 and
initialisation from the reference. They are defaults, not orders: any setting the user gives wins.

Layers, later ones win for the keys they set: the schema's defaults, ``base`` (e.g. the bundled demo's
inputs), the model folder's ``settings.yaml``, then what the user gave (a YAML file, ``key=value``
overrides, typed command-line values).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

import yaml
from omegaconf import OmegaConf

from magicanimate.config import load_config, parse_override
from magicanimate.config.cli import apply_values
from magicanimate.config.loading import _read_yaml
from magicanimate.errors import ConfigError
from magicanimate.pipelines.config import SAMPLING_KEYS, InferenceConfig, new_inference_config, \
    validate_inference_config
from magicanimate.utils.files import atomic_path

SETTINGS_FILE = "settings.yaml"
MODEL_SETTING_KEYS = SAMPLING_KEYS + ("size", "width", "height", "fit")


def read_model_settings(folder: os.PathLike) -> Dict[str, Any]:
    """The inference settings a saved pipeline folder carries ({} when it has none), checked."""
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        return {}
    data = _read_yaml(path)
    unknown = sorted(set(data) - set(MODEL_SETTING_KEYS))
    if unknown:
        raise ConfigError(f"{path}: {', '.join(unknown)} cannot be a model's setting (allowed: "
                          f"{', '.join(MODEL_SETTING_KEYS)})")
    try:
        new_inference_config(**data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return data


def write_model_settings(folder: os.PathLike, settings: Mapping[str, Any]) -> Path:
    """Write ``settings`` (a subset of MODEL_SETTING_KEYS, checked) as ``<folder>/settings.yaml``."""
    values = {k: (v.value if hasattr(v, "value") else v) for k, v in dict(settings).items()}
    unknown = sorted(set(values) - set(MODEL_SETTING_KEYS))
    if unknown:
        raise ConfigError(f"model settings: {', '.join(unknown)} are not model settings")
    new_inference_config(**values)
    with atomic_path(Path(folder) / SETTINGS_FILE) as tmp:
        tmp.write_text("# inference defaults of this model (scripts/animate.py flags override them)\n"
                       + yaml.safe_dump(values, sort_keys=False))
    return Path(folder) / SETTINGS_FILE


def model_folder(weights) -> Optional[Path]:
    """The saved pipeline folder ``weights`` (a WeightsConfig) points at, if any."""
    for candidate in (weights.pipeline, weights.root):
        if candidate and (Path(candidate) / "model_index.json").is_file():
            return Path(candidate)
    return None


def build_inference_config(path: Optional[os.PathLike] = None, overrides: Sequence[str] = (),
                           values: Optional[Mapping[str, Any]] = None,
                           base: Optional[Mapping[str, Any]] = None) -> InferenceConfig:
    """The layered config (see the module docstring): defaults < ``base`` < the model's settings < the
    user's ``path`` file, ``overrides`` (``key=value`` text) and ``values`` (typed, dotted keys)."""
    values = dict(values or {})
    cfg = load_config(InferenceConfig, path, overrides)
    apply_values(cfg, values)
    given = explicit_keys(path, overrides, values)
    for key, value in _flatten(dict(base or {})).items():
        if not _covered(key, given):
            apply_values(cfg, {key: value}, where="defaults")
    folder = model_folder(cfg.weights)
    if folder is not None:
        for key, value in read_model_settings(folder).items():
            if not _covered(key, given):
                apply_values(cfg, {key: value}, where=str(folder / SETTINGS_FILE))
    validate_inference_config(cfg)
    return cfg


def explicit_keys(path: Optional[os.PathLike], overrides: Iterable[str], values: Mapping[str, Any]) -> set:
    """Dotted keys the user set, in the file, as overrides or as values."""
    keys = set(values)
    if path is not None:
        keys |= set(_flatten(_read_yaml(Path(path))))
    keys |= {parse_override(text)[0] for text in overrides}
    return keys


def _covered(key: str, given: set) -> bool:
    return any(key == g or key.startswith(g + ".") or g.startswith(key + ".") for g in given)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def settings_view(cfg: InferenceConfig, keys: Sequence[str] = MODEL_SETTING_KEYS) -> Dict[str, Any]:
    """Plain values of ``keys`` of a config (e.g. to store as a model's settings)."""
    plain = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    return {k: (plain[k].value if hasattr(plain[k], "value") else plain[k]) for k in keys if k in plain}
