"""Reference attention: semantics against closed forms, CFG halves, strength, no state left behind."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

from magicanimate.errors import InputError
from magicanimate.models import (
    AppearanceEncoderModel,
    ReferenceInputs,
    ReferenceReaderProcessor,
    ReferenceWriterProcessor,
    UNet3DMotionModel,
)
from magicanimate.models.context import ForwardContext, current_context, forward_context

from magicanimate.testing import TINY_CONFIGS, randomize_
from magicanimate.testing import tiny_unet2d_variant as tiny_unet2d
from magicanimate.testing import variant_inputs as inputs

NAME = "two_levels"


@pytest.fixture(scope="module")
def models():
    unet2d = tiny_unet2d(NAME)
    unet = randomize_(UNet3DMotionModel.from_unet2d(unet2d, **TINY_CONFIGS[NAME]["motion"])).eval()
    encoder = AppearanceEncoderModel.from_unet2d(unet2d).eval()
    sample, t, context, ref_latent = inputs(NAME)
    with torch.no_grad():
        banks = encoder(ref_latent, t, context)
    return unet, encoder, (sample, t, context), banks


def _attention(dim=8, heads=2, seed=0):
    torch.manual_seed(seed)
    attn = Attention(dim, heads=heads, dim_head=dim // heads)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.5)
    return attn.eval()


@pytest.mark.parametrize("strength", [1.0, 0.3, 2.5])
def test_reader_matches_closed_form(strength):
    """softmax over [own keys, reference keys] with reference weights scaled by the strength."""
    attn = _attention()
    frames, batch, length, ref_len = 3, 2, 5, 4
    h = torch.randn(batch * frames, length, 8)
    bank = torch.randn(batch, ref_len, 8)
    attn.set_processor(ReferenceReaderProcessor("blk", 0, AttnProcessor2_0()))
    with torch.no_grad(), forward_context(num_frames=frames, reference=ReferenceInputs([bank], strength=strength)):
        out = attn(h)
        bank_rep = bank.repeat_interleave(frames, dim=0)
        # independent: classic processor, explicit softmax
        d = 8 // 2
        q = attn.to_q(h).view(batch * frames, length, 2, d).transpose(1, 2).double()
        kv_in = torch.cat([h, bank_rep], dim=1)
        k = attn.to_k(kv_in).view(batch * frames, -1, 2, d).transpose(1, 2).double()
        v = attn.to_v(kv_in).view(batch * frames, -1, 2, d).transpose(1, 2).double()
        w = torch.exp(q @ k.transpose(-1, -2) / math.sqrt(d))
        w[..., length:] *= strength
        ref = (w / w.sum(-1, keepdim=True)) @ v
        ref = attn.to_out[0](ref.transpose(1, 2).reshape(batch * frames, length, 8).float())
        if strength == 1.0:  # the original's formula: attn1(x, encoder_hidden_states=cat([x, bank]))
            attn_plain = AttnProcessor()
            original = attn_plain(attn, h, encoder_hidden_states=kv_in)
            assert torch.allclose(out, original, atol=1e-5)
    assert torch.allclose(out, ref, atol=1e-5)


def test_uncond_half_and_strength_zero_are_exactly_plain(models):
    unet, _, (sample, t, context), banks = models
    with torch.no_grad():
        plain = unet(sample, t, context).sample
        cfg = unet(sample, t, context, reference=ReferenceInputs(banks, read_mask=torch.tensor([False, True]))).sample
        zero = unet(sample, t, context, reference=ReferenceInputs(banks, strength=0.0)).sample
        none_read = unet(sample, t, context,
                         reference=ReferenceInputs(banks, read_mask=torch.tensor([False, False]))).sample
        both = unet(sample, t, context, reference=ReferenceInputs(banks)).sample
        strong = unet(sample, t, context, reference=ReferenceInputs(banks, strength=3.0)).sample
    assert torch.equal(cfg[0], plain[0])
    assert torch.equal(zero, plain)
    assert torch.equal(none_read, plain)
    assert float((cfg[1] - plain[1]).abs().max()) > 1e-3
    assert torch.allclose(both[1], cfg[1], atol=1e-5)  # rows are independent of the other samples' mask
    assert float((both[0] - plain[0]).abs().max()) > 1e-3
    assert float((strong[1] - cfg[1]).abs().max()) > 1e-3


def test_bank_batch_of_one_broadcasts(models):
    unet, _, (sample, t, context), banks = models
    single = [b[:1] for b in banks]
    with torch.no_grad():
        a = unet(sample, t, context, reference=ReferenceInputs(single)).sample
        b = unet(sample, t, context, reference=ReferenceInputs([s.expand(2, -1, -1) for s in single])).sample
    assert torch.allclose(a, b, atol=1e-6)


def test_no_state_left_behind(models):
    unet, encoder, (sample, t, context), banks = models
    with torch.no_grad():
        before = unet(sample, t, context).sample
        unet(sample, t, context, reference=ReferenceInputs(banks))
        after = unet(sample, t, context).sample
        banks_again = encoder(*inputs(NAME)[3:4], t, context)
    assert torch.equal(before, after)
    assert all(torch.equal(a, b) for a, b in zip(banks, banks_again))
    assert current_context() == ForwardContext()
    for model in (unet, encoder):
        for proc in model.attn_processors.values():
            assert not any(isinstance(v, torch.Tensor) for v in vars(proc).values())
    with pytest.raises(InputError, match=rf"reference has {len(banks) - 1} banks; this UNet reads {len(banks)}"):
        unet(sample, t, context, reference=ReferenceInputs(banks[:-1]))
    assert current_context() == ForwardContext()


def test_processors_attached_by_name_and_survive_set_attn_processor(models):
    unet, encoder, (sample, t, context), banks = models
    readers = {k for k, p in unet.attn_processors.items() if isinstance(p, ReferenceReaderProcessor)}
    assert readers == {f"{n}.attn1.processor" for n in unet.reference_block_names}
    assert not any("motion_modules" in k or k.startswith("down_blocks") for k in readers)
    writers = {k for k, p in encoder.attn_processors.items() if isinstance(p, ReferenceWriterProcessor)}
    # the encoder's last block is trimmed (no attn1): its bank is taken from norm1 directly
    assert len(writers) == len(encoder.reference_block_names) - 1
    ref = ReferenceInputs(banks, read_mask=torch.tensor([False, True]))
    with torch.no_grad():
        sdpa = unet(sample, t, context, reference=ref).sample
        unet.set_attn_processor(AttnProcessor())
        try:
            assert all(isinstance(unet.attn_processors[k], ReferenceReaderProcessor) for k in readers)
            classic = unet(sample, t, context, reference=ref).sample
        finally:
            unet.set_attn_processor(AttnProcessor2_0())
    assert torch.allclose(sdpa, classic, atol=1e-5)


def test_reference_gradients_reach_the_encoder_with_and_without_checkpointing():
    unet2d = tiny_unet2d(NAME)
    unet = randomize_(UNet3DMotionModel.from_unet2d(unet2d, **TINY_CONFIGS[NAME]["motion"]))
    encoder = AppearanceEncoderModel.from_unet2d(unet2d)
    sample, t, context, ref_latent = inputs(NAME)

    def encoder_grads():
        encoder.zero_grad()
        unet.zero_grad()
        banks = encoder(ref_latent, t, context)
        out = unet(sample, t, context, reference=ReferenceInputs(banks, read_mask=torch.tensor([True, False])))
        out.sample.square().mean().backward()
        return {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}

    plain = encoder_grads()
    encoder.enable_gradient_checkpointing()
    unet.enable_gradient_checkpointing()
    checkpointed = encoder_grads()
    # the last (trimmed) block's bank is its norm1 output: gradients reach the encoder's last up block
    assert any(n.startswith(f"up_blocks.{len(encoder.up_blocks) - 1}") for n in plain)
    assert set(plain) == set(checkpointed)
    for n, g in plain.items():
        assert torch.allclose(checkpointed[n], g, atol=1e-6, rtol=1e-4), n


def test_reference_strength_validation():
    with pytest.raises(ValueError):
        ReferenceInputs([], strength=-1.0)
    with pytest.raises(ValueError):
        ReferenceInputs([], strength=float("nan"))


def test_xformers_only_on_cuda(models):
    from magicanimate.models import maybe_enable_xformers

    unet, encoder, _, _ = models
    before = {k: type(p) for k, p in unet.attn_processors.items()}
    assert maybe_enable_xformers(unet, encoder) is False  # CPU: SDPA stays
    assert {k: type(p) for k, p in unet.attn_processors.items()} == before
