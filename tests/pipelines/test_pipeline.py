"""MagicAnimatePipeline on a tiny random model: determinism, fusion arithmetic, streaming, save/load."""

import numpy as np
import pytest
import torch

from magicanimate.errors import ConfigError, InputError, WeightsError
from magicanimate.pipelines.pipeline_magicanimate import MagicAnimatePipeline
from magicanimate.testing import tiny_pipeline
from magicanimate.pipelines.windows import make_schedule

from magicanimate.testing import densepose_video, reference_image, tiny_clip

KW = dict(num_inference_steps=1, context_frames=8, context_overlap=3, guidance_scale=7.5)


def on_step(observe):
    """callback_on_step_end arguments that pass (i, t, latents the step started from, guided noise) to
    ``observe``."""
    def callback(pipe, i, t, tensors):
        observe(i, t, tensors["latents_in"], tensors["noise_pred"])
        return {}

    return dict(callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents_in", "noise_pred"])


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline(seed=0)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def inputs():
    return reference_image(), densepose_video(13)


@pytest.fixture(scope="module")
def seeded_run(pipe, inputs):
    """One tapered run observed step by step, with frames streamed in chunks of 5."""
    ref, control = inputs
    chunks, windows, steps = [], {}, {}
    controlnet_frames, encoder_batches = [], []
    h1 = pipe.controlnet.register_forward_pre_hook(lambda m, a, kw: controlnet_frames.append(
        (a[0] if a else kw["sample"]).shape[0]), with_kwargs=True)
    h2 = pipe.appearance_encoder.register_forward_pre_hook(lambda m, a, kw: encoder_batches.append(
        (a[0] if a else kw["ref_latent"]).shape[0]), with_kwargs=True)
    try:
        out = pipe(ref, control, generator=torch.Generator().manual_seed(7), frame_callback=chunks.append,
                   decode_chunk=5, window_callback=lambda i, k, f, p: windows.__setitem__(k, (list(f), p.clone())),
                   **on_step(lambda i, t, x, e: steps.__setitem__(i, (x.clone(), e.clone()))), **KW)
    finally:
        h1.remove()
        h2.remove()
    return dict(out=out, chunks=chunks, windows=windows, steps=steps, controlnet_frames=controlnet_frames,
                encoder_batches=encoder_batches)


def test_same_seed_same_video_other_seed_differs(pipe, inputs, seeded_run):
    ref, control = inputs
    # the same chunks as the streamed run: a conv's rounding may depend on its batch size
    again = pipe(ref, control, generator=torch.Generator().manual_seed(7), decode_chunk=5, **KW)
    torch.testing.assert_close(again.latents, seeded_run["out"].latents, rtol=0, atol=0)
    streamed = np.concatenate(seeded_run["chunks"])
    assert [len(c) for c in seeded_run["chunks"]] == [5, 5, 3]
    np.testing.assert_array_equal(streamed, (again.videos[0].permute(1, 2, 3, 0) * 255).round().byte().numpy())
    other = pipe(ref, control, generator=torch.Generator().manual_seed(8), output_type="latent", **KW)
    assert (other.latents - again.latents).abs().max() > 1e-2
    assert seeded_run["out"].videos is None  # frames went to the callback only


def test_fusion_is_weighted_mean_then_cfg(seeded_run):
    """eps = CFG of sum_k w_k pred_k / sum_k w_k, recomputed here from the observed window predictions."""
    sched = make_schedule(13, "tapered", 8, 3)
    assert [seeded_run["windows"][k][0] for k in range(len(sched))] == [list(w) for w in sched.windows]
    fused = torch.zeros(2, 4, 13, 8, 8, dtype=torch.float64)
    for k, weight in enumerate(sched.normalized_weights()):
        frames, pred = seeded_run["windows"][k]
        fused[:, :, frames] += pred.double() * weight.view(1, 1, -1, 1, 1)
    expected = fused[:1] + 7.5 * (fused[1:] - fused[:1])
    torch.testing.assert_close(seeded_run["steps"][0][1].double(), expected, rtol=0, atol=1e-5)


def test_controlnet_per_window_and_encoder_once(seeded_run):
    # 13 frames in windows of 8 (overlap 3): the ControlNet never sees more than one window's frames, and the
    # second window computes only the 5 frames the first did not (the shared 3 are reused)
    assert seeded_run["controlnet_frames"] == [8, 5]
    assert seeded_run["encoder_batches"] == [1]  # once per step, conditional entry only


@pytest.mark.parametrize("fusion", ["tapered", "parity"])
@pytest.mark.parametrize("saving", ["controlnet_overlap", "shared_trunk"])
def test_each_exact_saving_leaves_the_result_unchanged(pipe, fusion, saving):
    """Reusing shared frames' ControlNet residuals and sharing the guidance halves' down path compute the same
    numbers as doing the work again: only the batch sizes of some convolutions change, which moves the last bits
    of float arithmetic (this random tiny model amplifies them to ~5e-5 after two steps; the golden tests hold
    the original's tolerances)."""
    import dataclasses

    from magicanimate.pipelines.pipeline_magicanimate import SpeedOptions

    ref, control = reference_image(), densepose_video(21)
    kw = dict(KW, num_inference_steps=2, generator=None, fusion=fusion, output_type="latent")
    noise = torch.randn((1, 4, 24 if fusion == "parity" else 21, 8, 8), generator=torch.Generator().manual_seed(5))
    try:
        pipe.speed = dataclasses.replace(SpeedOptions(), **{saving: False})
        without = pipe(ref, control, latents=noise, **kw).latents
        pipe.speed = SpeedOptions()
        with_saving = pipe(ref, control, latents=noise, **kw).latents
    finally:
        pipe.speed = SpeedOptions()
    torch.testing.assert_close(with_saving, without, rtol=0, atol=2e-4)


def test_parity_mode_pads_tiles_and_wraps(pipe, inputs):
    ref, control = inputs
    windows = {}
    out = pipe(ref, control, generator=torch.Generator().manual_seed(7), fusion="parity",
               window_callback=lambda i, k, f, p: windows.__setitem__(k, list(f)), **KW)
    assert out.videos.shape[2] == 13 and out.latents.shape[2] == 16  # padded to 2 x 8 frames, trimmed back
    assert windows[len(windows) - 1][-1] < windows[len(windows) - 1][0]  # the last window wraps around
    noise = torch.randn((1, 4, 8, 8, 8), generator=torch.Generator().manual_seed(7))
    tiled = pipe(ref, control, latents=noise, fusion="parity", output_type="latent", **KW)
    torch.testing.assert_close(tiled.latents, out.latents, rtol=0, atol=0)


def _one_window_by_hand(pipe, ref, control, noise, guidance_scale):
    """One denoising step of a video that fits one window, computed from the networks directly (no window
    schedule, no fusion): the pipeline must reduce to this."""
    import copy

    from magicanimate.models import ReferenceInputs, controlnet_residuals

    with torch.no_grad():
        text = pipe.empty_prompt_embeds()
        x = torch.from_numpy(ref.copy()).float().div(127.5).sub(1).permute(2, 0, 1)[None]
        ref_latent = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
        scheduler = copy.deepcopy(pipe.scheduler)
        scheduler.set_timesteps(1)
        t = scheduler.timesteps[0]
        latents = noise * scheduler.init_noise_sigma
        banks = pipe.appearance_encoder(ref_latent, t, encoder_hidden_states=text)
        cond = torch.from_numpy(np.asarray(control)).float().div(255).permute(3, 0, 1, 2)[None]
        down, mid = controlnet_residuals(pipe.controlnet, latents, t, text, cond)
        pred = pipe.unet(torch.cat([latents, latents]), t, encoder_hidden_states=torch.cat([text, text]),
                         down_block_additional_residuals=[torch.cat([d, d]) for d in down],
                         mid_block_additional_residual=torch.cat([mid, mid]),
                         reference=ReferenceInputs(banks, read_mask=torch.tensor([False, True]))).sample
        eps = pred[:1] + guidance_scale * (pred[1:] - pred[:1])
        return scheduler.step(eps, t, latents).prev_sample


@pytest.mark.parametrize("frames", [1, 5])
def test_short_videos(pipe, frames):
    """A video shorter than the window is one window: tapered is it as given, parity edge-pads it to the
    window (the original) and trims the output back; both equal the networks' step computed by hand."""
    ref, control = reference_image(), densepose_video(frames)
    for fusion in ("tapered", "parity"):
        length = frames if fusion == "tapered" else KW["context_frames"]
        noise = torch.randn((1, 4, length, 8, 8), generator=torch.Generator().manual_seed(3))
        out = pipe(ref, control, latents=noise, fusion=fusion, **KW)
        assert out.videos.shape == (1, 3, frames, 64, 64)
        padded = control[np.minimum(np.arange(length), frames - 1)]
        expected = _one_window_by_hand(pipe, ref, padded, noise, KW["guidance_scale"])
        torch.testing.assert_close(out.latents, expected, rtol=0, atol=1e-5)
        decoded = pipe.decode_latents(expected, num_frames=frames)
        torch.testing.assert_close(out.videos, decoded, rtol=0, atol=1e-5)


def test_sequential_guidance_matches_batched(pipe, inputs, seeded_run):
    ref, control = inputs
    seq = pipe(ref, control, generator=torch.Generator().manual_seed(7), sequential_guidance=True,
               output_type="latent", **KW)
    torch.testing.assert_close(seq.latents, seeded_run["out"].latents, rtol=0, atol=1e-4)


def test_save_and_load_roundtrip(pipe, inputs, seeded_run, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    loaded = MagicAnimatePipeline.from_pretrained(tmp_path / "p")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.text_encoder is None
    ref, control = inputs
    out = loaded(ref, control, generator=torch.Generator().manual_seed(7), output_type="latent", **KW)
    torch.testing.assert_close(out.latents, seeded_run["out"].latents, rtol=0, atol=0)

    from safetensors.torch import load_file, save_file

    weights = tmp_path / "p" / "controlnet" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    state["extra.weight"] = state.pop("controlnet_mid_block.bias")
    save_file(state, str(weights))
    with pytest.raises(WeightsError, match=r"controlnet_mid_block\.bias[\s\S]*extra\.weight"):
        MagicAnimatePipeline.from_pretrained(tmp_path / "p")


def test_bad_call_arguments(pipe):
    with pytest.raises(InputError, match="reference image is 32x64"):
        pipe(reference_image(64, 32), densepose_video(3), **KW)
    with pytest.raises(InputError, match="multiple of 8"):
        pipe(reference_image(60, 60), densepose_video(3, 60, 60), **KW)
    with pytest.raises(ConfigError, match="position-encoding length"):
        pipe(reference_image(), densepose_video(30), context_frames=25, num_inference_steps=1)
    with pytest.raises(InputError, match="does not divide"):
        pipe(reference_image(), densepose_video(10), latents=torch.zeros(1, 4, 3, 8, 8), **KW)


def test_dtype_by_argument(inputs, seeded_run):
    """bf16 runs on the CPU (no device or dtype is hard-coded) and stays near the fp32 result."""
    ref, control = inputs
    low = tiny_pipeline(seed=0).to(dtype=torch.bfloat16)
    low.set_progress_bar_config(disable=True)
    out = low(ref, control, generator=torch.Generator().manual_seed(7), output_type="latent", **KW)
    assert low.unet.dtype == torch.bfloat16
    diff = (out.latents - seeded_run["out"].latents).abs().max()
    assert 0 < diff < 0.1 * seeded_run["out"].latents.abs().max()


def test_other_scheduler_swaps_in(inputs, seeded_run):
    from magicanimate.pipelines.scheduling import make_scheduler

    ref, control = inputs
    kw = dict(KW, num_inference_steps=3)
    ddim = tiny_pipeline(seed=0)
    ddim.set_progress_bar_config(disable=True)
    euler = tiny_pipeline(seed=0)
    euler.set_progress_bar_config(disable=True)
    euler.scheduler = make_scheduler("EulerDiscreteScheduler")
    first = {}
    out = euler(ref, control, generator=torch.Generator().manual_seed(7), output_type="latent",
                **on_step(lambda i, t, x, e: first.setdefault(i, x.clone())), **kw)
    assert torch.isfinite(out.latents).all()
    base = ddim(ref, control, generator=torch.Generator().manual_seed(7), output_type="latent", **kw)
    # deterministic DDIM is Euler's method on the same ODE (Karras et al. 2022): same timesteps, same result
    torch.testing.assert_close(out.latents, base.latents, rtol=0, atol=1e-3)
    dpm = tiny_pipeline(seed=0)
    dpm.set_progress_bar_config(disable=True)
    dpm.scheduler = make_scheduler("DPMSolverMultistepScheduler")
    second = dpm(ref, control, generator=torch.Generator().manual_seed(7), output_type="latent", **kw)
    assert torch.isfinite(second.latents).all()
    assert (second.latents - base.latents).abs().max() > 1e-3  # a second-order sampler, a different path
    # Euler's start is the noise scaled by the largest sigma of *this* schedule (set before scaling)
    euler.scheduler.set_timesteps(3)
    noise = torch.randn(first[0].shape, generator=torch.Generator().manual_seed(7))
    sigma_max = float(euler.scheduler.sigmas.max())
    torch.testing.assert_close(first[0], noise * (sigma_max**2 + 1) ** 0.5, rtol=1e-5, atol=1e-5)


def test_empty_prompt_encoded_once_and_saved(pipe, inputs, tmp_path):
    encoder, tokenizer = tiny_clip(tmp_path / "clip")
    parts = {k: v for k, v in pipe.components.items() if k not in ("text_encoder", "tokenizer")}
    with_clip = MagicAnimatePipeline(**parts, text_encoder=encoder, tokenizer=tokenizer)
    with_clip.set_progress_bar_config(disable=True)
    calls = []
    encoder.register_forward_hook(lambda *a: calls.append(1))
    ref, control = inputs
    first = with_clip(ref, control, generator=torch.Generator().manual_seed(7), output_type="latent", **KW)
    with_clip(ref, control, generator=torch.Generator().manual_seed(7), output_type="latent", **KW)
    assert len(calls) == 1  # computed once, then cached
    ids = tokenizer([""], padding="max_length", max_length=77, return_tensors="pt").input_ids
    torch.testing.assert_close(with_clip.empty_prompt_embeds(), encoder(ids)[0], rtol=0, atol=0)

    with_clip.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "prompt_embeds.safetensors").is_file()
    no_clip = MagicAnimatePipeline.from_pretrained(tmp_path / "saved")  # CLIP not needed any more
    assert no_clip.text_encoder is None
    no_clip.set_progress_bar_config(disable=True)
    again = no_clip(ref, control, generator=torch.Generator().manual_seed(7), output_type="latent", **KW)
    torch.testing.assert_close(again.latents, first.latents, rtol=0, atol=0)
    full = MagicAnimatePipeline.from_pretrained(tmp_path / "saved", load_text_encoder=True)
    assert type(full.text_encoder).__name__ == "CLIPTextModel" and full.tokenizer is not None


def test_init_from_reference_starts_from_the_noised_reference_latent(pipe, inputs):
    ref, control = inputs
    first = {}

    def run(noise, init):
        pipe(ref, control, latents=noise, init_from_reference=init, output_type="latent",
             **on_step(lambda i, t, x, e: first.setdefault(init, (int(t), x.clone())) if i == 0 else None),
             **dict(KW, num_inference_steps=3))

    shape = pipe(ref, control[:1], output_type="latent", **KW).latents.shape
    noise = torch.randn((1, shape[1], len(control), *shape[3:]), generator=torch.Generator().manual_seed(3))
    run(noise, False)
    run(noise, True)
    # the VAE posterior mean of the reference, scaled: computed here without the pipeline's helper
    x = torch.from_numpy(ref).float().permute(2, 0, 1)[None] / 127.5 - 1.0
    with torch.no_grad():
        z_ref = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
    t0, start = first[True]
    assert first[False][0] == t0 == int(pipe.scheduler.timesteps[0])
    ab = pipe.scheduler.alphas_cumprod[t0].double()
    expected = ab.sqrt() * z_ref.double()[:, :, None] + (1 - ab).sqrt() * noise.double()
    torch.testing.assert_close(start.double(), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(first[False][1], noise * pipe.scheduler.init_noise_sigma, rtol=0, atol=0)


@pytest.mark.parametrize("scheduler_cls", ["DDIMScheduler", "EulerDiscreteScheduler"])
def test_init_strength_runs_the_tail_of_the_schedule_from_the_noised_reference(pipe, inputs, scheduler_cls):
    import copy

    import diffusers

    ref, control = inputs
    p = copy.copy(pipe)
    p.register_modules(scheduler=getattr(diffusers, scheduler_cls).from_config(pipe.scheduler.config))
    steps, strength = 5, 0.59  # int(0.59 * 5) = 2 steps (diffusers img2img rounds down): the last two of 5
    seen = []
    shape = p(ref, control[:1], output_type="latent", **KW).latents.shape
    noise = torch.randn((1, shape[1], len(control), *shape[3:]), generator=torch.Generator().manual_seed(4))
    out = p(ref, control, latents=noise, init_from_reference=True, init_strength=strength, output_type="latent",
            **on_step(lambda i, t, x, e: seen.append((int(t), x.clone()))),
            **dict(KW, num_inference_steps=steps))
    full = getattr(diffusers, scheduler_cls).from_config(pipe.scheduler.config)
    full.set_timesteps(steps)
    assert [t for t, _ in seen] == [int(t) for t in full.timesteps[3:]]
    x = torch.from_numpy(ref).float().permute(2, 0, 1)[None] / 127.5 - 1.0
    with torch.no_grad():
        z_ref = p.vae.encode(x).latent_dist.mean * p.vae.config.scaling_factor
    z = z_ref.double()[:, :, None]
    if scheduler_cls == "DDIMScheduler":  # x_t = sqrt(ab) z + sqrt(1 - ab) eps
        ab = full.alphas_cumprod[seen[0][0]].double()
        expected = ab.sqrt() * z + (1 - ab).sqrt() * noise.double()
    else:  # Euler's parameterisation: x = z + sigma eps at the starting step's sigma
        expected = z + full.sigmas[3].double() * noise.double()
    torch.testing.assert_close(seen[0][1].double(), expected, rtol=0, atol=1e-4)
    assert torch.isfinite(out.latents).all()


def test_init_strength_is_checked(pipe, inputs):
    ref, control = inputs
    with pytest.raises(ConfigError, match="init_strength: must be in"):
        pipe(ref, control, init_from_reference=True, init_strength=0.0, output_type="latent", **KW)
    with pytest.raises(ConfigError, match="needs init_from_reference"):
        pipe(ref, control, init_strength=0.5, output_type="latent", **KW)
