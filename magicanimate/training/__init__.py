"""Two-stage training (docs/architecture.md, "Training"): typed configs, the module that owns the training step, the accelerate loop.

    from magicanimate.training import load_train_config, train
    result = train(load_train_config("configs/training/stage1.yaml", ["data.root=..."]))
"""

from .config import TrainConfig, load_train_config, validate_train_config
from .module import AnimateTrainingModule


def train(cfg, **kwargs):
    """See :func:`magicanimate.training.trainer.train` (imported lazily: it pulls in accelerate)."""
    from .trainer import train as _train

    return _train(cfg, **kwargs)


__all__ = ["TrainConfig", "load_train_config", "validate_train_config", "AnimateTrainingModule", "train"]
