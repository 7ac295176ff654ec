"""The Gradio page over :class:`magicanimate.app.service.DemoService` (the only module that imports Gradio).

Messages for the visitor (bad uploads, missing weights, a job's failure) appear in the status box; no
traceback reaches the page. Progress is shown both in the status box (queue position, step and window) and
as Gradio's progress bar over the result.
"""

from __future__ import annotations

import html
import logging
from typing import Optional, Sequence

import gradio as gr

from magicanimate.app.jobs import CANCELLED, DONE, QUEUED
from magicanimate.app.service import DemoService, JobSettings
from magicanimate.app.uploads import check_reference, visitor_message
from magicanimate.errors import MagicAnimateError
from magicanimate.pipelines.config import FITS, Fusion

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
INTRO = """# MagicAnimate
Animate a photo of a person with a motion video. The motion video is a DensePose rendering (MagicAnimate's
colours), or an ordinary video of a person, which is converted to DensePose first. Jobs run one at a time per
model; later ones wait in a queue."""


def status_html(text: str, kind: str = "info") -> str:
    colours = {"info": "#1f2937", "error": "#b91c1c", "done": "#166534"}
    body = html.escape(text).replace("\n", "<br>")
    return (f'<div class="ma-status ma-{kind}" style="color:{colours[kind]};white-space:normal">'
            f'{"<b>Error:</b> " if kind == "error" else ""}{body}</div>')


def build_ui(service: DemoService, *, examples: Sequence[Sequence[str]] = (), defaults: Optional[dict] = None,
             title: str = "MagicAnimate") -> gr.Blocks:
    """The page. ``defaults``: settings that win over every model's own (e.g. from the command line)."""
    fixed = dict(defaults or {})

    def settings_for(name: str) -> dict:
        return {**service.page_settings(name), "align_motion": True, **fixed}

    with gr.Blocks(title=title) as demo:
        gr.Markdown(INTRO)
        w = _input_widgets()
        w.update(_settings_widgets(service.registry.names, service.registry.default(),
                                   settings_for(service.registry.default())))
        w.update(_output_widgets())
        if examples:
            gr.Examples(examples=[list(e) for e in examples], inputs=[w["reference"], w["motion"]],
                        label="Examples", examples_per_page=8)
        _wire(service, w, settings_for)
    return demo


def _input_widgets() -> dict:
    with gr.Row():
        with gr.Column():
            # a plain file upload: Gradio's image component would open the file itself and put its own
            # exception text on the page for a broken image; our reader gives the readable message
            reference = gr.File(label="Reference image", file_types=["image"], type="filepath",
                                elem_id="reference", height=90)
            reference_preview = gr.Image(label="Reference", interactive=False, elem_id="reference-preview",
                                         height=230, buttons=[])
        motion = gr.Video(label="Motion video (DensePose, or a video of a person)", sources=["upload"],
                          elem_id="motion", height=320)
        used_motion = gr.Video(label="DensePose motion used", interactive=False, elem_id="used-motion", height=320)
    return dict(reference=reference, reference_preview=reference_preview, motion=motion, used_motion=used_motion)


def _settings_widgets(names, default_model: str, d: dict) -> dict:
    with gr.Accordion("Settings", open=True):
        with gr.Row():
            model = gr.Dropdown(names, value=default_model, label="Model", elem_id="model")
            steps = gr.Slider(1, 100, value=d["steps"], step=1, label="Denoising steps", elem_id="steps")
            guidance = gr.Slider(1.0, 15.0, value=d["guidance_scale"], step=0.5, label="Guidance scale",
                                 elem_id="guidance")
            seed = gr.Number(value=d["seed"], precision=0, label="Seed (-1 = random)", elem_id="seed")
        with gr.Row():
            fusion = gr.Radio([m.value for m in Fusion], value=d["fusion"], label="Window fusion",
                              info="tapered: cross-faded windows, no wrap-around; parity: the original's")
            size = gr.Slider(64, 1024, value=d["size"], step=64, label="Output size (longer side, px)",
                             elem_id="size")
            fit = gr.Radio(list(FITS), value=d["fit"], label="Fit the reference",
                           info="pad (edge pixels), crop, or resize (squash)")
            align = gr.Checkbox(value=d["align_motion"], label="Align a converted video to the reference")
    with gr.Row():
        generate = gr.Button("Generate", variant="primary", elem_id="generate")
        cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
    status = gr.HTML(status_html("Upload a reference image and a motion video, or pick an example below."),
                     elem_id="status")
    return dict(model=model, steps=steps, guidance=guidance, seed=seed, fusion=fusion, size=size, fit=fit,
                align=align, generate=generate, cancel=cancel, status=status)


def _output_widgets() -> dict:
    with gr.Row():
        result = gr.Video(label="Result", interactive=False, elem_id="result", buttons=["download"],
                          loop=True, height=360)
        grid = gr.Video(label="Reference | DensePose | result", interactive=False, elem_id="grid",
                        buttons=["download"], loop=True, height=360)
    resolved = gr.Code(label="Resolved settings (as saved next to the result)", language="yaml",
                       interactive=False, elem_id="resolved", max_lines=16)
    return dict(result=result, grid=grid, resolved=resolved)


def _wire(service: DemoService, w: dict, settings_for) -> None:
    """Events: generate (a queued job, polled for progress), cancel, reference preview, model defaults."""
    run = _job_runner(service)
    settings = [w[k] for k in ("model", "steps", "guidance", "seed", "fusion", "size", "fit", "align")]
    w["generate"].click(run, inputs=[w["reference"], w["motion"], *settings],
                        outputs=[w["status"], w["used_motion"], w["result"], w["grid"], w["resolved"]],
                        concurrency_limit=None, show_progress="minimal")
    w["reference"].change(_show_reference, inputs=[w["reference"]], outputs=[w["reference_preview"], w["status"]],
                          queue=False)

    def stop(request: gr.Request):
        owner = getattr(request, "session_hash", None)
        n = service.cancel_owner(owner) if owner else 0
        # the job's own event shows "Cancelled." (or "cancelling") as soon as it applies
        return gr.skip() if n else status_html("Nothing to cancel.")

    def model_defaults(name):
        d = settings_for(name)
        return d["steps"], d["guidance_scale"], d["seed"], d["fusion"], d["size"], d["fit"]

    w["cancel"].click(stop, inputs=None, outputs=[w["status"]], concurrency_limit=None, queue=False)
    w["model"].change(model_defaults, inputs=[w["model"]], outputs=settings[1:7], queue=False)


def _show_reference(path):
    if not path:
        return None, gr.skip()
    try:
        check_reference(path)
    except MagicAnimateError as exc:
        return None, status_html(visitor_message(str(exc), path), "error")
    return path, status_html("Reference image loaded.")


def _job_runner(service: DemoService):
    def run(ref, mot, model_name, n_steps, scale, seed_value, fusion_mode, out_size, fit_mode, align_motion,
            request: gr.Request, progress=gr.Progress()):
        try:
            settings = JobSettings(model=model_name, steps=int(n_steps), guidance_scale=float(scale),
                                   seed=int(seed_value if seed_value is not None else -1), fusion=fusion_mode,
                                   size=int(out_size), fit=fit_mode, align_motion=bool(align_motion))
            job = service.submit(ref, mot, settings, owner=getattr(request, "session_hash", None))
        except MagicAnimateError as exc:
            yield status_html(visitor_message(str(exc), ref, mot), "error"), None, None, None, ""
            return
        except Exception as exc:  # a bug: keep the traceback in the server log, not on the page
            logger.exception("submitting a job failed")
            yield status_html(f"internal error ({type(exc).__name__}); see the server log", "error"), \
                None, None, None, ""
            return
        yield from _follow(service, job, ref, mot, progress)

    return run


def _follow(service: DemoService, job, ref, mot, progress):
    """Poll a queued job for the page: status text and progress bar, then the results or the error."""
    last = None
    try:
        while not job.wait(POLL_SECONDS):
            text = job.progress.text()
            if text != last:
                last = text
                progress(job.progress.fraction() if job.state != QUEUED else None, desc=text)
                yield status_html(text), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    finally:
        if not job.finished:  # the page went away: do not keep computing for nobody
            service.cancel(job)
    if job.state == DONE:
        out = job.output
        text = (f"Done: {out.num_frames} frames, {out.width}x{out.height}, {out.fps:g} fps, seed {out.seed}, "
                f"{out.seconds:.1f} s.")
        yield (status_html(text, "done"), str(out.motion), str(out.video), str(out.grid) if out.grid else None,
               out.config_text)
    elif job.state == CANCELLED:
        yield status_html("Cancelled."), None, None, None, ""
    else:
        yield status_html(visitor_message(job.error or "the job failed", ref, mot), "error"), None, None, None, ""
