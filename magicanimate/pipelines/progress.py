"""Progress of one animation, reported window by window, and cancellation checked between windows.

:func:`magicanimate.pipelines.animate.animate` takes ``on_progress`` (receives :class:`AnimationProgress`)
and ``cancelled`` (a callable; when it returns True the run raises :class:`~magicanimate.errors.Cancelled`
at the next window boundary, before anything is written). The counts come from the pipeline itself
(``num_timesteps``, ``num_windows``), so no caller re-derives the window schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

from magicanimate.errors import Cancelled

DENOISING = "denoising"
DECODING = "decoding and writing the videos"


@dataclass(frozen=True)
class AnimationProgress:
    """``step`` denoising steps done of ``steps``; ``window`` windows of the current step done of ``windows``."""

    stage: str = "starting"
    step: int = 0
    steps: int = 0
    window: int = 0
    windows: int = 0

    def fraction(self) -> float:
        if not self.steps:
            return 0.0
        per_step = 1.0 / self.steps
        inner = self.window / self.windows if self.windows else 0.0
        return min(1.0, self.step * per_step + inner * per_step)

    def text(self) -> str:
        if self.stage == DENOISING and self.steps:
            return (f"Denoising: step {min(self.step + 1, self.steps)}/{self.steps}, "
                    f"{self.window}/{self.windows} windows done")
        return self.stage[:1].upper() + self.stage[1:]


class ProgressTracker:
    """The pipeline callbacks of one run: reports every window and step, checks for cancellation."""

    def __init__(self, pipeline, report: Optional[Callable[[AnimationProgress], None]],
                 cancelled: Optional[Callable[[], bool]], make: Callable[..., AnimationProgress] = AnimationProgress):
        self.pipeline = pipeline
        self.report = report or (lambda p: None)
        self.cancelled = cancelled or (lambda: False)
        self.make = make
        self.state: Optional[AnimationProgress] = None

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled("cancelled; nothing written")

    def _start(self) -> None:
        self.state = self.make(stage=DENOISING, steps=self.pipeline.num_timesteps, windows=self.pipeline.num_windows)
        self.report(self.state)

    def on_window(self, i: int, k: int, frames, prediction) -> None:
        if self.state is None:
            self._start()
        self.state = replace(self.state, step=i, window=self.state.window + 1 if self.state.step == i else 1)
        self.report(self.state)
        self.check()

    def on_step_end(self, pipeline, i: int, t, tensors: dict) -> dict:
        if self.state is None:  # a process of a multi-process run may own no window
            self._start()
        self.check()
        if i + 1 == self.state.steps:
            self.state = replace(self.state, stage=DECODING, step=i + 1, window=0)
        else:
            self.state = replace(self.state, step=i + 1, window=0)
        self.report(self.state)
        return {}
