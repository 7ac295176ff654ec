"""Several trainings inside one multi-process launch (one launch costs more than the tiny runs themselves).

    accelerate launch --config_file configs/accelerate/<strategy>.yaml --num_processes 2 ... \
        tests/training/sharded_worker.py plan.json

``plan.json``: {"config": <training yaml>, "runs": [{"name", "strategy": "ddp" | "launched",
"overrides": [...], "stop_after": int | null}]}. Each run gets a fresh Accelerator; the losses of each
run are written to <output_dir>/losses.json by the main process.

"launched" is the strategy of the launch's accelerate config. On a CPU, accelerate's state turns FSDP
on only for an accelerator device (its multi-CPU state never becomes FSDP), so for FSDP this worker sets
the distributed type itself, after accelerate has built everything else from the launched config; from
there on accelerate's own FSDP code prepares, saves and loads (torch FSDP2 runs on CPU with gloo).
"""

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _set_distributed_type(kind, fsdp_plugin=None) -> None:
    from accelerate.state import AcceleratorState, PartialState

    PartialState._shared_state["distributed_type"] = kind
    AcceleratorState._shared_state["distributed_type"] = kind
    AcceleratorState._shared_state["fsdp_plugin"] = fsdp_plugin


def make_accelerator(strategy: str, cfg):
    from accelerate import Accelerator, FullyShardedDataParallelPlugin
    from accelerate.utils import DistributedType

    from magicanimate.training.trainer import _make_accelerator

    fsdp = strategy == "launched" and os.environ.get("ACCELERATE_USE_FSDP", "false") == "true"
    if not fsdp:
        accelerator = _make_accelerator(cfg, None, Path(cfg.output_dir))
        _set_distributed_type(DistributedType.MULTI_CPU)  # undo an earlier run's FSDP in this launch
    else:
        plugin = FullyShardedDataParallelPlugin()  # read from the launched config (FSDP_* variables)
        accelerator = Accelerator(cpu=True, fsdp_plugin=plugin, mixed_precision=cfg.mixed_precision,
                                  gradient_accumulation_steps=cfg.gradient_accumulation_steps)
        _set_distributed_type(DistributedType.FSDP, plugin)
    # Keep the process group for the next run of this launch (end_training destroys it).
    accelerator.end_training = lambda: None
    return accelerator


def main(plan_file: str) -> None:
    from magicanimate.training.config import load_train_config
    from magicanimate.training.trainer import train

    plan = json.loads(Path(plan_file).read_text())
    for run in plan["runs"]:
        cfg = load_train_config(plan["config"], run["overrides"])
        accelerator = make_accelerator(run["strategy"], cfg)
        result = train(cfg, accelerator=accelerator, stop_after=run.get("stop_after"))
        if accelerator.is_main_process:
            (Path(cfg.output_dir) / f"losses-{run['name']}.json").write_text(json.dumps(result.losses))
        accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1])
