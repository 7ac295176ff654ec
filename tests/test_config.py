"""Typed config machinery, tested on small schemas (each area defines and tests its own)."""

import argparse
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import pytest
import yaml
from omegaconf import MISSING, OmegaConf

from magicanimate.config import (
    add_config_arguments,
    apply_overrides,
    closest_key,
    load_config,
    parse_override,
    save_config,
    to_object,
)
from magicanimate.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class Part:
    name: str = "x"
    weight: float = 1.0


@dataclass
class Schema:
    output_dir: str = MISSING
    steps: int = 10
    size: List[int] = field(default_factory=lambda: [64, 64])
    optim: Optim = field(default_factory=Optim)
    parts: List[Part] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)
    ema: Optional[Optim] = None
    log_dir: str = "${output_dir}/logs"


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_file_and_overrides_in_order(tmp_path):
    path = write(tmp_path, "output_dir: out\nsteps: 20\noptim:\n  lr: 3.0e-4\nparts:\n  - name: a\n")
    cfg = load_config(Schema, path, ["steps=30", "optim.lr=1e-5", "size=[128,96]", "parts.0.weight=2"])
    assert cfg.steps == 30 and cfg.optim.lr == pytest.approx(1e-5) and isinstance(cfg.optim.lr, float)
    assert list(cfg.size) == [128, 96]
    assert cfg.optim.betas == [0.9, 0.999]  # untouched default inside a section the file sets
    assert cfg.parts[0].name == "a" and cfg.parts[0].weight == 2.0
    assert cfg.log_dir == "out/logs"
    obj = to_object(cfg)
    assert isinstance(obj, Schema) and isinstance(obj.optim, Optim) and isinstance(obj.parts[0], Part)


def test_no_file_uses_schema_defaults():
    cfg = load_config(Schema, None, ["output_dir=/tmp/x"])
    assert cfg.steps == 10 and cfg.optim.lr == pytest.approx(1e-4)


def test_unknown_key_names_key_file_and_suggestion(tmp_path):
    path = write(tmp_path, "output_dir: o\nstpes: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(Schema, path)
    msg = str(e.value)
    assert str(path) in msg and "'stpes'" in msg and "did you mean 'steps'" in msg


def test_unknown_nested_key(tmp_path):
    path = write(tmp_path, "output_dir: o\noptim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'optim\.lrr'; did you mean 'optim\.lr'") as e:
        load_config(Schema, path)
    assert str(path) in str(e.value)


def test_key_in_wrong_section_points_to_right_one(tmp_path):
    path = write(tmp_path, "output_dir: o\nlr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'lr'; did you mean 'optim\.lr'"):
        load_config(Schema, path)


def test_unknown_key_in_list_of_sections(tmp_path):
    path = write(tmp_path, "output_dir: o\nparts:\n  - name: a\n    wieght: 2\n")
    with pytest.raises(ConfigError, match=r"'parts\[0\]\.wieght'; did you mean 'parts\[0\]\.weight'"):
        load_config(Schema, path)


def test_unknown_key_in_unset_optional_section(tmp_path):
    path = write(tmp_path, "output_dir: o\nema:\n  lrx: 1\n")
    with pytest.raises(ConfigError, match=r"'ema\.lrx'; did you mean 'ema\.lr'"):
        load_config(Schema, path)
    cfg = load_config(Schema, write(tmp_path, "output_dir: o\nema:\n  lr: 0.5\n", "ok.yaml"))
    assert cfg.ema.lr == 0.5 and cfg.ema.betas == [0.9, 0.999]


def test_far_off_key_lists_valid_keys(tmp_path):
    path = write(tmp_path, "output_dir: o\nzzqqxx: 1\n")
    with pytest.raises(ConfigError, match="valid keys in the top level: output_dir, steps") as e:
        load_config(Schema, path)
    assert "did you mean" not in str(e.value)


def test_free_form_dict_accepts_new_keys(tmp_path):
    cfg = load_config(Schema, write(tmp_path, "output_dir: o\nextra:\n  anything: 1\n"), ["extra.more.deep=2"])
    assert cfg.extra.anything == 1 and cfg.extra.more.deep == 2


@pytest.mark.parametrize("text,pattern", [
    ("output_dir: o\nsteps: abc\n", r"'steps'.*abc"),
    ("output_dir: o\nsize: [64, big]\n", r"'size\[1\]'"),
    ("output_dir: o\noptim: 5\n", r"'optim' is a section"),
    ("output_dir: o\nsize: 64\n", r"'size' must be a list"),
    ("output_dir: o\nsteps: null\n", r"'steps'"),
])
def test_type_errors_name_key_and_file(tmp_path, text, pattern):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern) as e:
        load_config(Schema, path)
    assert str(path) in str(e.value)


def test_missing_required_value(tmp_path):
    with pytest.raises(ConfigError, match="required key.*output_dir"):
        load_config(Schema, write(tmp_path, "steps: 3\n"))
    cfg = load_config(Schema, write(tmp_path, "steps: 3\n"), allow_missing=True)
    assert OmegaConf.is_missing(cfg, "output_dir")


def test_bad_interpolation(tmp_path):
    with pytest.raises(ConfigError, match="log_dir"):
        load_config(Schema, write(tmp_path, "output_dir: o\nlog_dir: ${nowhere}\n"))


@pytest.mark.parametrize("text,pattern", [
    ("output_dir: [1\n", "invalid YAML"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_malformed_files(tmp_path, text, pattern):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern) as e:
        load_config(Schema, path)
    assert str(path) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found") as e:
        load_config(Schema, tmp_path / "nope.yaml")
    assert "nope.yaml" in str(e.value)


def test_empty_file_means_defaults(tmp_path):
    assert load_config(Schema, write(tmp_path, ""), ["output_dir=o"]).steps == 10


# ------------------------------------------------------------------------------------ overrides

@pytest.mark.parametrize("text,key,value", [
    ("steps=5", "steps", 5),
    ("optim.lr=1e-4", "optim.lr", 1e-4),
    ("size=[1, 2,3]", "size", [1, 2, 3]),
    ("name=a=b", "name", "a=b"),
    ("name=", "name", ""),
    ("ema=null", "ema", None),
    ("parts[0].weight=2", "parts[0].weight", 2),
])
def test_parse_override(text, key, value):
    assert parse_override(text) == (key, value)


def test_override_errors():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Schema, None, ["steps"])
    with pytest.raises(ConfigError, match=r"override 'stepz=1': unknown key 'stepz'; did you mean 'steps'"):
        load_config(Schema, None, ["output_dir=o", "stepz=1"])
    with pytest.raises(ConfigError, match=r"override 'optim\.lrr=1'.*did you mean 'optim\.lr'"):
        load_config(Schema, None, ["output_dir=o", "optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"override 'steps=x'.*'steps'"):
        load_config(Schema, None, ["output_dir=o", "steps=x"])
    with pytest.raises(ConfigError, match=r"size\[0\]"):
        load_config(Schema, None, ["output_dir=o", "size=[a,b]"])
    with pytest.raises(ConfigError, match="out of range"):
        load_config(Schema, None, ["output_dir=o", "parts.3.weight=1"])
    with pytest.raises(ConfigError, match="single value"):
        load_config(Schema, None, ["output_dir=o", "steps.x=1"])
    with pytest.raises(ConfigError, match=r"'ema\.lrr'"):
        load_config(Schema, None, ["output_dir=o", "ema={lrr: 2}"])


def test_override_list_element_and_optional_section():
    cfg = load_config(Schema, None, ["output_dir=o", "size.1=32", "optim.betas[0]=0.5", "ema.lr=0.25"])
    assert list(cfg.size) == [64, 32] and cfg.optim.betas[0] == 0.5
    assert cfg.ema.lr == 0.25 and cfg.ema.betas == [0.9, 0.999]  # unset section built from its defaults
    cfg = load_config(Schema, None, ["output_dir=o", "ema={lr: 2}", "parts=[{name: q}]"])
    assert cfg.ema.lr == 2.0 and cfg.parts[0].name == "q" and cfg.parts[0].weight == 1.0


def test_apply_overrides_in_place_and_struct_mode():
    cfg = load_config(Schema, None, ["output_dir=o"])
    apply_overrides(cfg, ["steps=7"])
    assert cfg.steps == 7
    with pytest.raises(Exception):
        cfg.not_a_key = 1  # struct mode: typos in code fail too


def test_closest_key():
    assert closest_key("learning_rat", ["learning_rate", "steps"]) == "learning_rate"
    assert closest_key("qqq", ["learning_rate", "steps"]) is None


# ------------------------------------------------------------------------------------ saving

def test_save_config_resolved_and_reloadable(tmp_path):
    cfg = load_config(Schema, None, ["output_dir=run1", "steps=3"])
    path = save_config(cfg, tmp_path / "out")
    assert path == tmp_path / "out" / "config.yaml"
    data = yaml.safe_load(path.read_text())
    assert data["log_dir"] == "run1/logs"  # interpolation resolved
    assert data["steps"] == 3
    again = load_config(Schema, path)
    assert OmegaConf.to_container(again, resolve=True) == OmegaConf.to_container(cfg, resolve=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["config.yaml"]  # no temp files left


def test_save_config_file_name_and_plain_objects(tmp_path):
    assert save_config(Optim(lr=0.5), tmp_path / "o.yaml") == tmp_path / "o.yaml"
    assert yaml.safe_load((tmp_path / "o.yaml").read_text()) == {"lr": 0.5, "betas": [0.9, 0.999]}
    assert save_config({"a": 1}, tmp_path, name="x.yaml") == tmp_path / "x.yaml"


def test_add_config_arguments():
    parser = add_config_arguments(argparse.ArgumentParser(), default_config="configs/x.yaml")
    args = parser.parse_args(["--config", "c.yaml", "steps=3", "optim.lr=1"])
    assert args.config == "c.yaml" and args.overrides == ["steps=3", "optim.lr=1"]
    assert parser.parse_args([]).config == "configs/x.yaml"


def test_schema_must_be_dataclass():
    with pytest.raises(TypeError):
        load_config(dict, None)


def test_schema_fields_shadowed_by_dictconfig_methods_are_refused():
    @dataclass
    class Inner:
        keys: List[str] = field(default_factory=list)  # cfg.inner.keys would be DictConfig.keys

    @dataclass
    class Outer:
        inner: Optional[Inner] = None

    with pytest.raises(TypeError, match="'keys'"):
        load_config(Outer, None)
