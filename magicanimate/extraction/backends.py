"""Pose backends: something that looks at one RGB frame and returns a :class:`PoseFrame`.

* ``mediapipe`` (default): BlazePose through mediapipe's ``solutions.pose``: 33 landmarks and a person
  mask per frame. mediapipe 0.10.14's wheel bundles the models this needs (``model_complexity=1`` with
  segmentation); nothing is downloaded. Installed by the ``pose`` extra, in its own environment (see the
  README, "Motion extraction": mediapipe pins protobuf<5 and pulls opencv-contrib-python).
* ``detectron2``: DensePose R-CNN (detectron2's DensePose project) when the user has it installed and
  provides its config and weights; its fine-segmentation part index I is used directly.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from magicanimate.errors import ConfigError, WeightsError
from magicanimate.extraction.landmarks import NUM_LANDMARKS, PoseFrame

logger = logging.getLogger(__name__)

BACKENDS = ("mediapipe", "detectron2")
#: masks (and detectron2 part maps) are kept at most this many pixels on their longer side: the models
#: predict them at ~256 px anyway, and a long video's masks must fit in memory.
MASK_MAX_SIDE = 256

MEDIAPIPE_MISSING = (
    "the mediapipe backend needs mediapipe, which is not installed in this environment. It conflicts with "
    "the core install (protobuf<5, opencv-contrib-python), so install it in a separate environment: see "
    "README.md, 'Motion extraction' (pose extra: pip install 'mediapipe==0.10.14')")


class BackendUnavailable(ConfigError):
    """The requested extraction backend (or its model files) cannot be used in this environment."""


def mediapipe_available() -> bool:
    try:
        importlib.import_module("mediapipe")
    except Exception:
        return False
    return True


def mask_storage_size(frame_hw) -> tuple:
    """``(h, w)`` at which masks of a ``frame_hw`` frame are stored (longer side <= MASK_MAX_SIDE)."""
    h, w = frame_hw
    f = min(1.0, MASK_MAX_SIDE / max(h, w))
    return max(1, round(h * f)), max(1, round(w * f))


def _store_mask(mask: np.ndarray) -> np.ndarray:
    h, w = mask_storage_size(mask.shape)
    if (h, w) != mask.shape:
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
    # uint8 (probability x 255): a long video's masks take a quarter of the memory of float32
    return np.round(np.clip(mask, 0.0, 1.0) * 255).astype(np.uint8)


class MediaPipePose:
    """mediapipe BlazePose (full model) with segmentation.

    Args:
        video: track across consecutive frames (``static_image_mode=False``); False for single images.
        smooth: let mediapipe smooth landmarks/masks across frames itself (only with ``video``).
        min_detection_confidence: below this, a frame counts as having no person.
    """

    def __init__(self, *, video: bool = True, smooth: bool = True, min_detection_confidence: float = 0.5):
        warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
        try:
            mp_pose = importlib.import_module("mediapipe.python.solutions.pose")
        except Exception as exc:
            raise BackendUnavailable(f"{MEDIAPIPE_MISSING} [import failed: {exc}]") from None
        # complexity 1 (the full landmark model) is the one shipped inside the wheel; 0 and 2 download.
        self._pose = mp_pose.Pose(
            static_image_mode=not video,
            model_complexity=1,
            smooth_landmarks=smooth,
            enable_segmentation=True,
            smooth_segmentation=smooth,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=0.5,
        )

    def __call__(self, frame: np.ndarray) -> PoseFrame:
        h, w = frame.shape[:2]
        result = self._pose.process(np.ascontiguousarray(frame))
        if result.pose_landmarks is None:
            return PoseFrame()
        lm = np.array([[p.x * w, p.y * h, p.z * w, p.visibility] for p in result.pose_landmarks.landmark],
                      dtype=np.float64)
        assert lm.shape == (NUM_LANDMARKS, 4)
        mask = result.segmentation_mask
        mask = np.zeros((h, w), np.float32) if mask is None else np.asarray(mask, np.float32)
        return PoseFrame(landmarks=lm, mask=_store_mask(mask))

    def close(self) -> None:
        self._pose.close()


def import_detectron2():
    """``(detectron2.config, detectron2.engine, densepose, densepose.vis.extractor)`` or BackendUnavailable."""
    try:
        d2_config = importlib.import_module("detectron2.config")
        d2_engine = importlib.import_module("detectron2.engine")
        densepose = importlib.import_module("densepose")
        extractor = importlib.import_module("densepose.vis.extractor")
    except Exception as exc:
        raise BackendUnavailable(
            "the detectron2 backend needs detectron2 with its DensePose project importable "
            "(`import detectron2, densepose`), which failed here "
            f"({type(exc).__name__}: {exc}). Install detectron2 and projects/DensePose from "
            "https://github.com/facebookresearch/detectron2, or use --backend mediapipe") from None
    return d2_config, d2_engine, densepose, extractor


class Detectron2DensePose:
    """DensePose R-CNN: the fine-segmentation part index of the highest-scoring person in each frame.

    Args:
        config: detectron2 DensePose config file (e.g. ``densepose_rcnn_R_50_FPN_s1x.yaml``).
        weights: its weights (e.g. ``model_final_162be9.pkl`` for R_50_FPN_s1x).
        device: torch device string ("cpu", "cuda", ...).
        min_score: detections below this score are ignored.
    """

    def __init__(self, *, config: Optional[str], weights: Optional[str], device: str = "cpu",
                 min_score: float = 0.8):
        d2_config, d2_engine, densepose, extractor = import_detectron2()
        if not weights:
            raise WeightsError("the detectron2 backend needs DensePose weights: pass --weights "
                               "(e.g. model_final_162be9.pkl of densepose_rcnn_R_50_FPN_s1x)")
        if not config:
            raise ConfigError("the detectron2 backend needs its DensePose config file: pass --config "
                              "(e.g. projects/DensePose/configs/densepose_rcnn_R_50_FPN_s1x.yaml)")
        for path, what in ((weights, "DensePose weights"), (config, "DensePose config")):
            if not Path(path).is_file():
                raise (WeightsError if what.endswith("weights") else ConfigError)(
                    f"{path}: no such file ({what} for the detectron2 backend)")
        cfg = d2_config.get_cfg()
        densepose.add_densepose_config(cfg)
        cfg.merge_from_file(str(config))
        cfg.MODEL.WEIGHTS = str(weights)
        cfg.MODEL.DEVICE = device
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = min_score
        cfg.freeze()
        self._predictor = d2_engine.DefaultPredictor(cfg)
        self._extract = extractor.DensePoseResultExtractor()

    def __call__(self, frame: np.ndarray) -> PoseFrame:
        h, w = frame.shape[:2]
        # DefaultPredictor takes BGR by default (cfg.INPUT.FORMAT).
        instances = self._predictor(np.ascontiguousarray(frame[:, :, ::-1]))["instances"].to("cpu")
        if len(instances) == 0 or not instances.has("pred_densepose"):
            return PoseFrame()
        best = int(instances.scores.argmax())
        results, boxes_xywh = self._extract(instances[best:best + 1])
        if not results:
            return PoseFrame()
        labels = results[0].labels.cpu().numpy().astype(np.uint8)
        x, y, bw, bh = (float(v) for v in boxes_xywh[0])
        parts = np.zeros((h, w), np.uint8)
        # the labels cover the detection box (DensePose truncates it to integers) at the box's own
        # resolution; paste them into the frame.
        x0, y0 = int(x), int(y)
        box_w, box_h = max(1, int(bw)), max(1, int(bh))
        patch = labels if labels.shape == (box_h, box_w) else cv2.resize(
            labels, (box_w, box_h), interpolation=cv2.INTER_NEAREST)
        xe, ye = min(w, x0 + patch.shape[1]), min(h, y0 + patch.shape[0])
        xs, ys = max(0, x0), max(0, y0)
        parts[ys:ye, xs:xe] = patch[ys - y0:ye - y0, xs - x0:xe - x0]
        if not parts.any():
            return PoseFrame()
        sh, sw = mask_storage_size((h, w))
        small = cv2.resize(parts, (sw, sh), interpolation=cv2.INTER_NEAREST)
        return PoseFrame(mask=np.where(small > 0, 255, 0).astype(np.uint8), parts=small)

    def close(self) -> None:
        self._predictor = None


def create_backend(name: str, *, video: bool = True, smooth: bool = True, weights: Optional[str] = None,
                   config: Optional[str] = None, device: str = "cpu"):
    """Instantiate the backend called ``name`` (one of :data:`BACKENDS`)."""
    if name == "mediapipe":
        return MediaPipePose(video=video, smooth=smooth)
    if name == "detectron2":
        return Detectron2DensePose(config=config, weights=weights, device=device)
    raise ConfigError(f"unknown extraction backend {name!r}; choose one of {', '.join(BACKENDS)}")
