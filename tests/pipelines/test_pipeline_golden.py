"""Parity mode reproduces the original AnimationPipeline run of golden set A (README §5.5, tolerances §6).

The pipeline is built with MagicAnimatePipeline.from_original from the golden weights written in the
original release's folder layout, so the constructor and the strict loaders are exercised too.
"""

import json

import pytest
import torch
from safetensors.torch import load_file

from magicanimate.pipelines.config import WeightsConfig
from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline

from .golden_layout import write_original_layout


@pytest.fixture(scope="module")
def golden_run(golden_dir, tmp_path_factory):
    root = write_original_layout(golden_dir, tmp_path_factory.mktemp("golden") / "weights")
    pipe = MagicAnimatePipeline.from_original(WeightsConfig(
        root=str(root), prompt_embeds=str(root / "prompt_embeds.safetensors"),
        inference_config=str(root / "inference.yaml")))
    pipe.set_progress_bar_config(disable=True)
    call = json.loads((golden_dir / "pipeline" / "call.json").read_text())
    inputs = load_file(str(golden_dir / "pipeline" / "inputs.safetensors"))
    steps, windows = {}, {}

    def on_step(pipe, i, t, tensors):
        steps[i] = (int(t), tensors["latents_in"].clone(), tensors["noise_pred"].clone())
        return {}

    def on_window(i, k, frames, pred):
        if i == 0:
            windows[k] = (list(frames), pred.clone())

    out = pipe(inputs["source_image_uint8"].numpy(), inputs["control_video_uint8"].numpy(),
               num_inference_steps=call["num_inference_steps"], guidance_scale=call["guidance_scale"],
               latents=inputs["noise_block"], fusion="parity", context_frames=call["context_frames"],
               context_overlap=call["context_overlap"], callback_on_step_end=on_step,
               callback_on_step_end_tensor_inputs=["latents_in", "noise_pred"], window_callback=on_window)
    return dict(out=out, steps=steps, windows=windows, call=call, pipe=pipe)


def test_reference_latent(golden_run, golden_dir):
    pipe = golden_run["pipe"]
    inputs = load_file(str(golden_dir / "pipeline" / "inputs.safetensors"))
    ref = pipe.encode_reference(inputs["source_image_uint8"].numpy(), "cpu", torch.float32)
    expected = load_file(str(golden_dir / "pipeline" / "outputs.safetensors"))["ref_image_latents"]
    torch.testing.assert_close(ref, expected, rtol=0, atol=1e-4)


def test_windows_and_timesteps(golden_run):
    call = golden_run["call"]
    assert [golden_run["windows"][k][0] for k in sorted(golden_run["windows"])] == call["unet_windows"]
    assert [golden_run["steps"][i][0] for i in sorted(golden_run["steps"])] == call["timesteps"]


def test_window_predictions_step0(golden_run, golden_dir):
    expected = load_file(str(golden_dir / "pipeline" / "windows_step0.safetensors"))
    for k, (_, pred) in golden_run["windows"].items():
        torch.testing.assert_close(pred, expected[f"window{k}.unet_out"], rtol=0, atol=1e-4)


def test_guided_noise_every_step(golden_run, golden_dir):
    expected = load_file(str(golden_dir / "pipeline" / "steps.safetensors"))
    # step 0's input is the tiled noise block exactly; later inputs carry the earlier steps' fp error
    torch.testing.assert_close(golden_run["steps"][0][1], expected["step0.latents_in"], rtol=0, atol=0)
    for i, (_, latents_in, eps) in golden_run["steps"].items():
        torch.testing.assert_close(eps, expected[f"step{i}.noise_pred_guided"], rtol=0, atol=5e-4)
        torch.testing.assert_close(latents_in, expected[f"step{i}.latents_in"], rtol=0, atol=2e-3)


def test_final_latents_and_video(golden_run, golden_dir):
    expected = load_file(str(golden_dir / "pipeline" / "outputs.safetensors"))
    out = golden_run["out"]
    torch.testing.assert_close(out.latents, expected["final_latents"], rtol=0, atol=2e-3)
    assert out.videos.shape == expected["video"].shape  # padded to 32 frames, trimmed back to 28
    torch.testing.assert_close(out.videos, expected["video"], rtol=0, atol=1e-4)

