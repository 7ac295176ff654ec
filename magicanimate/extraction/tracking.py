"""One person, the same person: choose the main person once, then follow it by box overlap.

The choice is made in the first frame where anyone is detected:

* automatically (default): the detection with the largest box area x score, i.e. the biggest confident
  person, who is nearly always the dancer a video was filmed for;
* ``person=K``: the K-th person from the left (ordered by box centre, 1 = leftmost) in that frame.

From then on, each frame takes the detection whose box overlaps most with where the chosen person is
expected: its last box, moved on by its recent frame-to-frame motion (an exponential average over the
frames where it was found one after another, so a swaying box is not thrown back and forth) when it was
also found in the frame before. Someone walking thus keeps its identity while passing a person standing
still with a box of much the same size. The overlap (intersection over union) must be at least
:data:`MIN_IOU`; otherwise the person counts as not found in that frame (``--missing`` decides what is
drawn) and the last box is kept, so the same person is picked up again when it reappears where it was.
Detections of anyone else are never used, whatever their size or score.

Box overlap cannot tell apart two people of the same size moving the same way through the same place;
where that happens the choice may pass to the other person (see docs/motion_extraction.md, "Limits").
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from magicanimate.errors import ConfigError, InputError

#: least box overlap (IoU) with the chosen person's expected box for a detection to count as that person. At
#: 25 fps a person's box moves and changes little between frames (IoU ~0.8-1); 0.5 keeps someone passing
#: close by from taking over in a frame where the chosen person is missed.
MIN_IOU = 0.5
#: weight of the previous motion estimate in the running average of the box's per-frame motion.
MOTION_DECAY = 0.5


class PersonChoiceError(InputError):
    """``--person K`` asks for more people than the first frame with a person shows."""


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one xyxy ``box`` with each of ``boxes`` ``(K, 4)``."""
    box = np.asarray(box, np.float64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def check_person(person: Optional[int]) -> Optional[int]:
    """``person`` as given to ``--person``: ``None`` (automatic) or a 1-based index."""
    if person is None:
        return None
    if int(person) != person or person < 1:
        raise ConfigError(f"person must be a whole number >= 1 (1 = leftmost person), got {person}")
    return int(person)


class PersonTracker:
    """Called once per frame, in order, with that frame's detections; returns the chosen person's index.

    Args:
        person: ``None`` for the automatic choice, or K for the K-th person from the left.
        min_iou: see :data:`MIN_IOU`.
    """

    def __init__(self, person: Optional[int] = None, min_iou: float = MIN_IOU):
        self.person = check_person(person)
        self.min_iou = float(min_iou)
        self.box: Optional[np.ndarray] = None  # the chosen person's last box
        self.motion = np.zeros(4)  # average change of its box per frame, over consecutive frames
        self.last_frame = -1  # the frame of self.box
        self.frames_seen = 0

    def __call__(self, boxes: np.ndarray, scores: np.ndarray) -> Optional[int]:
        frame = self.frames_seen
        self.frames_seen += 1
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return None
        if self.box is None:
            chosen = self._choose(boxes, np.asarray(scores, np.float64).reshape(-1), frame)
        else:
            expected = self.box + self.motion if self.last_frame == frame - 1 else self.box
            overlap = box_iou(expected, boxes)
            chosen = int(np.argmax(overlap))
            if overlap[chosen] < self.min_iou:
                return None
        found_before = self.box is not None and self.last_frame == frame - 1
        self.motion = (MOTION_DECAY * self.motion + (1 - MOTION_DECAY) * (boxes[chosen] - self.box)
                       if found_before else np.zeros(4))
        self.box, self.last_frame = boxes[chosen], frame
        return chosen

    def _choose(self, boxes: np.ndarray, scores: np.ndarray, frame: int) -> int:
        if self.person is None:
            area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
            return int(np.argmax(area * scores))
        if self.person > len(boxes):
            raise PersonChoiceError(
                f"--person {self.person}: the first frame with a person (frame {frame}) shows only "
                f"{len(boxes)} {'person' if len(boxes) == 1 else 'people'}; choose 1-{len(boxes)} "
                f"(1 = leftmost) or leave --person out for the largest")
        centres = (boxes[:, 0] + boxes[:, 2]) / 2
        return int(np.argsort(centres, kind="stable")[self.person - 1])
