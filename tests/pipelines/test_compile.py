"""The opt-in --compile: which modules it compiles, and how the switch reaches the pipeline. (Compiling and
running takes minutes on a CPU, so the run itself is measured by scripts/benchmark_fullsize.py --compile,
not here.)"""

import torch

from magicanimate.cli import animate as animate_cli
from magicanimate.config.cli import parse_command_line
from magicanimate.testing import tiny_pipeline


def _blocks(net):
    return [b for b in [*net.down_blocks, getattr(net, "mid_block", None), *getattr(net, "up_blocks", [])]
            if b is not None]


def test_compile_models_compiles_every_block_of_the_three_networks_once(monkeypatch):
    pipe = tiny_pipeline(seed=0)
    calls = []
    original = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: (calls.append(self), original(self, **kw)))
    pipe.compile_models()
    pipe.compile_models()  # a reused pipeline is not compiled twice
    expected = [b for net in (pipe.unet, pipe.appearance_encoder, pipe.controlnet) for b in _blocks(net)]
    assert [id(m) for m in calls] == [id(m) for m in expected]
    assert all(getattr(b, "_compiled_call_impl", None) is not None for b in expected)
    # the networks themselves stay eager: the pipeline's own calls (shared trunk, reference reads) are unchanged
    assert pipe.unet._compiled_call_impl is None and pipe.vae._compiled_call_impl is None


def test_compile_flag_reaches_the_config():
    args = parse_command_line(animate_cli.build_parser(), ["--compile", "--reference", "r.png"])
    assert animate_cli.flag_values(args, args.schema_flags)["compile"] is True
    args = parse_command_line(animate_cli.build_parser(), ["--reference", "r.png"])
    assert "compile" not in animate_cli.flag_values(args, args.schema_flags)
