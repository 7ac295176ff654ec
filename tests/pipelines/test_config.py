"""Inference config schemas: ours (strict) and the original prompt-config format (live keys honoured,
dead keys warned about, anything else refused)."""

import logging
from pathlib import Path

import pytest
import yaml

from magicanimate.errors import ConfigError
from magicanimate.pipelines.config import load_inference_config, new_inference_config
from magicanimate.pipelines.original_config import jobs_from_original, load_original_prompt_config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_configs_load(caplog):
    cfg = load_inference_config(REPO / "configs" / "inference" / "default.yaml", ["steps=10", "fusion=parity"])
    assert cfg.steps == 10 and cfg.fusion == "parity" and cfg.context_frames == 16
    with caplog.at_level(logging.WARNING):
        orig = load_original_prompt_config(REPO / "configs" / "prompts" / "animation.yaml")
    assert orig.seed == [1] and orig.steps == 25
    for dead in ("S", "I", "L", "clip", "video_type", "invert_video", "fusion_blocks"):
        assert f"key {dead!r} is ignored" in caplog.text


def test_value_checks():
    with pytest.raises(ConfigError, match="context_overlap"):
        new_inference_config(context_frames=8, context_overlap=8)
    with pytest.raises(ConfigError, match="width"):
        new_inference_config(width=60, height=64)
    with pytest.raises(ConfigError, match="give both"):
        new_inference_config(width=64)
    with pytest.raises(ConfigError, match="fit"):
        new_inference_config(fit="squash")
    with pytest.raises(ConfigError):
        new_inference_config(no_such_key=1)
    with pytest.raises(ConfigError, match="init_strength: must be in"):
        new_inference_config(init_from_reference=True, init_strength=1.5)
    with pytest.raises(ConfigError, match="init_strength: 0.5 needs init_from_reference"):
        new_inference_config(init_strength=0.5)
    assert new_inference_config(init_from_reference=True, init_strength=0.5).init_strength == 0.5


def _write(tmp_path, **values):
    path = tmp_path / "animation.yaml"
    base = {"source_image": ["a.png", "b.png"], "video_path": ["x.mp4", "y.mp4"],
            "pretrained_model_path": "sd", "motion_module": "mm.ckpt"}
    base.update(values)
    path.write_text(yaml.safe_dump(base))
    return path


def test_original_seeds_paths_and_options(tmp_path):
    jobs = jobs_from_original(load_original_prompt_config(_write(tmp_path, seed=7, size=256, max_length=20,
                                                                 offset=3, steps=10, savename="s")),
                              base_dir=tmp_path)
    assert [j.seed for j in jobs] == [7, 7]
    assert jobs[1].output == str(tmp_path / "samples" / "s" / "videos" / "b_y.mp4")
    assert jobs[0].reference == str(tmp_path / "a.png") and jobs[0].weights.stable_diffusion == str(tmp_path / "sd")
    assert (jobs[0].width, jobs[0].height, jobs[0].max_frames, jobs[0].offset, jobs[0].steps) == (256, 256, 20, 3, 10)
    assert jobs[0].fusion == "parity" and jobs[0].fit == "resize"
    jobs = jobs_from_original(load_original_prompt_config(_write(tmp_path, seed=[1, -1])), base_dir=tmp_path)
    assert [j.seed for j in jobs] == [1, -1]


def test_original_errors(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'guidance_scale'"):
        load_original_prompt_config(_write(tmp_path, guidance_scal=3))
    with pytest.raises(ConfigError, match="paired"):
        load_original_prompt_config(_write(tmp_path, video_path=["x.mp4"]))
    with pytest.raises(ConfigError, match="seed"):
        load_original_prompt_config(_write(tmp_path, seed=[1, 2, 3]))
    with pytest.raises(ConfigError, match="seed"):
        load_original_prompt_config(_write(tmp_path, seed="one"))
