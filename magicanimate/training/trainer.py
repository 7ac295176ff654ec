"""The training loop on accelerate: loops, logs, checkpoints. The model's step lives in module.py.

Resuming is exact: data order is a pure function of (seed, epoch, position) (see
:class:`~magicanimate.data.datasets.SampleBatchSampler`), and accelerate's ``save_state`` restores the
optimizer, LR scheduler, RNG states (noise, timesteps, reference dropout) and our step counter. Checkpoints
hold only the trainable weights (the frozen ones come from the config's model paths).

Under a sharding strategy (FSDP, DeepSpeed ZeRO; chosen by the accelerate config, see
:mod:`magicanimate.training.sharding`) each rank writes its own shard through accelerate, the export and
validation gather the full weights on the main process, and a checkpoint resumes on the same strategy and
world size.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from magicanimate.config import save_config
from magicanimate.data.datasets import SampleBatchSampler, VideoPoseDataset
from magicanimate.errors import ConfigError, MagicAnimateError, WeightsError

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
TRAINABLE_FILE = "trainable.safetensors"


class TrainingDivergedError(MagicAnimateError, RuntimeError):
    """The loss became NaN or infinite; the last good state was saved before stopping."""


@dataclass
class TrainState:
    """Step counter saved with every checkpoint (accelerate custom object)."""

    step: int = 0

    def state_dict(self) -> Dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.step = int(state["step"])


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    last_checkpoint: Optional[Path]
    export_dir: Optional[Path]
    losses: List[float] = field(default_factory=list)


# --------------------------------------------------------------------------------------- checkpoints

def list_checkpoints(output_dir: Path) -> List[Path]:
    folder = Path(output_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    return [p for _, p in sorted(found)]


def is_checkpoint(path: Path) -> bool:
    from magicanimate.training.sharding import STRATEGY_FILE

    return (path / TRAINABLE_FILE).is_file() or (path / STRATEGY_FILE).is_file()


def resolve_resume(resume: Optional[str], output_dir: Path) -> Optional[Path]:
    if resume is None:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            logger.info("resume=latest: no checkpoint in %s yet, starting from scratch", output_dir)
            return None
        return found[-1]
    path = Path(resume)
    if not is_checkpoint(path):
        raise ConfigError(f"resume={resume}: not a training checkpoint folder (no {TRAINABLE_FILE} or sharding.json)")
    return path


def _trainable_state(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {n: p.detach().contiguous() for n, p in module.named_parameters() if p.requires_grad}


def _register_hooks(run: "TrainingRun") -> None:
    """Checkpoint only the trainable weights of the training module; load them back strictly. Under
    sharding, accelerate writes the sharded weights and optimizer itself; the hooks add and check the
    extras (strategy, EMA shards)."""
    from magicanimate.training import sharding

    accelerator = run.accelerator

    def save_hook(models, weights, output_dir):
        if sharding.shards_state(accelerator):
            sharding.save_sharded_extras(accelerator, _trainable_names(run), run.ema, Path(output_dir))
            return
        if accelerator.is_main_process:
            save_file(_trainable_state(accelerator.unwrap_model(run.module)), str(Path(output_dir) / TRAINABLE_FILE))
        for _ in range(len(weights)):
            weights.pop()

    def load_hook(models, input_dir):
        if sharding.shards_state(accelerator):
            sharding.check_sharded_checkpoint(accelerator, _trainable_names(run), Path(input_dir))
            if run.ema is not None:
                sharding.load_ema_shard(accelerator, run.ema, Path(input_dir))
            return
        if not (Path(input_dir) / TRAINABLE_FILE).is_file():
            raise ConfigError(f"{input_dir}: written under sharding (no {TRAINABLE_FILE}); resume it with the "
                              "accelerate config and process count that wrote it")
        state = load_file(str(Path(input_dir) / TRAINABLE_FILE))
        module = accelerator.unwrap_model(run.module)
        expected = {n for n, p in module.named_parameters() if p.requires_grad}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise WeightsError(f"{input_dir}/{TRAINABLE_FILE}: does not match this config's trainable weights; "
                               f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
                               f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        params = dict(module.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value.to(params[name].dtype))
        for _ in range(len(models)):
            models.pop()

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def _trainable_names(run: "TrainingRun") -> List[str]:
    # FSDP1 inserts its wrappers' names into parameter names; the checkpoint speaks the module's own names.
    module = run.accelerator.unwrap_model(run.module)
    return [n.replace("_fsdp_wrapped_module.", "") for n, p in module.named_parameters() if p.requires_grad]


def save_checkpoint(accelerator, output_dir: Path, step: int, total_limit: Optional[int]) -> Path:
    """accelerate ``save_state`` into ``checkpoints/checkpoint-<step>``, written under a temporary name and
    renamed once every rank has finished (a killed save never looks like a checkpoint); keeps the last
    ``total_limit``."""
    path = Path(output_dir) / CHECKPOINT_DIR / f"checkpoint-{step}"
    tmp = path.with_name(path.name + ".partial")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


# ------------------------------------------------------------------------------------------- helpers

def make_optimizer(cfg, params, device_type: str):
    o = cfg.optim
    kind = o.optimizer
    if kind in ("auto", "adamw8bit"):
        try:
            import bitsandbytes as bnb  # noqa: F401
            have_bnb = True
        except Exception:
            have_bnb = False
        if kind == "adamw8bit" and not have_bnb:
            raise ConfigError("optim.optimizer=adamw8bit needs bitsandbytes (pip install bitsandbytes)")
        kind = "adamw8bit" if have_bnb and (kind == "adamw8bit" or device_type == "cuda") else "adamw"
    if kind == "adamw8bit":
        import bitsandbytes as bnb
        cls = bnb.optim.AdamW8bit
    else:
        cls = torch.optim.AdamW
    logger.info("optimizer: %s", cls.__name__)
    return cls(params, lr=o.learning_rate, betas=(o.adam_beta1, o.adam_beta2), weight_decay=o.adam_weight_decay,
               eps=o.adam_epsilon)


def _to_device(batch: Dict[str, Any], device) -> Dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _tracker_config(cfg) -> Dict[str, Any]:
    flat: Dict[str, Any] = {}

    def walk(node, prefix=""):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(v, key + ".")
            else:
                flat[key] = v if isinstance(v, (int, float, str, bool)) else str(v)

    walk(OmegaConf.to_container(cfg, resolve=True))
    return flat


def _check_tracker(report_to: str) -> Optional[str]:
    if report_to == "none":
        return None
    module = {"wandb": "wandb", "tensorboard": "tensorboard"}[report_to]
    try:
        __import__(module)
    except Exception:
        raise ConfigError(f"report_to={report_to} needs the {module} package (pip install '.[{report_to}]')") from None
    return report_to


# ---------------------------------------------------------------------------------------------- train

@dataclass
class TrainingRun:
    """Everything one training call works with (built in this order: seed, data, model, optimizer)."""

    cfg: Any
    accelerator: Any
    output_dir: Path
    sampler: Any = None
    loader: Any = None
    module: Any = None
    params: List[torch.nn.Parameter] = field(default_factory=list)
    optimizer: Any = None
    lr_scheduler: Any = None
    ema: Any = None
    state: TrainState = field(default_factory=TrainState)
    full_copy: Any = None  # sharding.FullCopy: whole weights on the main process when they are sharded


def train(cfg, *, accelerator=None, stop_after: Optional[int] = None) -> TrainResult:
    """Run training as ``cfg`` (a loaded :class:`~magicanimate.training.config.TrainConfig`) describes.

    ``stop_after``: leave the loop after this many optimizer steps of this call (a checkpoint is saved),
    as if the job had been killed right after checkpointing; used to test exact resumption.
    """
    from accelerate.utils import set_seed

    from magicanimate.training.validation import check_validation_inputs

    output_dir = Path(cfg.output_dir)
    log_with = _check_tracker(cfg.report_to)
    check_validation_inputs(cfg)
    run = TrainingRun(cfg, accelerator or _make_accelerator(cfg, log_with, output_dir), output_dir)
    if run.accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, output_dir)
    set_seed(cfg.seed, device_specific=True)
    if cfg.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    resume_from = resolve_resume(cfg.resume, output_dir)
    _make_data(run)
    _make_module(run)
    _make_optimization(run)
    if resume_from is not None:
        if run.accelerator.is_main_process:
            logger.info("resuming from %s", resume_from)
        run.accelerator.load_state(str(resume_from))
    if log_with is not None:
        run.accelerator.init_trackers(cfg.tracker_project_name, config=_tracker_config(cfg))
    result = TrainResult(output_dir=output_dir, global_step=run.state.step, last_checkpoint=resume_from,
                         export_dir=None)
    last_saved = _loop(run, result, stop_after, saved=run.state.step if resume_from is not None else -1)
    _finish(run, result, last_saved)
    return result


def _make_accelerator(cfg, log_with, output_dir: Path):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    return Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, mixed_precision=cfg.mixed_precision,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=cfg.find_unused_parameters)])


def _make_data(run: TrainingRun) -> None:
    cfg, accelerator = run.cfg, run.accelerator
    dataset = VideoPoseDataset.from_config(cfg.data)
    run.sampler = SampleBatchSampler(len(dataset), cfg.train_batch_size, cfg.data, cfg.seed,
                                     num_replicas=accelerator.num_processes, rank=accelerator.process_index)
    # Batches are chosen in this process by the sampler; workers only load them, so persistent workers
    # keep the exact data order. The loader's own generator keeps it off the global RNG.
    run.loader = DataLoader(dataset, batch_sampler=run.sampler, num_workers=cfg.data.num_workers,
                            persistent_workers=cfg.data.num_workers > 0,
                            pin_memory=accelerator.device.type == "cuda",
                            generator=torch.Generator().manual_seed(cfg.seed))


def _make_module(run: TrainingRun) -> None:
    """The training module with its declared trainable parts, checkpointing, dtypes, on its device."""
    from magicanimate.training.builder import build_training_module

    from accelerate.utils import set_seed

    from magicanimate.training.sharding import shards_weights

    cfg, accelerator = run.cfg, run.accelerator
    if accelerator.num_processes > 1:
        # Every rank builds the same initial weights (fresh layers included), so that a strategy that shards
        # them needs no broadcast from rank 0; each rank then draws its own noise again.
        set_seed(cfg.seed)
    module = build_training_module(cfg)
    if accelerator.num_processes > 1:
        set_seed(cfg.seed, device_specific=True)
    summary = module.configure_trainable(cfg.train)
    if accelerator.is_main_process:
        logger.info("trainable parameters per module:\n  %s", "\n  ".join(summary.lines()))
    if cfg.gradient_checkpointing:
        for sub in (module.unet, module.appearance_encoder, module.controlnet):
            if any(p.requires_grad for p in sub.parameters()) or sub is module.unet:
                sub.enable_gradient_checkpointing()
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    # FSDP gathers a unit's weights in one dtype and casts them for compute itself (its mixed-precision
    # policy): there, frozen networks stay float32 (sharded), like the trainable ones.
    cast_frozen = weight_dtype != torch.float32 and not shards_weights(accelerator)
    for sub in (module.vae, module.unet, module.appearance_encoder, module.controlnet):
        if cast_frozen and not any(p.requires_grad for p in sub.parameters()):
            sub.to(dtype=weight_dtype)  # frozen whole: run in the low-precision dtype, as diffusers' scripts do
    module.sharded_weights = shards_weights(accelerator)
    run.module = module.to(accelerator.device)


def _make_optimization(run: TrainingRun) -> None:
    """Optimizer, LR schedule and EMA over the trainable weights; everything registered for checkpoints."""
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    from magicanimate.training.sharding import configure_deepspeed, shards_state, strategy_name

    cfg, accelerator = run.cfg, run.accelerator
    run.params = run.module.trainable_parameters()
    lr_scale = (cfg.gradient_accumulation_steps * cfg.train_batch_size * accelerator.num_processes
                if cfg.optim.scale_lr else 1)
    optimizer = make_optimizer(cfg, run.params, accelerator.device.type)
    for group in optimizer.param_groups:
        group["lr"] = cfg.optim.learning_rate * lr_scale
    # accelerate steps a prepared scheduler once per process per optimizer step.
    lr_scheduler = get_scheduler(cfg.optim.lr_scheduler, optimizer,
                                 num_warmup_steps=cfg.optim.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=cfg.max_train_steps * accelerator.num_processes)
    if strategy_name(accelerator) == "deepspeed":
        configure_deepspeed(accelerator, cfg)
    _register_hooks(run)
    run.module, run.optimizer, run.lr_scheduler = accelerator.prepare(run.module, optimizer, lr_scheduler)
    # FSDP replaces the parameters by their shards: the clipping, the EMA and the checks use those.
    run.params = [p for p in run.module.parameters() if p.requires_grad]
    accelerator.register_for_checkpointing(run.state)
    if cfg.ema.enabled:
        run.ema = EMAModel(run.params, decay=cfg.ema.decay, update_after_step=cfg.ema.update_after_step)
        # float32 whatever the weights' dtype (DeepSpeed keeps them in fp16/bf16): decay steps of 1e-4 vanish
        # in half precision.
        run.ema.to(device=accelerator.device, dtype=torch.float32)
        if not shards_state(accelerator):  # sharded runs save one EMA shard per rank (sharding.py)
            accelerator.register_for_checkpointing(run.ema)


def _loop(run: TrainingRun, result: TrainResult, stop_after: Optional[int], saved: int) -> int:
    """Optimizer steps until max_train_steps (or ``stop_after`` steps of this call); the last saved step."""
    cfg, accelerator = run.cfg, run.accelerator
    epoch, skip = divmod(run.state.step * cfg.gradient_accumulation_steps, len(run.sampler))
    progress = tqdm(total=cfg.max_train_steps, initial=run.state.step, desc="training", unit="step",
                    disable=not accelerator.is_main_process, dynamic_ncols=True)
    steps_this_call, running = 0, []
    done = run.state.step >= cfg.max_train_steps
    while not done:
        run.sampler.set_position(epoch, skip)
        skip = 0
        for batch in run.loader:
            running.append(_train_step(run, _to_device(batch, accelerator.device)))
            if not accelerator.sync_gradients:
                continue
            steps_this_call += 1
            stopping = stop_after is not None and steps_this_call >= stop_after
            saved = _after_step(run, result, progress, float(sum(running) / len(running)), epoch, stopping, saved)
            running = []
            if run.state.step >= cfg.max_train_steps or stopping:
                done = True
                break
        else:
            epoch += 1
    progress.close()
    result.global_step = run.state.step
    return saved


def _train_step(run: TrainingRun, batch) -> float:
    """One forward/backward (an optimizer step when gradients are synchronised); the batch's loss."""
    cfg, accelerator = run.cfg, run.accelerator
    with accelerator.accumulate(run.module):
        loss = run.module(batch)["loss"]
        _stop_if_not_finite(accelerator, loss, batch, run.state.step, run.output_dir, cfg)
        accelerator.backward(loss)
        if accelerator.sync_gradients and cfg.optim.max_grad_norm > 0:
            accelerator.clip_grad_norm_(run.params, cfg.optim.max_grad_norm)
        run.optimizer.step()
        run.lr_scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return loss.detach().float().item()


def _after_step(run: TrainingRun, result: TrainResult, progress, step_loss: float, epoch: int, stopping: bool,
                saved: int) -> int:
    """Count the step; EMA, logging, checkpoint and validation when due. Returns the last saved step."""
    cfg, accelerator = run.cfg, run.accelerator
    run.state.step += 1
    step = run.state.step
    if run.ema is not None:
        run.ema.step(run.params)
    result.losses.append(step_loss)
    lr = run.lr_scheduler.get_last_lr()[0]
    progress.update(1)
    progress.set_postfix(loss=f"{step_loss:.4f}", lr=f"{lr:.2e}")
    if step % cfg.log_every_n_steps == 0 or step == cfg.max_train_steps:
        accelerator.log({"train/loss": step_loss, "train/lr": lr, "train/epoch": epoch}, step=step)
    if step % cfg.checkpointing_steps == 0 or step == cfg.max_train_steps or stopping:
        result.last_checkpoint = save_checkpoint(accelerator, run.output_dir, step, cfg.checkpoints_total_limit)
        saved = step
    if cfg.validation.every_n_steps and step % cfg.validation.every_n_steps == 0:
        _validate(run, step)
    return saved


def _finish(run: TrainingRun, result: TrainResult, last_saved: int) -> None:
    """Check the ranks agree, save the final state and export the weights (EMA ones if enabled)."""
    from magicanimate.training.export import export_trained

    from magicanimate.training.sharding import ema_weights, shards_weights

    cfg, accelerator, step = run.cfg, run.accelerator, run.state.step
    if accelerator.num_processes > 1 and not shards_weights(accelerator):
        _check_ranks_in_sync(accelerator, run.params)
    if step >= cfg.max_train_steps and cfg.export_at_end:
        if last_saved != step:
            result.last_checkpoint = save_checkpoint(accelerator, run.output_dir, step, cfg.checkpoints_total_limit)
        if shards_weights(accelerator):
            with ema_weights(run.ema, run.params):
                whole = _full_copy(run).refresh(accelerator, run.module)
            if whole is not None:
                result.export_dir = export_trained(whole, cfg, run.output_dir / "export")
        elif accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(run.module)
            if run.ema is not None:
                run.ema.store(run.params)
                run.ema.copy_to(run.params)
            result.export_dir = export_trained(unwrapped, cfg, run.output_dir / "export")
            if run.ema is not None:
                run.ema.restore(run.params)
        accelerator.wait_for_everyone()
    accelerator.end_training()


def _stop_if_not_finite(accelerator, loss, batch, step: int, output_dir: Path, cfg) -> None:
    """Every rank learns whether any rank's loss is NaN/inf (one all-reduce), so all stop together."""
    flag = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0], device=loss.device)
    if accelerator.num_processes > 1:
        flag = accelerator.reduce(flag, reduction="sum")
    if flag.item() == 0:
        return
    # The optimizer has not stepped on this batch: the weights are the last good ones. A checkpoint of
    # this very step (saved before the bad batch was drawn) is kept as it is.
    path = Path(output_dir) / CHECKPOINT_DIR / f"checkpoint-{step}"
    if not path.is_dir():
        path = save_checkpoint(accelerator, output_dir, step, cfg.checkpoints_total_limit)
    videos = batch.get("video_id")
    raise TrainingDivergedError(
        f"loss is {loss.item() if torch.isfinite(loss).all() else 'NaN/inf'} at step {step + 1} "
        f"(videos {list(videos) if videos is not None else '?'} on rank {accelerator.process_index}); the last "
        f"good state was saved to {path}. Try a lower optim.learning_rate, mixed_precision=bf16 instead of "
        f"fp16, or check the data; resume with resume={path}.")


def _check_ranks_in_sync(accelerator, params) -> None:
    """DDP keeps replicas identical; verify it once at the end (a cheap checksum per rank)."""
    local = torch.stack([torch.stack([p.detach().double().sum(), p.detach().double().abs().sum()])
                         for p in params]).to(accelerator.device)
    everyone = accelerator.gather(local[None])
    if not torch.equal(everyone.min(0).values, everyone.max(0).values):
        raise RuntimeError("trainable weights differ between ranks after training (DDP out of sync)")
    if accelerator.is_main_process:
        logger.info("trainable weights identical on all %d ranks", accelerator.num_processes)


def _full_copy(run: TrainingRun):
    from magicanimate.training.sharding import FullCopy

    if run.full_copy is None:
        run.full_copy = FullCopy(run.cfg)
    return run.full_copy


def _validate(run: TrainingRun, step: int) -> None:
    """The validation clip with the current (EMA) weights: by every rank sharing the windows, or, when the
    weights are sharded, by the main process alone on the gathered weights."""
    from magicanimate.pipelines.distributed import single_process
    from magicanimate.training.sharding import ema_weights, shards_weights
    from magicanimate.training.validation import run_validation

    accelerator = run.accelerator
    if not shards_weights(accelerator):
        with ema_weights(run.ema, run.params):
            run_validation(accelerator, accelerator.unwrap_model(run.module), run.cfg, step)
    else:
        with ema_weights(run.ema, run.params):
            whole = _full_copy(run).refresh(accelerator, run.module)
        if whole is not None:
            dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
            try:
                with single_process():
                    run_validation(accelerator, whole.to(device=accelerator.device, dtype=dtype), run.cfg, step)
            finally:
                whole.to(device="cpu")
    accelerator.wait_for_everyone()
