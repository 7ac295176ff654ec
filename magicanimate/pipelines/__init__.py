"""Inference: the MagicAnimate pipeline, long-video window fusion, and animate() behind scripts/animate.py.

Names are imported lazily, so ``import magicanimate.pipelines.windows`` stays light.
"""

_EXPORTS = {
    "MagicAnimatePipeline": "magicanimate.pipelines.pipeline_magicanimate",
    "MagicAnimatePipelineOutput": "magicanimate.pipelines.pipeline_magicanimate",
    "animate": "magicanimate.pipelines.animate",
    "AnimationResult": "magicanimate.pipelines.animate",
    "InferenceConfig": "magicanimate.pipelines.config",
    "make_schedule": "magicanimate.pipelines.windows",
    "make_scheduler": "magicanimate.pipelines.scheduling",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'magicanimate.pipelines' has no attribute {name!r}")
