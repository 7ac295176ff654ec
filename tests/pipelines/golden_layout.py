"""Write the golden set A models into the original release's folder layout (for tests)."""

import json
import shutil
from pathlib import Path

import yaml
from safetensors.torch import load_file, save_file


def write_original_layout(golden: Path, root: Path) -> Path:
    """root/stable-diffusion-v1-5/{unet,vae}, root/MagicAnimate/{appearance_encoder,densepose_controlnet,
    temporal_attention}, root/prompt_embeds.safetensors, root/inference.yaml; returns root."""
    sd = root / "stable-diffusion-v1-5"
    ma = root / "MagicAnimate"
    full = load_file(str(golden / "unet3d" / "weights.safetensors"))
    (sd / "unet").mkdir(parents=True)
    shutil.copy(golden / "unet3d" / "unet2d_config.json", sd / "unet" / "config.json")
    # SD1.5's UNet weights = the spatial part; the full temporal_attention file replaces them anyway
    save_file({k: v for k, v in full.items() if "motion_modules" not in k},
              str(sd / "unet" / "diffusion_pytorch_model.safetensors"))
    (sd / "vae").mkdir()
    shutil.copy(golden / "vae" / "config.json", sd / "vae" / "config.json")
    shutil.copy(golden / "vae" / "weights.safetensors", sd / "vae" / "diffusion_pytorch_model.safetensors")
    for src, dst in (("appearance_encoder", "appearance_encoder"), ("controlnet", "densepose_controlnet")):
        (ma / dst).mkdir(parents=True)
        shutil.copy(golden / src / "config.json", ma / dst / "config.json")
        shutil.copy(golden / src / "weights.safetensors", ma / dst / "diffusion_pytorch_model.safetensors")
    (ma / "temporal_attention").mkdir()
    shutil.copy(golden / "unet3d" / "weights.safetensors", ma / "temporal_attention" / "temporal_attention.safetensors")
    inputs = load_file(str(golden / "pipeline" / "inputs.safetensors"))
    save_file({"prompt_embeds": inputs["text_embedding_empty_prompt"].contiguous()},
              str(root / "prompt_embeds.safetensors"))
    kwargs = json.loads((golden / "unet3d" / "unet_additional_kwargs.json").read_text())
    sched = json.loads((golden / "pipeline" / "scheduler_config.json").read_text())
    noise = {k: sched[k] for k in ("beta_start", "beta_end", "beta_schedule")}
    (root / "inference.yaml").write_text(yaml.safe_dump({"unet_additional_kwargs": kwargs,
                                                         "noise_scheduler_kwargs": noise}))
    return root
