"""A stand-in for the DensePose-TorchScript models, written by the tests (the real weights are not here).

:class:`ReplayDensePose` has the published interface (one uint8 ``(H, W, 3)`` BGR image and ``bgr``; a dict
of boxes, scores, classes, image size and DensePose chart logits) and replays detections chosen by the test,
one set per call. It only "sees" people in the image it was made for: the right size, uint8, and BGR, which
the test videos show as a blue background (RGB (20, 40, 220): channel 0 is the bright one only in BGR).

Quadrant people make the expected part map known without any interpolation code: with 2x2 logits, each
cell's label wins in the quarter of the box nearest to it after a bilinear resize (by symmetry the borders lie
on the box's midlines), so for an even box size every pixel has one nearest cell.
"""

import warnings
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from magicanimate.media import write_video

BLUE_RGB = (20, 40, 220)
S = 2  # logit resolution of the quadrant people


class Person(NamedTuple):
    box: Tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    fine: np.ndarray  # (25, s, s)
    coarse: np.ndarray  # (2, s, s)


class ReplayDensePose(torch.nn.Module):
    def __init__(self, boxes, scores, counts, fine, coarse, frame_hw: Tuple[int, int]):
        super().__init__()
        self.register_buffer("boxes", boxes)
        self.register_buffer("scores", scores)
        self.register_buffer("counts", counts)
        self.register_buffer("fine", fine)
        self.register_buffer("coarse", coarse)
        self.height = int(frame_hw[0])
        self.width = int(frame_hw[1])
        self.calls = 0

    def forward(self, image: torch.Tensor, bgr: bool = True) -> Dict[str, torch.Tensor]:
        i = min(self.calls, self.counts.shape[0] - 1)
        self.calls += 1
        k = int(self.counts[i])
        fits = (image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == self.height
                and image.shape[1] == self.width and image.shape[2] == 3)
        if not (fits and bgr and int(image[0, 0, 0]) > int(image[0, 0, 2])):
            k = 0
        s = self.fine.shape[-1]
        return {
            "pred_boxes": self.boxes[i, :k], "scores": self.scores[i, :k],
            "pred_classes": torch.zeros(k, dtype=torch.int64),
            "image_size": torch.tensor([self.height, self.width]),
            "pred_densepose_coarse_segm": self.coarse[i, :k], "pred_densepose_fine_segm": self.fine[i, :k],
            "pred_densepose_u": torch.zeros(k, 25, s, s), "pred_densepose_v": torch.zeros(k, 25, s, s),
        }


def save_standin(path, frames: Sequence[Sequence[Person]], frame_hw) -> None:
    """Script a :class:`ReplayDensePose` that returns ``frames[i]`` on its i-th call and save it."""
    kmax = max(1, max(len(f) for f in frames))
    s = next((p.fine.shape[-1] for f in frames for p in f), S)
    n = len(frames)
    boxes, scores = torch.zeros(n, kmax, 4), torch.zeros(n, kmax)
    fine, coarse = torch.zeros(n, kmax, 25, s, s), torch.zeros(n, kmax, 2, s, s)
    for i, people in enumerate(frames):
        for k, p in enumerate(people):
            boxes[i, k] = torch.tensor(p.box)
            scores[i, k] = p.score
            fine[i, k] = torch.from_numpy(np.asarray(p.fine, np.float32))
            coarse[i, k] = torch.from_numpy(np.asarray(p.coarse, np.float32))
    counts = torch.tensor([len(f) for f in frames])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated",
                                category=DeprecationWarning)
        torch.jit.script(ReplayDensePose(boxes, scores, counts, fine, coarse, frame_hw)).save(str(path))


#: box halves the coarse mask can call background: (axis of the 2x2 logits, index along it)
HALVES = {"top": (0, 0), "bottom": (0, 1), "left": (1, 0), "right": (1, 1)}


def quadrant_person(box, labels, score=0.95, background: Optional[str] = None) -> Person:
    """A person whose box quarters (top-left, top-right, bottom-left, bottom-right) carry ``labels``; the
    coarse mask calls the box half named ``background`` (top/bottom/left/right) background. (Background
    and person each peak in their own half, so, as for the quarters, the nearer half wins.)"""
    fine = np.zeros((25, S, S), np.float32)
    for q, label in enumerate(labels):
        fine[label, q // 2, q % 2] = 4.0
    coarse = np.zeros((2, S, S), np.float32)
    coarse[1] = 4.0
    if background is not None:
        axis, index = HALVES[background]
        bg = np.zeros((S, S), bool)
        bg[(index, slice(None)) if axis == 0 else (slice(None), index)] = True
        coarse[0] = np.where(bg, 4.0, 0.0)
        coarse[1] = np.where(bg, 0.0, 4.0)
    return Person(tuple(float(v) for v in box), float(score), fine, coarse)


def expected_quadrants(frame_hw, box, labels, background: Optional[str] = None) -> np.ndarray:
    """The part map a quadrant person must give: detectron2's integer box (corner truncated, size truncated
    from the float difference), split on its midlines, with the ``background`` half empty."""
    out = np.zeros(frame_hw, np.uint8)
    x0, y0 = int(box[0]), int(box[1])
    w, h = max(int(box[2] - box[0]), 1), max(int(box[3] - box[1]), 1)
    assert w % 2 == 0 and h % 2 == 0, "quadrant people need an even box size (no pixel on a midline)"
    for q, label in enumerate(labels):
        row, col = q // 2, q % 2
        if background is not None and (row, col)[HALVES[background][0]] == HALVES[background][1]:
            continue
        out[y0 + row * h // 2:y0 + (row + 1) * h // 2, x0 + col * w // 2:x0 + (col + 1) * w // 2] = label
    return out


def blue_video(path, n: int, frame_hw, fps: float = 25.0) -> None:
    """``n`` frames of the blue background the stand-in needs to see people (an mp4, or PNG frames for a
    path without extension)."""
    frames = np.empty((n, *frame_hw, 3), np.uint8)
    frames[:] = BLUE_RGB
    if str(path).endswith(".mp4"):
        write_video(path, frames, fps)
    else:
        from magicanimate.media import write_image
        path.mkdir(parents=True)
        for i, frame in enumerate(frames):
            write_image(path / f"{i:05d}.png", frame)


def people_per_frame(*tracks: List[Person]) -> List[List[Person]]:
    """Per frame, the people of several per-frame tracks (one list per person, equally long)."""
    return [list(people) for people in zip(*tracks)]
