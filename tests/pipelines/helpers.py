"""Pipeline-test helpers beyond magicanimate.testing: the original release's folder layout."""


def save_original_layout(pipe, root):
    """Write a (tiny) pipeline in the original release's layout; returns the prompt-embedding file."""
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    from magicanimate.models.checkpoints import unet3d_state_dict_to_original
    from magicanimate.testing import tiny_unet2d

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
