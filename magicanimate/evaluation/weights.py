"""Published weight files of the metric networks: where they come from, and strict loading from a folder.

Nothing is downloaded here. Put the files in one folder and pass it as ``--weights-dir``;
``scripts/download_eval_weights.py`` fetches them for users with internet access.

Loading is strict: every missing or unexpected key, and every shape mismatch, is reported by name. Two
tolerances are deliberate and explicit: BatchNorm ``num_batches_tracked`` counters (absent from files
saved by old PyTorch versions, unused in eval mode), and the allowlisted VGG16 classifier (present in the
torchvision file, unused by LPIPS, not built to save 124M parameters; its keys are checked by name and
shape, then dropped).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from magicanimate.errors import WeightsError
from magicanimate.evaluation.networks import FIDInceptionV3, InceptionI3D, LPIPSVGG, ResNet3D50


@dataclass(frozen=True)
class WeightFile:
    """A published weight file: its name, where it is published, and what we know of its contents."""

    key: str
    filename: str
    url: str
    description: str
    # torch.hub convention: the hex digits after the last "-" in the name start the file's SHA-256.
    sha256_prefix: Optional[str] = None
    size_bytes: Optional[int] = None
    # Keys in the file that we check (name and shape) but do not build.
    allowlisted: Tuple[Tuple[str, Tuple[int, ...]], ...] = ()

    def describe(self) -> str:
        facts = [f"published at {self.url}"]
        if self.size_bytes:
            facts.append(f"{self.size_bytes} bytes")
        if self.sha256_prefix:
            facts.append(f"SHA-256 starting {self.sha256_prefix}")
        return f"{self.filename} ({self.description}; " + ", ".join(facts) + ")"


_VGG_CLASSIFIER = (
    ("classifier.0.weight", (4096, 25088)), ("classifier.0.bias", (4096,)),
    ("classifier.3.weight", (4096, 4096)), ("classifier.3.bias", (4096,)),
    ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,)),
)

WEIGHT_FILES: Dict[str, WeightFile] = {
    f.key: f for f in (
        WeightFile(
            "inception", "pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            "pytorch-fid's port of the TensorFlow FID Inception-v3, 1008-way fc",
            sha256_prefix="6726825d"),
        WeightFile(
            "vgg16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
            "torchvision's ImageNet VGG16, backbone of LPIPS",
            sha256_prefix="397923af", size_bytes=553433881, allowlisted=_VGG_CLASSIFIER),
        WeightFile(
            "lpips_vgg", "vgg.pth",
            "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
            "LPIPS v0.1 linear heads for VGG, lin0..lin4 (also inside the `lpips` pip package, "
            "lpips/weights/v0.1/vgg.pth)"),
        WeightFile(
            "resnet3d50", "resnet-50-kinetics.pth",
            "https://github.com/kenshohara/3D-ResNets-PyTorch (README 'Pre-trained models', Google Drive folder "
            "of the CVPR 2018 release)",
            "Hara et al. 3D ResNet-50, Kinetics-400, shortcut B; {'state_dict': {'module.*': ...}}"),
        WeightFile(
            "i3d", "i3d_pretrained_400.pt",
            "the FVD evaluation code of TATS (github.com/songweige/TATS, tats/fvd) and DisCo "
            "(github.com/Wangt-CN/DisCo, tool/metrics: eval_fvd/i3d_pretrained_400.pt), a Google Drive file",
            "I3D RGB, Kinetics-400, piergiaj/pytorch-i3d key names"),
    )
}

# Which files each metric network needs.
NETWORK_FILES: Dict[str, Tuple[str, ...]] = {
    "inception": ("inception",),
    "lpips": ("vgg16", "lpips_vgg"),
    "resnet3d": ("resnet3d50",),
    "i3d": ("i3d",),
}

_NUM_BATCHES = re.compile(r"(^|\.)num_batches_tracked$")


def weight_path(weights_dir, key: str) -> Path:
    """Path of a published file inside ``weights_dir``; :class:`WeightsError` naming it when missing."""
    spec = WEIGHT_FILES[key]
    if weights_dir is None:
        raise WeightsError(
            f"no --weights-dir given; the metric needs {spec.describe()}. Put the file in a folder and pass "
            f"it (scripts/download_eval_weights.py can fetch it).")
    path = Path(weights_dir) / spec.filename
    if not path.is_file():
        raise WeightsError(
            f"{path}: missing weight file; expected {spec.describe()}. "
            f"scripts/download_eval_weights.py --weights-dir {weights_dir} can fetch it.")
    return path


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: Path, spec: WeightFile, *, verify_hash: bool = True) -> None:
    """Size and hash-prefix checks where the published values are known (``verify_hash=False`` skips both)."""
    if not verify_hash:
        return
    if spec.size_bytes is not None and path.stat().st_size != spec.size_bytes:
        raise WeightsError(
            f"{path}: {path.stat().st_size} bytes, expected {spec.size_bytes} for {spec.describe()} "
            f"(truncated download or a different file)")
    if spec.sha256_prefix is not None:
        digest = sha256_of(path)
        if not digest.startswith(spec.sha256_prefix):
            raise WeightsError(
                f"{path}: SHA-256 {digest[:16]}... does not start with {spec.sha256_prefix} as published for "
                f"{spec.filename} (corrupt or different file)")


def read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """Tensors of a ``.pth``/``.pt`` file: unwraps ``{"state_dict": ...}`` and a ``module.`` prefix."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of many kinds: one clear message
        raise WeightsError(f"{path}: not a readable PyTorch weight file ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _listing(names: Sequence[str], limit: int = 12) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str,
                allowlisted: Sequence[Tuple[str, Tuple[int, ...]]] = ()) -> None:
    """Load ``state`` into ``model``; any missing/unexpected key or shape mismatch is a WeightsError."""
    expected = model.state_dict()
    allowed = dict(allowlisted)
    state = dict(state)
    problems = []
    for name, shape in allowed.items():
        if name in state:
            if tuple(state[name].shape) != shape:
                problems.append(f"allowlisted {name} has shape {tuple(state[name].shape)}, expected {shape}")
            del state[name]
        else:
            problems.append(f"missing (allowlisted, unused) {name}")
    missing = [k for k in expected if k not in state and not _NUM_BATCHES.search(k)]
    unexpected = [k for k in state if k not in expected and not _NUM_BATCHES.search(k)]
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    shapes = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
              for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if shapes:
        problems.append(f"shape mismatches: {_listing(shapes)}")
    if problems:
        raise WeightsError(f"{source}: does not match {type(model).__name__}: " + "; ".join(problems))
    usable = {k: v for k, v in state.items() if k in expected}
    result = model.load_state_dict(usable, strict=False)
    left = [k for k in result.missing_keys if not _NUM_BATCHES.search(k)]
    if left or result.unexpected_keys:  # cannot happen after the checks above; keep loading honest anyway
        raise WeightsError(f"{source}: failed to load keys {left + list(result.unexpected_keys)}")


def load_published(model: nn.Module, weights_dir, key: str, *, verify_hash: bool = True,
                   target: Optional[nn.Module] = None) -> Path:
    """Load published file ``key`` from ``weights_dir`` strictly into ``target`` (default ``model``)."""
    spec = WEIGHT_FILES[key]
    path = weight_path(weights_dir, key)
    check_file(path, spec, verify_hash=verify_hash)
    load_strict(target if target is not None else model, read_state_dict(path), source=str(path),
                allowlisted=spec.allowlisted)
    return path


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights for tests (never for reported numbers).

    Kaiming-normal convolutions keep activations at a usable scale through deep ReLU stacks, unlike
    PyTorch's default init, so random features still separate different inputs. LPIPS heads are made
    non-negative like trained ones, so a distance is never negative.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                module.reset_parameters()
        if isinstance(model, LPIPSVGG):
            for head in model.heads():
                conv = head.model[1]
                conv.weight.copy_(torch.rand(conv.weight.shape, generator=generator))
    return model


def _build_lpips(weights_dir, verify_hash: bool) -> Tuple[nn.Module, Dict[str, str]]:
    model = LPIPSVGG()
    backbone = load_published(model, weights_dir, "vgg16", verify_hash=verify_hash, target=model.net)
    heads = nn.ModuleDict({f"lin{i}": h for i, h in enumerate(model.heads())})
    lin = load_published(model, weights_dir, "lpips_vgg", verify_hash=verify_hash, target=heads)
    return model, {"vgg16": str(backbone), "lpips_vgg": str(lin)}


def _build_single(cls: Callable[[], nn.Module], key: str) -> Callable:
    def build(weights_dir, verify_hash: bool):
        model = cls()
        path = load_published(model, weights_dir, key, verify_hash=verify_hash)
        return model, {key: str(path)}
    return build


_BUILDERS = {
    "inception": (FIDInceptionV3, _build_single(FIDInceptionV3, "inception")),
    "lpips": (LPIPSVGG, _build_lpips),
    "resnet3d": (ResNet3D50, _build_single(ResNet3D50, "resnet3d50")),
    "i3d": (InceptionI3D, _build_single(InceptionI3D, "i3d")),
}


def build_network(name: str, weights_dir=None, *, random_init: bool = False, seed: int = 0,
                  verify_hash: bool = True, device="cpu") -> Tuple[nn.Module, Dict[str, str]]:
    """A metric network in eval mode and a record of the files it came from.

    ``random_init=True`` is for tests only: seeded random weights, recorded as ``"RANDOM"``.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown metric network {name!r}; known: {sorted(_BUILDERS)}")
    cls, build = _BUILDERS[name]
    if random_init:
        model, record = randomize(cls(), seed), {key: "RANDOM" for key in NETWORK_FILES[name]}
    else:
        model, record = build(weights_dir, verify_hash)
    model.eval().requires_grad_(False)
    return model.to(device), record
