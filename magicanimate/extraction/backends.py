"""Pose backends: something that looks at one RGB frame and returns a :class:`PoseFrame`.

* ``mediapipe`` (default): BlazePose through mediapipe's ``solutions.pose``: 33 landmarks and a person
  mask per frame. mediapipe 0.10.14's wheel bundles the models this needs (``model_complexity=1`` with
  segmentation); nothing is downloaded. Installed by the ``pose`` extra, in its own environment (see
  docs/motion_extraction.md: mediapipe pins protobuf<5 and pulls opencv-contrib-python).
* ``torchscript``: DensePose R-CNN exported to TorchScript (the DensePose-TorchScript project's files), run
  with torch alone: see :mod:`magicanimate.extraction.torchscript`.
* ``detectron2``: DensePose R-CNN through detectron2's DensePose project when the user has it installed and
  provides its config and weights.

The two DensePose backends share the person choice and tracking and the instances -> part map step
(:mod:`magicanimate.extraction.instances`).
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
from magicanimate.extraction.instances import COARSE, FINE, InstanceFollower
from magicanimate.extraction.landmarks import NUM_LANDMARKS, PoseFrame, mask_storage_size
from magicanimate.extraction.tracking import check_person

logger = logging.getLogger(__name__)

BACKENDS = ("mediapipe", "torchscript", "detectron2")
#: the backends that detect several people and follow one (``--person``).
MULTI_PERSON_BACKENDS = ("torchscript", "detectron2")

MEDIAPIPE_MISSING = (
    "the mediapipe backend needs mediapipe, which is not installed in this environment. It conflicts with "
    "the core install (protobuf<5, opencv-contrib-python), so install it in a separate environment: see "
    "docs/motion_extraction.md (pose extra: pip install 'mediapipe==0.10.14')")


class BackendUnavailable(ConfigError):
    """The requested extraction backend (or its model files) cannot be used in this environment."""


def mediapipe_available() -> bool:
    try:
        importlib.import_module("mediapipe")
    except Exception:
        return False
    return True


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
    """``(detectron2.config, detectron2.engine, densepose)`` or BackendUnavailable."""
    try:
        d2_config = importlib.import_module("detectron2.config")
        d2_engine = importlib.import_module("detectron2.engine")
        densepose = importlib.import_module("densepose")
    except Exception as exc:
        raise BackendUnavailable(
            "the detectron2 backend needs detectron2 with its DensePose project importable "
            "(`import detectron2, densepose`), which failed here "
            f"({type(exc).__name__}: {exc}). Install detectron2 and projects/DensePose from "
            "https://github.com/facebookresearch/detectron2, or use --backend torchscript (no detectron2 "
            "needed) or --backend mediapipe") from None
    return d2_config, d2_engine, densepose


class Detectron2DensePose:
    """DensePose R-CNN through detectron2: the chosen person's part map in each frame.

    Args:
        config: detectron2 DensePose config file (e.g. ``densepose_rcnn_R_50_FPN_s1x.yaml``).
        weights: its weights (e.g. ``model_final_162be9.pkl`` for R_50_FPN_s1x).
        device: torch device string ("cpu", "cuda", ...).
        min_score: detections below this score are ignored.
        person: ``None`` to choose the main person automatically, or K for the K-th from the left.
    """

    def __init__(self, *, config: Optional[str], weights: Optional[str], device: str = "cpu",
                 min_score: float = 0.8, person: Optional[int] = None):
        d2_config, d2_engine, densepose = import_detectron2()
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
        self._follow = InstanceFollower(person)

    def __call__(self, frame: np.ndarray) -> PoseFrame:
        # DefaultPredictor takes BGR by default (cfg.INPUT.FORMAT).
        instances = self._predictor(np.ascontiguousarray(frame[:, :, ::-1]))["instances"]
        found = len(instances) > 0 and instances.has("pred_densepose")
        return self._follow(detectron2_instances(instances) if found else None, frame.shape[:2])

    def close(self) -> None:
        self._predictor = None


def detectron2_instances(instances) -> dict:
    """detectron2 ``Instances`` with DensePose chart outputs -> the dict the shared part-map step reads."""
    densepose = instances.pred_densepose
    return {"pred_boxes": instances.pred_boxes.tensor, "scores": instances.scores,
            COARSE: densepose.coarse_segm, FINE: densepose.fine_segm}


def create_backend(name: str, *, video: bool = True, smooth: bool = True, weights: Optional[str] = None,
                   config: Optional[str] = None, device: str = "cpu", person: Optional[int] = None):
    """Instantiate the backend called ``name`` (one of :data:`BACKENDS`)."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown extraction backend {name!r}; choose one of {', '.join(BACKENDS)}")
    person = check_person(person)
    if person is not None and name not in MULTI_PERSON_BACKENDS:
        raise ConfigError(f"--person applies to the {' and '.join(MULTI_PERSON_BACKENDS)} backends; the "
                          f"{name} backend follows one person by itself")
    if name == "mediapipe":
        return MediaPipePose(video=video, smooth=smooth)
    if name == "torchscript":
        from magicanimate.extraction.torchscript import TorchScriptDensePose

        return TorchScriptDensePose(weights=weights, device=device, person=person)
    return Detectron2DensePose(config=config, weights=weights, device=device, person=person)
