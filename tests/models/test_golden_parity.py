"""Numerical parity with the original MagicAnimate (golden tensors, set A) at the golden README's tolerances.

All golden weights go through the loaders users call for the official checkpoints.
"""

from __future__ import annotations

import json

import pytest
import torch

from magicanimate.models import ReferenceInputs, controlnet_residuals, fold_frames, unfold_frames
from magicanimate.models.checkpoints import motion_module_state_dict_from_original
from magicanimate.models.motion_module import build_motion_module

TOL = 1e-4  # README §6: unet3d, motion module, banks, ControlNet
TOL_READ = 1e-3  # README §6: denoiser_read.out_read


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def test_unet3d_forward_and_taps(golden_unet3d, golden_io):
    io = golden_io("unet3d/forward.safetensors")
    taps_ref = golden_io("unet3d/forward_taps.safetensors")
    frames = io["sample"].shape[2]
    taps: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            taps[name] = out if name == "time_embedding" else unfold_frames(out, frames)
        return fn

    handles = [golden_unet3d.get_submodule(name).register_forward_hook(hook(name)) for name in taps_ref]
    try:
        with torch.no_grad():
            out = golden_unet3d(io["sample"], io["timestep"], io["encoder_hidden_states"]).sample
    finally:
        for h in handles:
            h.remove()
    assert _max_diff(out, io["out"]) < TOL
    assert set(taps) == set(taps_ref)
    for name, ref in taps_ref.items():
        assert _max_diff(taps[name], ref) < TOL, name


def test_unet3d_forward_with_controlnet_residuals(golden_unet3d, golden_io):
    io = golden_io("unet3d/forward.safetensors")
    down = [io[f"down_block_additional_residuals.{i:02d}"] for i in range(12)]
    with torch.no_grad():
        out = golden_unet3d(io["sample"], io["timestep"], io["encoder_hidden_states"],
                            down_block_additional_residuals=down,
                            mid_block_additional_residual=io["mid_block_additional_residual"]).sample
    assert _max_diff(out, io["out_with_residuals"]) < TOL
    # the residuals matter: without them the output is far away
    assert _max_diff(io["out"], io["out_with_residuals"]) > 100 * TOL


def test_motion_module(golden_dir, golden_io):
    meta = json.loads((golden_dir / "motion_module" / "meta.json").read_text())
    kw = meta["kwargs"]
    module = build_motion_module(meta["channels"], num_attention_heads=kw["num_attention_heads"],
                                 num_transformer_blocks=kw["num_transformer_block"],
                                 max_seq_length=kw["temporal_position_encoding_max_len"])
    weights = golden_io("motion_module/weights.safetensors")
    module.load_state_dict(motion_module_state_dict_from_original(weights, source="golden"), strict=True)
    io = golden_io("motion_module/io.safetensors")
    frames = io["input"].shape[2]
    with torch.no_grad():
        out = unfold_frames(module(fold_frames(io["input"]), num_frames=frames), frames)
    assert _max_diff(out, io["output"]) < TOL


def test_motion_module_weights_identical_inside_unet(golden_dir, golden_unet3d, golden_io):
    meta = json.loads((golden_dir / "motion_module" / "meta.json").read_text())
    prefix = meta["prefix_in_unet3d"]
    inside = {k[len(prefix):]: v for k, v in golden_unet3d.state_dict().items() if k.startswith(prefix)}
    alone = motion_module_state_dict_from_original(golden_io("motion_module/weights.safetensors"), source="golden")
    assert set(inside) == set(alone) == set(build_motion_module(meta["channels"]).state_dict())
    for k, v in alone.items():
        assert torch.equal(inside[k], v), k


def test_appearance_encoder_banks(golden_appearance_encoder, golden_io, golden_dir):
    io = golden_io("appearance_encoder/io.safetensors")
    names = json.loads((golden_dir / "appearance_encoder" / "bank_names.json").read_text())
    assert golden_appearance_encoder.reference_block_names == [n["appearance_encoder_block"] for n in names]
    with torch.no_grad():
        banks = golden_appearance_encoder(io["ref_latent"].repeat(2, 1, 1, 1), io["timestep"],
                                          io["encoder_hidden_states"])
    assert len(banks) == len(names)
    for i, bank in enumerate(banks):
        assert _max_diff(bank, io[f"bank.{i:02d}"]) < TOL, i


def test_appearance_encoder_is_trimmed(golden_appearance_encoder, golden_dir):
    """Our encoder holds exactly the original's tensors: a UNet2DConditionModel of the same config minus the
    dead tail the golden record lists, which is also the key set of the original's weight file."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    absent = json.loads((golden_dir / "appearance_encoder" / "absent_keys.json").read_text())
    config = json.loads((golden_dir / "appearance_encoder" / "config.json").read_text())
    full = set(UNet2DConditionModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})
               .state_dict())
    dead = set(absent["absent_vs_UNet2DConditionModel_same_config"])
    assert len(dead) == absent["n_absent"] and dead <= full
    keys = set(golden_appearance_encoder.state_dict())
    assert keys == full - dead
    assert keys == set(load_file(str(golden_dir / "appearance_encoder" / "weights.safetensors")))


def test_denoiser_reads_banks_with_cfg_halves(golden_unet3d, golden_io, golden_dir):
    names = json.loads((golden_dir / "appearance_encoder" / "bank_names.json").read_text())
    assert golden_unet3d.reference_block_names == [n["denoiser_block"] for n in names]
    banks = golden_io("appearance_encoder/io.safetensors")
    io = golden_io("appearance_encoder/denoiser_read.safetensors")
    ref = ReferenceInputs(banks=[banks[f"bank.{i:02d}"] for i in range(len(names))],
                          read_mask=torch.tensor([False, True]))
    with torch.no_grad():
        out = golden_unet3d(io["sample"], io["timestep"], io["encoder_hidden_states"], reference=ref).sample
        plain = golden_unet3d(io["sample"], io["timestep"], io["encoder_hidden_states"]).sample
    assert _max_diff(out, io["out_read"]) < TOL_READ
    assert _max_diff(plain, io["out_plain_no_bank"]) < TOL
    # the unconditional half reads nothing: it is the plain output exactly
    assert torch.equal(out[0], plain[0])
    # and the cond half really carries the reference
    assert _max_diff(out[1], plain[1]) > 100 * TOL_READ


def test_controlnet_residuals(golden_controlnet, golden_io):
    io = golden_io("controlnet/io.safetensors")
    frames = io["sample"].shape[0]
    # frames are the ControlNet's batch in the golden set; our helper takes one 5-D video
    sample = unfold_frames(io["sample"], frames)
    cond = unfold_frames(io["controlnet_cond"], frames)
    context = io["encoder_hidden_states"][:1]
    assert torch.equal(io["encoder_hidden_states"], context.expand_as(io["encoder_hidden_states"]))
    with torch.no_grad():
        down, mid = controlnet_residuals(golden_controlnet, sample, io["timestep"], context, cond)
    assert len(down) == 12
    for i, r in enumerate(down):
        assert _max_diff(fold_frames(r), io[f"down_block_res_samples.{i:02d}"]) < TOL, i
    assert _max_diff(fold_frames(mid), io["mid_block_res_sample"]) < TOL


@pytest.mark.parametrize("bad", [255.0, -1.0])
def test_controlnet_rejects_unscaled_control(golden_controlnet, golden_io, bad):
    from magicanimate.errors import InputError

    io = golden_io("controlnet/io.safetensors")
    sample = unfold_frames(io["sample"][:2], 2)
    cond = unfold_frames(io["controlnet_cond"][:2], 2) * 0 + bad
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        controlnet_residuals(golden_controlnet, sample, io["timestep"], io["encoder_hidden_states"][:1], cond)
