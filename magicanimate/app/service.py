"""What the page asks of the server, without Gradio: check uploads, queue a job, run it, clean up after it.

Each job writes into its own folder under the output folder: ``animation.mp4``, ``animation_grid.mp4`` and
``animation_config.yaml`` (exactly what ``scripts/animate.py`` writes), plus ``motion_densepose.mp4`` when the
motion video was converted from a raw video. A job that fails or is cancelled removes its folder.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from magicanimate.app.jobs import Job, JobQueue, Progress, run_job
from magicanimate.app.models import ModelCache, ModelRegistry
from magicanimate.app.uploads import MotionConverter, check_motion, check_reference
from magicanimate.errors import ConfigError

logger = logging.getLogger(__name__)

OUTPUT_NAME = "animation.mp4"
EXTRACTED_NAME = "motion_densepose.mp4"


# the inference settings the page offers (a view of InferenceConfig; the rest keep the model's or the
# schema's defaults)
PAGE_SETTINGS = ("steps", "guidance_scale", "seed", "fusion", "size", "fit")


@dataclass
class JobSettings:
    """What the visitor chose on the page: a partial override of the inference settings (None = the
    model's own default, from its settings.yaml, else the schema's)."""

    model: str
    steps: Optional[int] = None
    guidance_scale: Optional[float] = None
    seed: Optional[int] = None
    fusion: Optional[str] = None
    size: Optional[int] = None
    fit: Optional[str] = None
    # raw motion videos: scale/shift the extracted motion to the person in the reference image
    align_motion: bool = True


@dataclass
class JobRequest:
    reference: str
    motion: str
    settings: JobSettings
    folder: Path
    convert_motion: bool


@dataclass
class JobOutput:
    video: Path
    grid: Optional[Path]
    config: Optional[Path]
    config_text: str
    motion: Path  # the DensePose video the job used (extracted, or the upload)
    extracted: bool
    seed: int
    num_frames: int
    fps: float
    width: int
    height: int
    seconds: float


def inference_values(settings: JobSettings, *, reference, motion, output, weights: dict, device: str,
                     dtype: str) -> dict:
    """The InferenceConfig values a job sets (dotted keys): scripts/animate.py's flags map onto the same keys."""
    values = {"reference": str(reference), "motion": str(motion), "output": str(output), "device": device,
              "dtype": dtype, "progress": False}
    values.update({f"weights.{k}": v for k, v in weights.items()})
    values.update({k: getattr(settings, k) for k in PAGE_SETTINGS if getattr(settings, k) is not None})
    return values


def job_config(values: dict):
    """The job's settings: the page's values over the model's own defaults (see pipelines.settings)."""
    from magicanimate.pipelines.settings import build_inference_config

    return build_inference_config(values=values)


def page_defaults(weights: dict) -> dict:
    """The page's initial settings for a model: its own defaults (settings.yaml), else the schema's."""
    from magicanimate.pipelines.settings import build_inference_config

    cfg = build_inference_config(values={f"weights.{k}": v for k, v in weights.items()})
    return {k: (getattr(cfg, k).value if hasattr(getattr(cfg, k), "value") else getattr(cfg, k))
            for k in PAGE_SETTINGS}


class DemoService:
    def __init__(self, registry: ModelRegistry, output_dir, *, device: str = "auto", dtype: str = "auto",
                 max_frames: int = 300, converter: Optional[MotionConverter] = None,
                 models: Optional[ModelCache] = None, max_waiting: int = 16):
        self.registry = registry
        self.output_dir = Path(output_dir)
        self.device, self.dtype = device, dtype
        self.max_frames = max_frames
        self.converter = converter or MotionConverter()
        self.models = models or ModelCache()
        self.queue = JobQueue(self._execute, max_waiting=max_waiting)

    # ------------------------------------------------------------------ page side

    def submit(self, reference, motion, settings: JobSettings, *, owner: Optional[str] = None) -> Job:
        """Check the uploads and settings now (MagicAnimateError for the visitor), then queue the job."""
        if settings.model not in self.registry.names:
            raise ConfigError(f"unknown model {settings.model!r}; available: {', '.join(self.registry.names)}")
        check_reference(reference)
        info = check_motion(motion, max_frames=self.max_frames)
        if not info.is_densepose and not self.converter.available():
            from magicanimate.app.uploads import POSE_MISSING, display_name
            from magicanimate.errors import InputError

            raise InputError(POSE_MISSING.format(name=display_name(motion)))
        # settings and weights errors (bad steps, a missing bundled demo, an incomplete folder) are reported
        # now rather than after waiting in the queue
        from magicanimate.pipelines.weights import resolve_weights

        weights = self.registry.weights(settings.model)
        cfg = job_config(inference_values(settings, reference=reference, motion=motion, output="unused.mp4",
                                          weights=weights, device=self.device, dtype=self.dtype))
        resolve_weights(cfg.weights)
        job = Job(model=settings.model, owner=owner)
        folder = self.output_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-job{job.id}"
        job.payload = JobRequest(str(reference), str(motion), settings, folder,
                                 convert_motion=not info.is_densepose)
        return self.queue.submit(job)

    def page_settings(self, model: str) -> dict:
        """The page's settings for ``model`` before the visitor changes any: the model's own defaults
        (its settings.yaml), else the schema's; the schema's for a model that cannot be read yet."""
        from magicanimate.errors import MagicAnimateError

        try:
            return page_defaults(self.registry.weights(model))
        except MagicAnimateError:
            return page_defaults({})

    def cancel(self, job: Job) -> None:
        self.queue.cancel(job)

    def cancel_owner(self, owner: str) -> int:
        jobs = self.queue.jobs(owner)
        for job in jobs:
            self.queue.cancel(job)
        return len(jobs)

    def shutdown(self) -> None:
        self.queue.shutdown()

    # ------------------------------------------------------------------ worker side

    def _execute(self, job: Job, report) -> JobOutput:
        request: JobRequest = job.payload
        folder = request.folder
        try:
            folder.mkdir(parents=True, exist_ok=False)
            return self._run(job, request, report)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # a failed or cancelled job leaves nothing behind
            raise

    def _run(self, job: Job, request: JobRequest, report) -> JobOutput:
        settings = request.settings
        weights = self.registry.weights(settings.model)  # WeightsError for a missing bundled demo
        motion, extracted = Path(request.motion), False
        if request.convert_motion:
            report(Progress(stage="extracting the DensePose motion from the video"))
            size = settings.size if settings.size is not None else page_defaults(weights)["size"]
            motion = self.converter.convert(request.motion, request.folder / EXTRACTED_NAME, size=size,
                                            align_to=request.reference if settings.align_motion else None,
                                            cancelled=job.cancel_event)
            extracted = True
        values = inference_values(settings, reference=request.reference, motion=motion,
                                  output=request.folder / OUTPUT_NAME, weights=weights, device=self.device,
                                  dtype=self.dtype)
        report(Progress(stage="checking the inputs"))
        result = run_job(job_config(values), models=self.models, on_progress=report,
                         cancelled=job.cancel_event)
        config_text = result.config.read_text() if result.config else ""
        return JobOutput(video=result.video, grid=result.grid, config=result.config, config_text=config_text,
                         motion=motion, extracted=extracted, seed=result.seed, num_frames=result.num_frames,
                         fps=result.fps, width=result.width, height=result.height, seconds=result.seconds)
