"""The models the page offers, and a cache that loads each of them once.

A model is either the bundled CPU demo (``demo/model``, see :mod:`magicanimate.demo.bundle`)
or a weights folder given on the command line: a saved pipeline (``model_index.json``) or the original
release's layout (``stable-diffusion-v1-5/`` + ``MagicAnimate/``). Folders are checked when a job uses them,
so a missing bundled demo is a readable message on the page, not a failed start.
"""

from __future__ import annotations

import threading
from dataclasses import astuple
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from magicanimate.errors import ConfigError

DEMO_MODEL = "bundled demo"


def parse_model_arg(value: str) -> Tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (named after the folder) -> (name, path)."""
    name, sep, path = value.partition("=")
    if not sep:
        name, path = Path(value).name or value, value
    name, path = name.strip(), path.strip()
    if not name or not path:
        raise ConfigError(f"--weights {value!r}: expected PATH or NAME=PATH")
    return name, path


class ModelRegistry:
    """Display name -> where the weights are. The bundled demo is always listed (first unless asked)."""

    def __init__(self, folders: Dict[str, str], *, include_demo: bool = True):
        self.folders = dict(folders)
        if DEMO_MODEL in self.folders:
            raise ConfigError(f"--weights: the name {DEMO_MODEL!r} is reserved for the bundled demo model")
        self.include_demo = include_demo
        if not include_demo and not self.folders:
            raise ConfigError("no model to offer: give --weights PATH, or keep the bundled demo")

    @property
    def names(self) -> list:
        return ([DEMO_MODEL] if self.include_demo else []) + list(self.folders)

    def default(self) -> str:
        """A folder given on the command line wins over the bundled demo."""
        return next(iter(self.folders), DEMO_MODEL)

    def weights(self, name: str) -> dict:
        """``WeightsConfig`` values for ``name``; WeightsError (what is missing) for an absent bundled demo."""
        if name == DEMO_MODEL and self.include_demo:
            from magicanimate.demo.bundle import demo_inputs
            from magicanimate.errors import WeightsError

            try:
                return {"pipeline": demo_inputs()["weights.pipeline"]}
            except WeightsError as exc:
                raise WeightsError(f"{exc}. For this page: start scripts/app.py with --weights FOLDER to offer "
                                   "another model.") from None
        if name not in self.folders:
            raise ConfigError(f"unknown model {name!r}; available: {', '.join(self.names)}")
        return {"root": self.folders[name]}


class ModelCache:
    """Loads each (weights, device, dtype) once and hands the same pipeline to every later job."""

    def __init__(self, loader: Optional[Callable] = None):
        if loader is None:
            from magicanimate.pipelines.runtime import load_pipeline as loader
        self._loader = loader
        self._models: dict = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was actually loaded (the page shows it; tests check it)

    def get(self, weights, device, dtype):
        key = (astuple(weights), str(device), str(dtype))
        with self._lock:  # a second model waits while one loads: loading two at once would double the RAM peak
            if key not in self._models:
                self._models[key] = self._loader(weights, device, dtype)
                self.loads += 1
            return self._models[key]
