"""Several processes sharing one video: each denoises a contiguous share of the windows.

With ``torch.distributed`` initialised (``torchrun`` / ``accelerate launch`` set ``WORLD_SIZE``), the
pipeline runs only this process's windows; the per-window predictions are gathered and summed in the same
window order on every process, so the result equals a one-process run. Rank 0 decodes and writes.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Dict, Iterator

import torch

from magicanimate.pipelines.windows import WindowSchedule, shard


_LOCAL_ONLY = [False]


@contextlib.contextmanager
def single_process() -> Iterator[None]:
    """Inside, the pipeline runs every window in this process alone, even with torch.distributed
    initialised: for a caller that runs it on one rank only (e.g. training validation under sharding,
    where only rank 0 holds the full weights)."""
    previous, _LOCAL_ONLY[0] = _LOCAL_ONLY[0], True
    try:
        yield
    finally:
        _LOCAL_ONLY[0] = previous


def dist_info() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without torch.distributed or inside :func:`single_process`."""
    if _LOCAL_ONLY[0]:
        return 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group when launched by torchrun/accelerate (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def gather_predictions(local: Dict[int, torch.Tensor], schedule: WindowSchedule, shape, device) -> dict:
    """All windows' predictions on every process, keyed by window index.

    Each process contributes its contiguous share (zero-padded to the same count); afterwards every
    process sums the windows in the same order as a single process would, so results are identical.
    """
    rank, world = dist_info()
    num = len(schedule)
    per_rank = math.ceil(num / world)
    stacked = torch.zeros((per_rank, *shape), dtype=torch.float32, device=device)
    for j, k in enumerate(shard(num, rank, world)):
        stacked[j] = local[k]
    gathered = [torch.empty_like(stacked) for _ in range(world)]
    torch.distributed.all_gather(gathered, stacked)
    return {k: gathered[r][j] for r in range(world) for j, k in enumerate(shard(num, r, world))}
