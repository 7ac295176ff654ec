"""Two CPU processes (gloo) sharing the windows give the same result as one process (docs/architecture.md, "One denoising step")."""

import os

import pytest
import torch
import torch.multiprocessing as mp

from magicanimate.testing import tiny_pipeline

from magicanimate.testing import densepose_video, reference_image

# 18 frames in windows of 8 with overlap 3: windows start at 0, 5, 10 -> 3 windows, split 2 + 1
KW = dict(num_inference_steps=1, context_frames=8, context_overlap=3, output_type="latent")


def _run(fusion: str) -> torch.Tensor:
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe(reference_image(), densepose_video(18), generator=torch.Generator().manual_seed(3),
                fusion=fusion, **KW).latents


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save(_run("tapered"), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    # fork: the children inherit the imported modules instead of importing torch and diffusers again
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    single = _run("tapered")
    for rank in range(2):
        multi = torch.load(tmp_path / f"rank{rank}.pt")
        # same per-window computations, summed in the same window order: bitwise equal
        torch.testing.assert_close(multi, single, rtol=0, atol=0)
