"""Small inputs for pipeline tests: a moving DensePose-coloured figure and a reference image."""

import numpy as np

from magicanimate.data.densepose import render_parts


def densepose_video(frames: int, height: int = 64, width: int = 64) -> np.ndarray:
    out = []
    for i in range(frames):
        parts = np.zeros((height, width), dtype=np.int64)
        x = 4 + (3 * i) % max(1, width - 24)
        parts[height // 4: 3 * height // 4, x: x + 12] = 2
        parts[height // 8: height // 4, x + 3: x + 9] = 23
        parts[height // 3: height // 2, x + 12: x + 18] = 16
        out.append(render_parts(parts))
    return np.stack(out)


def reference_image(height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), np.full_like(x, 128)], -1)
    img[height // 4: 3 * height // 4, width // 3: 2 * width // 3] = rng.integers(0, 255, 3)
    return img.astype(np.uint8)


def save_original_layout(pipe, root):
    """Write a (tiny) pipeline in the original release's layout; returns the prompt-embedding file."""
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    from magicanimate.models import unet3d_state_dict_to_original
    from magicanimate.pipelines.tiny import tiny_unet2d

    root = Path(root)
    sd, ma = root / "stable-diffusion-v1-5", root / "MagicAnimate"
    full = unet3d_state_dict_to_original(pipe.unet.state_dict())
    (sd / "unet").mkdir(parents=True)
    tiny_unet2d().save_config(sd / "unet")
    save_file({k: v.contiguous() for k, v in full.items() if "motion_modules" not in k},
              str(sd / "unet" / "diffusion_pytorch_model.safetensors"))
    pipe.vae.save_pretrained(sd / "vae")
    pipe.appearance_encoder.save_pretrained(ma / "appearance_encoder")
    pipe.controlnet.save_pretrained(ma / "densepose_controlnet")
    (ma / "temporal_attention").mkdir(parents=True)
    torch.save(full, ma / "temporal_attention" / "temporal_attention.ckpt")
    embeds = root / "prompt_embeds.safetensors"
    save_file({"prompt_embeds": pipe.empty_prompt_embeds().contiguous()}, str(embeds))
    return embeds
