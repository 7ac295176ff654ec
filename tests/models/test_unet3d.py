"""3D UNet behaviour beyond the golden set: inflation, window norm, other configs, checkpointing, save/load."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from magicanimate.errors import InputError, WeightsError
from magicanimate.models import UNet3DMotionModel, WindowGroupNorm
from magicanimate.models.context import ForwardContext, current_context, forward_context
from magicanimate.models.norms import PerFrameGroupNorm

from magicanimate.testing import TINY_CONFIGS, randomize_
from magicanimate.testing import tiny_unet2d_variant as tiny_unet2d
from magicanimate.testing import variant_inputs as inputs

CONFIGS = sorted(TINY_CONFIGS)


def test_window_group_norm_closed_form():
    torch.manual_seed(0)
    b, f, c, h, w, groups = 2, 3, 6, 4, 5, 3
    x = torch.randn(b * f, c, h, w) * 3 + 1
    norm = WindowGroupNorm(groups, c, eps=1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
        with forward_context(num_frames=f):
            out = norm(x)
    v = x.reshape(b, f, groups, c // groups, h, w).double()
    mean = v.mean(dim=(1, 3, 4, 5), keepdim=True)
    var = v.var(dim=(1, 3, 4, 5), unbiased=False, keepdim=True)
    ref = ((v - mean) / torch.sqrt(var + 1e-5)).reshape(b * f, c, h, w)
    ref = ref * norm.weight.double()[:, None, None] + norm.bias.double()[:, None, None]
    assert torch.allclose(out.double(), ref, atol=1e-5)
    # outside a video forward (or per_frame=True) it is a plain GroupNorm
    assert torch.allclose(norm(x), F.group_norm(x, groups, norm.weight, norm.bias, 1e-5))


def test_per_frame_group_norm_closed_form():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 3, 4, 5)
    norm = PerFrameGroupNorm(4, 8, eps=1e-6)
    out = norm(x)
    for t in range(3):
        assert torch.allclose(out[:, :, t], F.group_norm(x[:, :, t], 4, norm.weight, norm.bias, 1e-6), atol=1e-6)


@pytest.mark.parametrize("name", CONFIGS)
def test_inflation_single_frame_equals_unet2d(name):
    unet2d = tiny_unet2d(name)
    unet3d = UNet3DMotionModel.from_unet2d(unet2d, **TINY_CONFIGS[name]["motion"]).eval()
    sample, t, context, _ = inputs(name, frames=1)
    with torch.no_grad():
        out3d = unet3d(sample, t, context).sample
        out2d = unet2d(sample[:, :, 0], t, context).sample
    assert out3d.shape == sample.shape
    assert torch.allclose(out3d[:, :, 0], out2d, atol=1e-5), float((out3d[:, :, 0] - out2d).abs().max())


@pytest.mark.parametrize("name", CONFIGS)
def test_per_frame_norm_option_and_window_norm(name):
    """With identity motion modules, per-frame norms give the 2D UNet frame by frame; window norms do not."""
    unet2d = tiny_unet2d(name)
    sample, t, context, _ = inputs(name)
    frames = sample.shape[2]
    per_frame = UNet3DMotionModel.from_unet2d(unet2d, resnet_norm="frame", **TINY_CONFIGS[name]["motion"]).eval()
    window = UNet3DMotionModel.from_unet2d(unet2d, **TINY_CONFIGS[name]["motion"]).eval()
    with torch.no_grad():
        out_frame = per_frame(sample, t, context).sample
        out_window = window(sample, t, context).sample
        ref = torch.stack([unet2d(sample[:, :, i], t, context).sample for i in range(frames)], dim=2)
    assert torch.allclose(out_frame, ref, atol=1e-5)
    assert float((out_window - ref).abs().max()) > 1e-3


@pytest.mark.parametrize("name", CONFIGS)
def test_other_configs_motion_and_frames(name):
    """Random motion modules mix frames; batch elements stay independent; too many frames is an error."""
    unet = randomize_(UNet3DMotionModel.from_unet2d(tiny_unet2d(name), **TINY_CONFIGS[name]["motion"])).eval()
    sample, t, context, _ = inputs(name)
    with torch.no_grad():
        out = unet(sample, t, context).sample
        alone = unet(sample[1:], t, context[1:]).sample
        moved = sample.clone()
        moved[:, :, 0] += 1
        out_moved = unet(moved, t, context).sample
    assert torch.allclose(out[1:], alone, atol=1e-5)
    assert float((out_moved[:, :, -1] - out[:, :, -1]).abs().max()) > 1e-4  # temporal mixing
    too_many = TINY_CONFIGS[name]["motion"]["motion_max_seq_length"] + 1
    with pytest.raises(InputError, match="position-encoding length"):
        unet(inputs(name, frames=too_many)[0], t, context)


def test_use_motion_module_false_equals_unet2d_per_frame_norm():
    name = "two_levels"
    unet2d = tiny_unet2d(name)
    unet = UNet3DMotionModel.from_unet2d(unet2d, use_motion_module=False, resnet_norm="frame").eval()
    assert not list(unet.motion_module_parameters())
    assert set(unet.state_dict()) == set(unet2d.state_dict())
    sample, t, context, _ = inputs(name, frames=3)
    with torch.no_grad():
        out = unet(sample, t, context).sample
        ref = torch.stack([unet2d(sample[:, :, i], t, context).sample for i in range(3)], dim=2)
    assert torch.allclose(out, ref, atol=1e-5)


def test_parameter_groups():
    unet = UNet3DMotionModel.from_unet2d(tiny_unet2d("two_levels"), **TINY_CONFIGS["two_levels"]["motion"])
    names = {n for n, _ in unet.named_parameters()}
    motion = {id(p) for p in unet.motion_module_parameters()}
    spatial = {id(p) for p in unet.spatial_parameters()}
    assert motion and spatial and not motion & spatial
    assert len(motion) + len(spatial) == len(names)
    assert len(unet.down_blocks[0].motion_modules) == 1 and len(unet.up_blocks[0].motion_modules) == 2


def _loss_and_grads(unet, sample, t, context, reference=None):
    unet.zero_grad()
    out = unet(sample, t, context, reference=reference).sample
    loss = (out ** 2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in unet.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_sees_the_forward_context():
    """Recomputation must use the frame count and reference of its own forward, even after another call."""
    from magicanimate.models import AppearanceEncoderModel, ReferenceInputs

    name = "two_levels"
    unet2d = tiny_unet2d(name)
    unet = randomize_(UNet3DMotionModel.from_unet2d(unet2d, **TINY_CONFIGS[name]["motion"]))
    encoder = AppearanceEncoderModel.from_unet2d(unet2d)
    sample, t, context, ref_latent = inputs(name)
    with torch.no_grad():
        banks = encoder(ref_latent, t, context)
    reference = ReferenceInputs(banks, read_mask=torch.tensor([False, True]))
    loss_plain, grads_plain = _loss_and_grads(unet, sample, t, context, reference)

    unet.enable_gradient_checkpointing()
    unet.zero_grad()
    out = unet(sample, t, context, reference=reference).sample
    loss = (out ** 2).mean()
    # an unrelated call in between (other frame count, no reference), never backpropagated
    unet(inputs(name, frames=2)[0], t, context)
    loss.backward()
    assert torch.allclose(loss, loss_plain)
    for n, g in grads_plain.items():
        got = dict(unet.named_parameters())[n].grad
        assert torch.allclose(got, g, atol=1e-6, rtol=1e-4), n
    assert current_context() == ForwardContext()


def test_save_and_load_roundtrip(tmp_path):
    name = "three_levels_linear"
    unet = randomize_(UNet3DMotionModel.from_unet2d(tiny_unet2d(name), **TINY_CONFIGS[name]["motion"])).eval()
    unet.save_pretrained(tmp_path / "unet")
    unet.save_pretrained(tmp_path / "unet")  # over an existing save: replaced whole, no leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet"]
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = UNet3DMotionModel.from_pretrained(tmp_path, subfolder="unet").eval()
    assert loaded.config.motion_max_seq_length == TINY_CONFIGS[name]["motion"]["motion_max_seq_length"]
    sample, t, context, _ = inputs(name)
    with torch.no_grad():
        assert torch.equal(unet(sample, t, context).sample, loaded(sample, t, context).sample)

    from safetensors.torch import load_file, save_file

    sd = load_file(str(tmp_path / "unet" / "diffusion_pytorch_model.safetensors"))
    victim = next(k for k in sd if "motion_modules" in k and k.endswith("to_q.weight"))
    sd.pop(victim)
    sd["extra.weight"] = torch.zeros(1)
    save_file(sd, str(tmp_path / "unet" / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(WeightsError) as err:
        UNet3DMotionModel.from_pretrained(tmp_path / "unet")
    assert victim in str(err.value) and "extra.weight" in str(err.value)
