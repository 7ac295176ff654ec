"""Dance-like motion for the synthetic dancer: smooth joint-angle trajectories, turns, travel and zoom.

A :class:`Motion` is a continuous function of time (seconds) built from a seed: every joint angle is a
rest angle plus a few sinusoids locked to one tempo (a beat with harmonics, so limbs move together like a
dance, not like noise), the dancer bounces on the beat, drifts sideways, changes scale (walks towards and
away from the camera), and turns round now and then (a smooth half-turn swaps front and back).
Being a function of time, it is smooth at any frame rate and any clip can start anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from magicanimate.demo.synthetic.body import Pose


@dataclass(frozen=True)
class _Wave:
    """rest + sum_i amp_i * sin(2 pi harm_i tempo t + phase_i)."""

    rest: float
    amps: tuple[float, ...]
    harms: tuple[float, ...]
    phases: tuple[float, ...]

    def __call__(self, t: float, tempo: float) -> float:
        return self.rest + sum(
            a * math.sin(2 * math.pi * h * tempo * t + p) for a, h, p in zip(self.amps, self.harms, self.phases)
        )


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


# (rest range, amplitude range of the main beat component) per joint, in radians.
_JOINTS = {
    "shoulder": ((0.1, 0.6), (0.2, 1.1)),
    "elbow": ((0.0, 0.7), (0.1, 0.8)),
    "hip": ((0.03, 0.12), (0.0, 0.15)),
    "knee": ((-0.08, 0.05), (0.0, 0.15)),
}


@dataclass(frozen=True)
class Motion:
    seed: int
    tempo: float  # beats per second
    waves: dict  # joint name -> _Wave
    lean: _Wave
    head: _Wave
    bounce: float  # image-height fraction
    x0: float
    x_amp: float
    x_freq: float
    x_phase: float
    y0: float
    scale0: float
    scale_amp: float
    scale_freq: float
    scale_phase: float
    turn_period: float  # seconds between turns; inf: never turns
    turn_offset: float
    turn_duration: float
    turn_dir: float

    @classmethod
    def from_seed(cls, seed: int) -> Motion:
        """Sample a motion; the same seed always gives the same motion."""
        rng = np.random.default_rng([int(seed), 0x40])
        u = rng.uniform
        tempo = u(0.4, 1.0)

        def wave(rest, amp, symmetric_phase=None) -> _Wave:
            main_phase = u(0, 2 * math.pi) if symmetric_phase is None else symmetric_phase
            return _Wave(
                rest=u(*rest),
                amps=(u(*amp), u(0, amp[1] * 0.3)),
                harms=(float(rng.choice([0.5, 1.0])), float(rng.choice([1.5, 2.0]))),
                phases=(main_phase, u(0, 2 * math.pi)),
            )

        waves = {}
        for joint, (rest, amp) in _JOINTS.items():
            # Arms/legs move in step, in opposition or independently, as dance moves do.
            mode = rng.integers(3)
            phase_l = u(0, 2 * math.pi)
            phase_r = phase_l if mode == 0 else (phase_l + math.pi if mode == 1 else u(0, 2 * math.pi))
            waves[f"{joint}_l"] = wave(rest, amp, phase_l)
            waves[f"{joint}_r"] = wave(rest, amp, phase_r)
        turns = rng.uniform() < 0.7
        turn_period = u(2.0, 6.0) if turns else math.inf
        return cls(
            seed=int(seed),
            tempo=tempo,
            waves=waves,
            lean=wave((-0.05, 0.05), (0.0, 0.18)),
            head=wave((-0.05, 0.05), (0.0, 0.2)),
            bounce=u(0.0, 0.025),
            x0=u(0.42, 0.58),
            x_amp=u(0.0, 0.1),
            x_freq=u(0.05, 0.25),
            x_phase=u(0, 2 * math.pi),
            y0=u(0.5, 0.54),
            scale0=u(0.65, 0.85),
            scale_amp=u(0.0, 0.1),
            scale_freq=u(0.05, 0.2),
            scale_phase=u(0, 2 * math.pi),
            turn_period=turn_period,
            turn_offset=u(0.0, turn_period) if turns else 0.0,
            turn_duration=u(0.6, 1.4),
            turn_dir=float(rng.choice([-1.0, 1.0])),
        )

    def yaw(self, t: float) -> float:
        """Half-turns of ``turn_duration`` seconds every ``turn_period`` seconds (front <-> back)."""
        if math.isinf(self.turn_period):
            return 0.0
        phase = (t - self.turn_offset) / self.turn_period
        n = math.floor(phase)
        within = (phase - n) * self.turn_period
        return self.turn_dir * math.pi * (n + _smoothstep(within / self.turn_duration))

    def pose(self, t: float) -> Pose:
        w = {name: wave(t, self.tempo) for name, wave in self.waves.items()}
        beat = abs(math.sin(math.pi * self.tempo * t))
        dip = self.bounce * (1 - beat)  # down between beats, knees bend with it
        scale = self.scale0 * (1 + self.scale_amp * math.sin(2 * math.pi * self.scale_freq * t + self.scale_phase))
        return Pose(
            x=self.x0 + self.x_amp * math.sin(2 * math.pi * self.x_freq * t + self.x_phase),
            # Feet stay near the same floor line as the dancer grows: the pelvis moves with the scale.
            y=self.y0 + dip + 0.45 * (self.scale0 - scale),
            scale=scale,
            yaw=self.yaw(t),
            lean=self.lean(t, self.tempo),
            head=self.head(t, self.tempo),
            shoulder_l=w["shoulder_l"],
            elbow_l=w["elbow_l"],
            shoulder_r=w["shoulder_r"],
            elbow_r=w["elbow_r"],
            hip_l=w["hip_l"],
            knee_l=w["knee_l"] - 6 * dip,
            hip_r=w["hip_r"],
            knee_r=w["knee_r"] - 6 * dip,
        )

    def poses(self, num_frames: int, fps: float, start: float = 0.0) -> list[Pose]:
        return [self.pose(start + i / fps) for i in range(num_frames)]
