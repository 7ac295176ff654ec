"""The automatic VAE decode chunk: decoding must not raise the peak above the denoising loop's."""

from types import SimpleNamespace

import pytest
import torch

from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline
from magicanimate.testing import densepose_video, reference_image, tiny_pipeline


def _sd15_like(unet_dtype=torch.float32, vae_dtype=torch.float32):
    """Just the shapes decode_chunk_for reads, as SD1.5 has them (UNet 320 wide at 1/8 resolution,
    VAE decoder 128 wide at full resolution)."""
    return SimpleNamespace(vae_scale_factor=8,
                           unet=SimpleNamespace(config=SimpleNamespace(block_out_channels=[320, 640, 1280, 1280]),
                                                dtype=unet_dtype),
                           vae=SimpleNamespace(config=SimpleNamespace(block_out_channels=[128, 256, 512, 512]),
                                               dtype=vae_dtype))


@pytest.mark.parametrize("size", [(256, 256), (512, 512), (768, 512)])
def test_sd15_decodes_frame_by_frame_on_16_frame_windows(size):
    # the UNet's largest activations (2 halves x 16 frames x 320 x h x w) are about 1.7x one decoded frame's
    # (128 channels at 8x the resolution, 64x the pixels): at most one frame fits under the loop's peak
    assert MagicAnimatePipeline.decode_chunk_for(_sd15_like(), size, 16) == 1


def test_chunk_grows_with_the_window_and_shrinks_with_the_decoder_dtype():
    pipe = _sd15_like()
    assert MagicAnimatePipeline.decode_chunk_for(pipe, (512, 512), 24) == 2
    # a fp32 decoder next to a bf16 UNet: decoded frames weigh twice as much, relative to the loop
    mixed = _sd15_like(unet_dtype=torch.bfloat16)
    assert MagicAnimatePipeline.decode_chunk_for(mixed, (512, 512), 24) == 1
    assert MagicAnimatePipeline.decode_chunk_for(pipe, (64, 64), 16) == 1


def _largest_output(module, record: dict, key: str):
    def hook(_m, _a, out):
        out = out[0] if isinstance(out, (tuple, list)) else getattr(out, "sample", out)
        if torch.is_tensor(out):
            record[key] = max(record.get(key, 0), out.numel() * out.element_size())
    return [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]


def test_automatic_chunk_keeps_decoding_under_the_loops_largest_activation():
    """Measured on the tiny model: the largest tensor the decoder makes with the automatic chunk is no larger
    than the largest the UNet makes in the loop; decoding the whole video at once would be."""
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    ref, control = reference_image(), densepose_video(16)
    window = 8
    chunk = pipe.decode_chunk_for(ref.shape[:2], window)
    assert 1 <= chunk < 16

    def run(decode_chunk):
        record, chunks = {}, []
        hooks = _largest_output(pipe.unet, record, "unet") + _largest_output(pipe.vae.decoder, record, "vae")
        try:
            pipe(ref, control, num_inference_steps=1, context_frames=window, context_overlap=2,
                 generator=torch.Generator().manual_seed(0), frame_callback=chunks.append, decode_chunk=decode_chunk)
        finally:
            for h in hooks:
                h.remove()
        return record, [len(c) for c in chunks]

    auto, sizes = run(None)
    assert sizes == [chunk] * (16 // chunk) + ([16 % chunk] if 16 % chunk else [])
    assert auto["vae"] <= auto["unet"]
    whole, sizes = run(16)
    assert sizes == [16] and whole["vae"] > whole["unet"]
