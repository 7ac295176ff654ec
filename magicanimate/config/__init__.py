"""Typed configuration: OmegaConf structured configs (dataclasses) loaded strictly from YAML.

* :mod:`.loading`: ``load_config(Schema, path, overrides)`` (strict: unknown keys, wrong types and unset
  required values are one :class:`~magicanimate.errors.ConfigError` naming the key), ``save_config``;
* :mod:`.fields`: :func:`setting` declares a field's default, its value rules and its help once;
  :func:`validate_fields` checks the rules (and refuses NaN/inf in every float) for any schema;
* :mod:`.cli`: command-line flags generated from a schema, with typed values applied directly.
"""

from magicanimate.config.fields import setting, validate_fields
from magicanimate.config.loading import (
    DEFAULT_CONFIG_NAME,
    add_config_arguments,
    apply_overrides,
    closest_key,
    load_config,
    parse_override,
    save_config,
    to_object,
)

__all__ = [
    "DEFAULT_CONFIG_NAME", "add_config_arguments", "apply_overrides", "closest_key", "load_config",
    "parse_override", "save_config", "setting", "to_object", "validate_fields",
]
