"""The job function behind the page, its progress and cancellation, and a queue per model.

:func:`run_job` is :func:`magicanimate.pipelines.animate.animate` (the core of ``scripts/animate.py``) with
a pipeline that may come from a cache; its progress (per denoising window and step) and cancellation
(checked between windows) are animate()'s own. It therefore writes exactly the files ``scripts/animate.py``
writes for the same settings and seed (result, grid, resolved config), each atomically: a cancelled or failed
job leaves none.

:class:`JobQueue` runs one job at a time per model, first come first served, on one worker thread per model;
waiting jobs know how many jobs are ahead of them and can be cancelled.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from magicanimate.errors import Cancelled
from magicanimate.pipelines.progress import AnimationProgress

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
CANCELLING = "cancelling: stopping after the current window"


@dataclass(frozen=True)
class Progress(AnimationProgress):
    """A job's progress: the animation's own, plus ``ahead``, the jobs before it while it waits."""

    stage: str = QUEUED
    ahead: int = 0

    def text(self) -> str:
        if self.stage == QUEUED:
            if self.ahead <= 0:
                return "Queued: starting next"
            return f"Queued: {self.ahead} job{'s' if self.ahead != 1 else ''} ahead of you"
        return super().text()


def run_job(config, *, pipeline=None, models=None, prepared=None,
            on_progress: Optional[Callable[[Progress], None]] = None,
            cancelled: Optional[threading.Event] = None):
    """Animate as ``config`` (an InferenceConfig, or its dict) says; returns the AnimationResult.

    ``pipeline``: a loaded pipeline; otherwise one from ``models`` (a :class:`ModelCache`), otherwise loaded.
    ``on_progress`` receives a :class:`Progress` after the model is ready and after every window;
    ``cancelled`` is checked before the model loads and after every window (raises :class:`Cancelled`).
    """
    from magicanimate.pipelines.animate import animate, as_config, prepare
    from magicanimate.pipelines.runtime import load_pipeline, resolve_dtype
    from magicanimate.utils.devices import resolve_device

    report = on_progress or (lambda p: None)
    is_cancelled = cancelled.is_set if cancelled is not None else (lambda: False)
    cfg = as_config(config)
    inputs = prepared if prepared is not None else prepare(cfg)
    if is_cancelled():
        raise Cancelled("cancelled; nothing written")
    if pipeline is None:
        device = resolve_device(cfg.device)
        dtype = resolve_dtype(cfg.dtype, device)
        report(Progress(stage="loading model"))
        pipeline = (models.get(inputs.weights, device, dtype) if models is not None
                    else load_pipeline(inputs.weights, device, dtype))
    return animate(cfg, pipeline=pipeline, prepared=inputs, cancelled=is_cancelled,
                   on_progress=lambda p: report(Progress(**dataclasses.asdict(p))))


_ids = itertools.count(1)


@dataclass
class Job:
    """One Generate press. ``payload`` is whatever the executor needs; ``output`` what it returned."""

    model: str
    payload: Any = None
    owner: Optional[str] = None
    id: int = field(default_factory=lambda: next(_ids))
    state: str = QUEUED
    progress: Progress = field(default_factory=Progress)
    output: Any = None
    error: Optional[str] = None
    created: float = field(default_factory=time.time)
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    done_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self.done_event.wait(timeout)


class JobQueue:
    """One worker thread per model; each runs its model's jobs one at a time in submission order.

    ``execute(job, report)`` does the work (``report(Progress)`` updates the job) and returns the job's output;
    it raises :class:`Cancelled` when the job's ``cancel_event`` is set, MagicAnimateError for the visitor's
    mistakes (the message is shown), anything else for bugs (logged with the traceback; a short note shown).
    """

    def __init__(self, execute: Callable, *, max_waiting: int = 16):
        self._execute = execute
        self.max_waiting = max_waiting
        self._lock = threading.Condition()
        self._waiting: Dict[str, deque] = {}
        self._running: Dict[str, Job] = {}
        self._workers: Dict[str, threading.Thread] = {}
        self._closed = False

    def submit(self, job: Job) -> Job:
        from magicanimate.errors import InputError

        with self._lock:
            if self._closed:
                raise RuntimeError("the job queue is shut down")
            waiting = self._waiting.setdefault(job.model, deque())
            if len(waiting) >= self.max_waiting:
                raise InputError(f"the queue for model {job.model!r} is full ({self.max_waiting} jobs waiting); "
                                 "try again in a few minutes")
            waiting.append(job)
            self._update_positions(job.model)
            if job.model not in self._workers:
                worker = threading.Thread(target=self._work, args=(job.model,), daemon=True,
                                          name=f"jobs[{job.model}]")
                self._workers[job.model] = worker
                worker.start()
            self._lock.notify_all()
        return job

    def ahead(self, job: Job) -> int:
        """Jobs that will run before ``job`` (the running one included); 0 once it runs."""
        with self._lock:
            waiting = self._waiting.get(job.model, ())
            if job not in waiting:
                return 0
            return list(waiting).index(job) + (1 if job.model in self._running else 0)

    def cancel(self, job: Job) -> None:
        """A waiting job leaves the queue at once; a running one stops at its next window."""
        job.cancel_event.set()
        with self._lock:
            waiting = self._waiting.get(job.model)
            if waiting is not None and job in waiting:
                waiting.remove(job)
                self._finish(job, CANCELLED)
                self._update_positions(job.model)
            elif not job.finished:
                job.progress = Progress(stage=CANCELLING)

    def jobs(self, owner: Optional[str] = None) -> list:
        with self._lock:
            out = [j for q in self._waiting.values() for j in q] + list(self._running.values())
        return [j for j in out if owner is None or j.owner == owner]

    def shutdown(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            for job in self.jobs():
                job.cancel_event.set()
            self._lock.notify_all()
        for worker in list(self._workers.values()):
            worker.join(timeout)

    # ---------------------------------------------------------------- worker side (holds no lock while working)

    def _update_positions(self, model: str) -> None:
        running = 1 if model in self._running else 0
        for i, job in enumerate(self._waiting.get(model, ())):
            job.progress = Progress(stage=QUEUED, ahead=i + running)

    def _finish(self, job: Job, state: str, error: Optional[str] = None) -> None:
        job.state = state
        job.error = error
        job.done_event.set()

    def _work(self, model: str) -> None:
        while True:
            with self._lock:
                while not self._waiting[model] and not self._closed:
                    self._lock.wait()
                if self._closed:
                    for job in self._waiting[model]:
                        self._finish(job, CANCELLED)
                    self._waiting[model].clear()
                    return
                job = self._waiting[model].popleft()
                self._running[model] = job
                job.state = RUNNING
                job.progress = Progress(stage="starting")
                self._update_positions(model)
            try:
                def report(progress: Progress, job=job) -> None:
                    if not job.cancel_event.is_set():  # keep showing "cancelling" until it stops
                        job.progress = progress

                output = self._execute(job, report)
                job.output = output
                state, error = DONE, None
            except Cancelled:
                state, error = CANCELLED, None
            except Exception as exc:  # noqa: BLE001 - a worker must survive any job
                from magicanimate.errors import MagicAnimateError

                if isinstance(exc, MagicAnimateError):
                    state, error = FAILED, str(exc)
                else:
                    logger.exception("job %s failed", job.id)
                    state, error = FAILED, (f"internal error ({type(exc).__name__}: {exc}); the server log "
                                            "has the details")
            with self._lock:
                self._running.pop(model, None)
                self._finish(job, state, error)
                self._update_positions(model)
                self._lock.notify_all()
