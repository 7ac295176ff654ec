"""The ``torchscript`` backend: DensePose R-CNN exported to TorchScript, no detectron2 needed.

The DensePose-TorchScript project publishes detectron2's DensePose R-CNN models (R_50 / R_101 FPN with the
DeepLabV3 head, ``densepose_r50_fpn_dl.torchscript`` and ``densepose_r101_fpn_dl.torchscript``) as TorchScript
files that ``torch.jit.load`` runs on CPU or GPU. Their interface, which this backend relies on:

* input: one image, a uint8 tensor ``(H, W, 3)`` in **BGR** order, and ``bgr: bool = True``; the model
  resizes it itself (detectron2's test-time resize);
* output: a dict with ``pred_boxes`` ``(K, 4)`` xyxy in input pixels, ``scores`` ``(K,)``, ``pred_classes``,
  ``image_size``, ``pred_densepose_coarse_segm`` ``(K, 2, S, S)``, ``pred_densepose_fine_segm``
  ``(K, 25, S, S)``, ``pred_densepose_u`` / ``_v`` for K detected people;
* the graph calls torchvision's detection operators (``torchvision::nms``, ``roi_align``), which exist only
  once ``import torchvision`` has registered them.

The weights are licensed CC BY-SA 3.0 (DensePose's licence upstream). torch is imported when the backend is
created, never at module import.
"""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from magicanimate.errors import ConfigError, WeightsError
from magicanimate.extraction.instances import COARSE, FINE, NUM_FINE_CHANNELS, REQUIRED_KEYS, InstanceFollower
from magicanimate.extraction.landmarks import PoseFrame

RELEASES = "https://github.com/dajes/DensePose-TorchScript/releases"
MODEL_FILES = ("densepose_r50_fpn_dl.torchscript", "densepose_r101_fpn_dl.torchscript")
WHERE = (f"download {MODEL_FILES[0]} (or {MODEL_FILES[1]}) from the DensePose-TorchScript project's releases, "
         f"{RELEASES} (the weights are licensed CC BY-SA 3.0, as DensePose upstream)")
INTERFACE = ("a DensePose-TorchScript model takes one uint8 (H, W, 3) BGR image and bgr=True and returns a dict "
             f"with {', '.join(REQUIRED_KEYS)} (and pred_classes, image_size, pred_densepose_u/_v)")
_TORCHVISION_OP = re.compile(r"torchvision::\w+")


def check_weights_file(weights: Optional[str]) -> Path:
    """The model file as a Path, or a WeightsError saying where to get it (checked before torch loads)."""
    if not weights:
        raise WeightsError(f"the torchscript backend needs a DensePose TorchScript model: pass --weights FILE; "
                           f"{WHERE}")
    path = Path(weights)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise WeightsError(f"{path}: {what} (DensePose TorchScript model for the torchscript backend); {WHERE}")
    return path


def import_torch():
    from magicanimate.extraction.backends import BackendUnavailable

    try:
        return importlib.import_module("torch")
    except Exception as exc:
        raise BackendUnavailable(
            f"the torchscript backend needs torch, which failed to import here ({type(exc).__name__}: {exc}); "
            "run it in the main environment (README, 'Install'), or use --backend mediapipe") from None


def import_torchvision() -> Optional[str]:
    """Register torchvision's operators if torchvision is there; returns why not otherwise (None: imported)."""
    try:
        importlib.import_module("torchvision")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def torchvision_error(path: Path, exc: BaseException, torchvision_problem: Optional[str]) -> Optional[WeightsError]:
    """The error to raise when ``exc`` (from loading or running the model) is a missing torchvision operator."""
    ops = sorted(set(_TORCHVISION_OP.findall(str(exc))))
    if not ops:
        return None
    import torch

    if torchvision_problem is not None:
        why = f"torchvision is not installed or failed to import ({torchvision_problem})"
    else:
        tv = importlib.import_module("torchvision")
        why = (f"torchvision {getattr(tv, '__version__', '?')} is installed but does not provide them, so its "
               f"build does not match torch {torch.__version__}")
    return WeightsError(
        f"{path}: the model calls torchvision operators ({', '.join(ops)}) that are not registered: {why}. "
        f"Install the torchvision release built for torch {torch.__version__} (same version pairing and the "
        f"same CPU/CUDA build), then run again")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def resolve_device(torch, device: str):
    try:
        dev = torch.device(device)
    except Exception:
        raise ConfigError(f"--device {device!r}: not a torch device (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is available to torch {torch.__version__} here; "
                          f"use --device cpu")
    return dev


def load_model(path: Path, device, torchvision_problem: Optional[str]):
    """``torch.jit.load`` with the failures a user can cause turned into one-line errors."""
    import torch

    try:
        with warnings.catch_warnings():
            # TorchScript is the format these files are published in; torch's deprecation notice is not
            # something a user of this script can act on
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated",
                                    category=DeprecationWarning)
            model = torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        tv = torchvision_error(path, exc, torchvision_problem)
        if tv is not None:
            raise tv from None
        raise WeightsError(f"{path}: not a loadable TorchScript model ({_first_line(exc)}); {WHERE}") from None
    model.eval()
    if device.type == "cpu":
        model = model.float()  # fp16 exports run in float32 on CPU (no half kernels for every op there)
    return model


def check_outputs(out, path: Path) -> Mapping:
    """The model's output if it has the DensePose-TorchScript interface, else a WeightsError naming what it
    returned and what was expected."""
    if not isinstance(out, Mapping):
        shape = f" of shape {tuple(out.shape)}" if hasattr(out, "shape") else ""
        raise WeightsError(f"{path}: the model returned a {type(out).__name__}{shape}, not a dict of DensePose "
                           f"outputs; expected keys {', '.join(REQUIRED_KEYS)}. It is not a DensePose-TorchScript "
                           f"model ({INTERFACE}); {WHERE}")
    missing = [k for k in REQUIRED_KEYS if k not in out]
    if missing:
        raise WeightsError(f"{path}: the model returned keys {', '.join(map(str, out)) or '(none)'}; expected "
                           f"{', '.join(REQUIRED_KEYS)} (missing: {', '.join(missing)}). It is not a "
                           f"DensePose-TorchScript model ({INTERFACE}); {WHERE}")
    shapes = {key: tuple(out[key].shape) if hasattr(out[key], "shape") else None for key in REQUIRED_KEYS}
    if not _shapes_fit(shapes):
        listed = ", ".join(f"{key} {shapes[key]}" for key in REQUIRED_KEYS)
        raise WeightsError(f"{path}: the model's outputs have unexpected shapes ({listed}); expected pred_boxes "
                           f"(K, 4), scores (K,), {COARSE} (K, 2, S, S) and {FINE} (K, 25, S, S)")
    return out


def _shapes_fit(shapes) -> bool:
    boxes, scores, coarse, fine = (shapes[key] for key in REQUIRED_KEYS)
    if None in (boxes, scores, coarse, fine) or len(boxes) != 2 or boxes[1] != 4:
        return False
    k = boxes[0]
    if k == 0:  # no detection: the other outputs are empty, whatever their trailing sizes
        return True
    return (len(scores) == 1 and scores[0] == k and len(fine) == 4 and fine[:2] == (k, NUM_FINE_CHANNELS)
            and len(coarse) == 4 and coarse[0] == k and coarse[1] >= 2)


class TorchScriptDensePose:
    """DensePose R-CNN from a DensePose-TorchScript file: the chosen person's part map in each frame.

    Args:
        weights: the ``.torchscript`` file.
        device: torch device string ("cpu", "cuda", "cuda:1", ...).
        person: ``None`` to choose the main person automatically, or K for the K-th from the left.
    """

    def __init__(self, *, weights: Optional[str], device: str = "cpu", person: Optional[int] = None):
        self.path = check_weights_file(weights)
        torch = import_torch()
        self._device = resolve_device(torch, device)
        # torchvision registers the detection operators the exported graph calls: import it before loading.
        self._torchvision_problem = import_torchvision()
        self._model = load_model(self.path, self._device, self._torchvision_problem)
        self._follow = InstanceFollower(person)

    def __call__(self, frame: np.ndarray) -> PoseFrame:
        import torch

        bgr = torch.from_numpy(np.ascontiguousarray(frame[:, :, ::-1])).to(self._device)
        try:
            with torch.no_grad():
                out = self._model(bgr, True)
        except Exception as exc:
            tv = torchvision_error(self.path, exc, self._torchvision_problem)
            if tv is not None:
                raise tv from None
            raise WeightsError(f"{self.path}: running the model on a frame failed ({_first_line(exc)}); "
                               f"{INTERFACE}") from None
        return self._follow(check_outputs(out, self.path), frame.shape[:2])

    def close(self) -> None:
        self._model = None
