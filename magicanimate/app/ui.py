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
from magicanimate.pipelines.config import FITS

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
    d = dict(steps=25, guidance_scale=7.5, seed=1, fusion="tapered", size=512, fit="pad", align_motion=True)
    d.update(defaults or {})
    names = service.registry.names

    with gr.Blocks(title=title) as demo:
        gr.Markdown(INTRO)
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
            used_motion = gr.Video(label="DensePose motion used", interactive=False, elem_id="used-motion",
                                   height=320)
        with gr.Accordion("Settings", open=True):
            with gr.Row():
                model = gr.Dropdown(names, value=service.registry.default(), label="Model", elem_id="model")
                steps = gr.Slider(1, 100, value=d["steps"], step=1, label="Denoising steps", elem_id="steps")
                guidance = gr.Slider(1.0, 15.0, value=d["guidance_scale"], step=0.5, label="Guidance scale",
                                     elem_id="guidance")
                seed = gr.Number(value=d["seed"], precision=0, label="Seed (-1 = random)", elem_id="seed")
            with gr.Row():
                fusion = gr.Radio(["tapered", "parity"], value=d["fusion"], label="Window fusion",
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
        with gr.Row():
            result = gr.Video(label="Result", interactive=False, elem_id="result", buttons=["download"],
                              loop=True, height=360)
            grid = gr.Video(label="Reference | DensePose | result", interactive=False, elem_id="grid",
                            buttons=["download"], loop=True, height=360)
        resolved = gr.Code(label="Resolved settings (as saved next to the result)", language="yaml",
                           interactive=False, elem_id="resolved", max_lines=16)
        if examples:
            gr.Examples(examples=[list(e) for e in examples], inputs=[reference, motion], label="Examples",
                        examples_per_page=8)

        def run(ref, mot, model_name, n_steps, scale, seed_value, fusion_mode, out_size, fit_mode, align_motion,
                request: gr.Request, progress=gr.Progress()):
            owner = getattr(request, "session_hash", None)
            try:
                settings = JobSettings(model=model_name, steps=int(n_steps), guidance_scale=float(scale),
                                       seed=int(seed_value if seed_value is not None else -1), fusion=fusion_mode,
                                       size=int(out_size), fit=fit_mode, align_motion=bool(align_motion))
                job = service.submit(ref, mot, settings, owner=owner)
            except MagicAnimateError as exc:
                yield status_html(visitor_message(str(exc), ref, mot), "error"), None, None, None, ""
                return
            except Exception as exc:  # a bug: keep the traceback in the server log, not on the page
                logger.exception("submitting a job failed")
                yield status_html(f"internal error ({type(exc).__name__}); see the server log", "error"), \
                    None, None, None, ""
                return
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
                yield (status_html(text, "done"), str(out.motion), str(out.video),
                       str(out.grid) if out.grid else None, out.config_text)
            elif job.state == CANCELLED:
                yield status_html("Cancelled."), None, None, None, ""
            else:
                yield status_html(visitor_message(job.error or "the job failed", ref, mot), "error"), None, None, \
                    None, ""

        def show_reference(path):
            if not path:
                return None, gr.skip()
            try:
                check_reference(path)
            except MagicAnimateError as exc:
                return None, status_html(visitor_message(str(exc), path), "error")
            return path, status_html("Reference image loaded.")

        def stop(request: gr.Request):
            owner = getattr(request, "session_hash", None)
            n = service.cancel_owner(owner) if owner else 0
            # the job's own event shows "Cancelled." (or "cancelling") as soon as it applies
            return gr.skip() if n else status_html("Nothing to cancel.")

        generate.click(run, inputs=[reference, motion, model, steps, guidance, seed, fusion, size, fit, align],
                       outputs=[status, used_motion, result, grid, resolved], concurrency_limit=None,
                       show_progress="minimal")
        reference.change(show_reference, inputs=[reference], outputs=[reference_preview, status], queue=False)
        cancel.click(stop, inputs=None, outputs=[status], concurrency_limit=None, queue=False)
    return demo
