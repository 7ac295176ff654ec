"""What changes when the weights or the optimizer are sharded across processes (FSDP, DeepSpeed ZeRO).

The strategy is chosen by the accelerate config (``configs/accelerate/``), never by the training config;
this module answers the few questions the trainer must ask about it:

* which strategy runs, and whether each process holds only a shard of the weights (FSDP) or only a shard
  of the optimizer state and gradients (ZeRO-2);
* the checkpoint extras a sharded run writes beside accelerate's own sharded files: ``sharding.json`` (the
  strategy, world size and trainable names, checked on resume) and one EMA shard per rank;
* the full weights gathered on the main process (for the export and for validation), built into a fresh
  copy of the training module there.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import torch

from magicanimate.errors import ConfigError, WeightsError

logger = logging.getLogger(__name__)

STRATEGY_FILE = "sharding.json"


def strategy_name(accelerator) -> str:
    """``single``, ``ddp``, ``fsdp1``, ``fsdp2`` or ``deepspeed``."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind == DistributedType.FSDP:
        return "fsdp2" if accelerator.is_fsdp2 else "fsdp1"
    if kind == DistributedType.DEEPSPEED:
        return "deepspeed"
    return "ddp" if accelerator.num_processes > 1 else "single"


def shards_weights(accelerator) -> bool:
    """Each process holds a shard of every weight (FSDP): whole networks exist only when gathered."""
    return strategy_name(accelerator).startswith("fsdp")


def shards_state(accelerator) -> bool:
    """Each process writes its own part of a checkpoint (FSDP weights and optimizer, ZeRO optimizer)."""
    return strategy_name(accelerator) in ("fsdp1", "fsdp2", "deepspeed")


def configure_deepspeed(accelerator, cfg) -> None:
    """Fill what DeepSpeed takes from a prepared DataLoader (we prepare none: batches come from our own
    sampler) and check that its gradient clipping is the training config's (DeepSpeed clips, not us)."""
    plugin = accelerator.state.deepspeed_plugin
    ds = plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = cfg.train_batch_size
    ds["train_batch_size"] = cfg.train_batch_size * cfg.gradient_accumulation_steps * accelerator.num_processes
    clipping = ds.get("gradient_clipping", "auto")
    if clipping == "auto":
        ds["gradient_clipping"] = float(cfg.optim.max_grad_norm)
    elif float(clipping) != float(cfg.optim.max_grad_norm):
        raise ConfigError(f"the DeepSpeed config clips gradients at {clipping} but optim.max_grad_norm is "
                          f"{cfg.optim.max_grad_norm}: set one of them so that they agree (or gradient_clipping: auto)")


# ----------------------------------------------------------------------------------- checkpoint extras

def _local(tensor: torch.Tensor) -> torch.Tensor:
    # FSDP2 parameters (and EMA copies of them) are DTensors; a rank stores its own shard.
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def save_sharded_extras(accelerator, trainable_names: List[str], ema, output_dir: Path) -> None:
    """``sharding.json`` (main process) and this rank's EMA shard; called by every rank inside save_state."""
    output_dir = Path(output_dir)
    if accelerator.is_main_process:
        info = {"strategy": strategy_name(accelerator), "world_size": accelerator.num_processes,
                "trainable": sorted(trainable_names)}
        (output_dir / STRATEGY_FILE).write_text(json.dumps(info, indent=1))
    if ema is not None:
        state = ema.state_dict()
        state["shadow_params"] = [_local(p).detach().cpu() for p in state["shadow_params"]]
        torch.save(state, output_dir / f"ema_rank{accelerator.process_index}.pt")


def check_sharded_checkpoint(accelerator, trainable_names: List[str], input_dir: Path) -> None:
    """A sharded checkpoint resumes exactly only with the same strategy, world size and trainable weights."""
    path = Path(input_dir) / STRATEGY_FILE
    if not path.is_file():
        raise ConfigError(f"{input_dir}: written without sharding (no {STRATEGY_FILE}); resume it with the "
                          f"strategy that wrote it (this run: {strategy_name(accelerator)})")
    info = json.loads(path.read_text())
    here = (strategy_name(accelerator), accelerator.num_processes)
    if (info["strategy"], info["world_size"]) != here:
        raise ConfigError(f"{input_dir}: written by {info['strategy']} on {info['world_size']} processes; this run "
                          f"is {here[0]} on {here[1]}: resume with the same accelerate config and process count")
    expected, saved = set(trainable_names), set(info["trainable"])
    if expected != saved:
        missing, unexpected = sorted(expected - saved), sorted(saved - expected)
        raise WeightsError(f"{input_dir}: does not match this config's trainable weights; missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")


def load_ema_shard(accelerator, ema, input_dir: Path) -> None:
    path = Path(input_dir) / f"ema_rank{accelerator.process_index}.pt"
    if not path.is_file():
        raise WeightsError(f"{input_dir}: EMA is enabled but this checkpoint has no {path.name}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    shards = state.pop("shadow_params")
    ours = ema.shadow_params
    if len(shards) != len(ours) or any(_local(o).shape != s.shape for o, s in zip(ours, shards)):
        raise WeightsError(f"{path}: EMA shard shapes do not match this run's trainable weights")
    ema.load_state_dict(state)  # counters and decay settings; without shadow_params it keeps its own
    with torch.no_grad():
        for own, saved in zip(ours, shards):
            _local(own).copy_(saved)


# ------------------------------------------------------------------------------------- full weights

@contextlib.contextmanager
def ema_weights(ema, params) -> Iterator[None]:
    """Inside, the (local shards of the) trainable weights hold their EMA values."""
    if ema is None:
        yield
        return
    ema.store(params)
    ema.copy_to(params)
    try:
        yield
    finally:
        ema.restore(params)


def gather_full_state(accelerator, model) -> Optional[Dict[str, torch.Tensor]]:
    """Every weight of the prepared model, whole and on the CPU, on the main process (None elsewhere).
    Every rank must call it: under FSDP it gathers the shards."""
    if shards_weights(accelerator):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if accelerator.is_main_process else None
    if not accelerator.is_main_process:
        return None
    return {k: v.detach().cpu() for k, v in accelerator.unwrap_model(model).state_dict().items()}


class FullCopy:
    """A whole training module on the main process's CPU, refreshed from the gathered weights on demand.

    Built once (from the config's model files, as at start-up) and kept: validation every N steps would
    otherwise read the base model again each time."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.module = None

    def refresh(self, accelerator, model):
        """Collective; returns the module with the current weights on the main process, None elsewhere."""
        state = gather_full_state(accelerator, model)
        if state is None:
            return None
        if self.module is None:
            from magicanimate.training.builder import build_training_module

            self.module = build_training_module(self.cfg)
            self.module.configure_trainable(self.cfg.train)
        module = self.module.to(device="cpu", dtype=torch.float32)
        result = module.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise WeightsError(f"gathered weights do not match the training module: missing "
                               f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
        logger.info("gathered the full weights (%d tensors) on the main process", len(state))
        return module
