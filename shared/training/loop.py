"""The one training loop, for every generative family.

`fit(model, data, cfg, run_dir)` trains any module that follows the family contract (shared/generative/__init__):
for each step it takes batch `step` from `data`, and for each objective in `model.objectives` (one for most
families; "d" then "g" for a GAN) runs forward -> backward -> clip -> optimiser step with that objective's own
AdamW. Around that: device "auto", seeding, bf16 autocast (`amp`), learning-rate warm-up and cosine decay (a pure
function of the step, so there is no scheduler state to lose), EMA weights, a progress bar, a JSONL log, an
evaluation hook, checkpoints every N steps (atomic, keep last K) and `resume="latest"`, which restores model,
optimisers, EMA, RNG streams and step so that a killed run finishes bitwise equal to one never stopped (CPU).
Under torchrun the same loop runs data-parallel (see shared/training/distributed.py).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from shared.config import to_dict
from shared.errors import CheckpointError, ConfigError, GenlabError
from shared.runs import RunDir
from shared.runtime import bf16_autocast, resolve_device, seed_everything, use_bf16
from shared.training import checkpoint as ckpt
from shared.training import distributed as ddp
from shared.training.batches import BatchSource, StepBatches
from shared.training.ema import EMA
from shared.training.metrics_log import MetricsLog


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping for one training run (the model's own settings live in the app config)."""

    steps: int = 1000
    """Total optimiser steps; a resumed run continues up to this number."""
    batch_size: int = 128
    """Global batch size (split evenly across processes under torchrun)."""
    lr: float = 1e-3
    """Peak learning rate of AdamW."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas (GANs usually prefer 0.5,0.9 or 0.0,0.99)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    """Learning rate after warm-up: constant, or cosine / linear decay to `final_lr_ratio` of the peak at the end."""
    final_lr_ratio: float = 0.1
    """Where the cosine and linear schedules end, as a fraction of the peak learning rate."""
    warmup_steps: int = 0
    """Linear warm-up from 0 to the peak learning rate over this many steps."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 turns clipping off)."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights with this decay (0 = no EMA); sampling uses it."""
    amp: bool = False
    """Mixed precision: run forward passes under bfloat16 autocast, where the device runs bf16 natively (a GPU from
    Ampere on; a CPU with AVX512-BF16 or AMX). Elsewhere the loop says so once and trains in float32."""
    log_every: int = 50
    """Write a record to train.jsonl every this many steps."""
    eval_every: int = 0
    """Call the evaluation hook every this many steps (0 = only at the end)."""
    checkpoint_every: int = 500
    """Write a checkpoint every this many steps (and at the end)."""
    keep_last: int = 3
    """Checkpoints to keep (older ones are deleted)."""
    seed: int = 0
    """Seed of every random stream (data order, initialisation, noise)."""
    device: str = "auto"
    """'auto' (cuda, then mps, then cpu), 'cpu', 'cuda' or 'cuda:N'."""
    resume: str = "latest"
    """'latest' resumes from the newest valid checkpoint of the run, 'none' refuses to reuse a run that has
    checkpoints, or a path to a checkpoint folder to start from."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = False
    """Also write TensorBoard event files (needs the tensorboard package)."""

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {self.lr}")
        if not 0.0 <= self.final_lr_ratio <= 1.0:
            raise ConfigError(f"train.final_lr_ratio must be in [0, 1], got {self.final_lr_ratio}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass
class TrainResult:
    model: nn.Module
    """The trained model (unwrapped from DDP), in train mode on the training device."""
    ema_model: nn.Module | None
    step: int
    resumed_from: int | None = None
    records: list[dict] = field(default_factory=list)
    """Records logged in this call."""

    @property
    def sampling_model(self) -> nn.Module:
        """The weights to sample from: the EMA copy when there is one."""
        return (self.ema_model if self.ema_model is not None else self.model).eval()


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimiser step `step` (0-based): linear warm-up, then constant, cosine or linear decay
    to `final_lr_ratio` of the peak at the last step."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - 1 - cfg.warmup_steps))  # 1 at the last step
    floor = cfg.final_lr_ratio
    if cfg.lr_schedule == "cosine":
        return cfg.lr * (floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    if cfg.lr_schedule == "linear":
        return cfg.lr * (1.0 - (1.0 - floor) * progress)
    return cfg.lr


def _objectives(model: nn.Module) -> dict[str, int]:
    obj = getattr(model, "objectives", None) or {"loss": 1}
    return dict(obj)


def _objective_params(model: nn.Module, name: str) -> list[nn.Parameter]:
    getter = getattr(model, "objective_parameters", None)
    params = list(getter(name)) if getter is not None else list(model.parameters())
    return [p for p in params if p.requires_grad]


def _to_device(batch, device: torch.device) -> tuple:
    batch = (batch,) if isinstance(batch, torch.Tensor) else tuple(batch)
    return tuple(t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in batch)


def _pick_checkpoint(cfg: TrainConfig, run_dir: RunDir | None) -> ckpt.Checkpoint | None:
    if cfg.resume == "latest":
        return ckpt.latest_valid(run_dir.checkpoints) if run_dir is not None else None
    if cfg.resume == "none":
        if run_dir is not None and ckpt.list_steps(run_dir.checkpoints):
            raise ConfigError(
                f"run {run_dir.path} already has checkpoints and train.resume is 'none'; "
                "use a new run name, or --train.resume latest to continue it"
            )
        return None
    return ckpt.open_checkpoint(cfg.resume)


@contextlib.contextmanager
def _deferred_sigint() -> Iterator[list[bool]]:
    """Turn the first Ctrl-C into a flag the loop checks between steps (a second one interrupts at once)."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def fit(
    model: nn.Module,
    data: BatchSource,
    cfg: TrainConfig,
    run_dir: RunDir | str | Path | None = None,
    eval_fn: Callable[[nn.Module, int], dict] | None = None,
    config: dict | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train `model` on batches from `data` as `cfg` says; checkpoints and logs go to `run_dir` (if given).

    eval_fn(sampling_model, step) -> {name: float} is called every `cfg.eval_every` steps and at the end, on
    rank 0; its results are logged as `eval/<name>`. `config` (the app's config dict) is stored in every
    checkpoint so that the model can be rebuilt from it.
    """
    if isinstance(run_dir, (str, Path)):
        run_dir = RunDir(Path(run_dir))
        run_dir.path.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    info = ddp.init(device)
    device = ddp.local_device(device, info)
    if isinstance(data, StepBatches) and info.enabled:
        data = data.shard(info.rank, info.world_size)

    seed_everything(cfg.seed + info.rank)  # ranks draw different noise; parameters are broadcast from rank 0
    model.to(device).train()
    objectives = _objectives(model)
    optimizers = {
        name: torch.optim.AdamW(
            _objective_params(model, name), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        for name in objectives
    }
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    log = MetricsLog(
        run_dir.train_log if (run_dir and info.is_main) else None,
        tensorboard_dir=(run_dir.path / "tensorboard") if (cfg.tensorboard and run_dir) else None,
    )

    start, resumed_from = 0, None
    chosen = _pick_checkpoint(cfg, run_dir)
    if chosen is not None:
        chosen.load_model(model)
        state = chosen.load_state()
        try:
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{chosen.path}: optimiser state does not fit this model ({e})") from None
        if ema is not None:
            chosen.load_model(ema.model, ema=True)
            ema.updates = int(state.get("ema_updates", 0))
        rngs = state["rng"]
        if len(rngs) == info.world_size:
            ckpt.set_rng_state(rngs[info.rank])
        start = resumed_from = chosen.step
        log.truncate_after(start)
        if info.is_main:
            print(f"{desc}: resuming from {chosen.path} (step {start})", file=sys.stderr)

    net = ddp.wrap(model, device, info, find_unused=len(objectives) > 1)
    amp = use_bf16(device, cfg.amp, who=desc if info.is_main else None)  # float32 where bf16 would be emulated
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        desc=desc,
        disable=not (cfg.progress and info.is_main),
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 10.0,
        file=sys.stderr,
    )
    records: list[dict] = []
    app_config = {"train": to_dict(cfg), **(config or {})}

    def save(step: int) -> None:
        rngs = ddp.all_gather_objects(ckpt.rng_state(), info)  # every rank's streams, for exact resume
        if info.is_main and run_dir is not None:
            state = {
                "step": step,
                "world_size": info.world_size,
                "rng": rngs,
                "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                "ema_updates": ema.updates if ema else 0,
            }
            ckpt.save(
                run_dir.checkpoints,
                step,
                model,
                state,
                config=app_config,
                ema_model=ema.model if ema else None,
                keep_last=cfg.keep_last,
            )
        ddp.barrier(info)

    def evaluate(step: int) -> None:
        if eval_fn is None or not info.is_main:
            return
        sampler = ema.model if ema is not None else model
        was_training = sampler.training
        sampler.eval()
        with torch.no_grad():
            results = eval_fn(sampler, step) or {}
        sampler.train(was_training)
        rec = {"step": step, **{f"eval/{k}": float(v) for k, v in results.items()}}
        log.append(rec)
        records.append(rec)

    step = start
    t0, t_last, step_last = time.perf_counter(), time.perf_counter(), start
    with _deferred_sigint() as interrupted:
        try:
            for step in range(start, cfg.steps):
                lr = lr_at(step, cfg)
                for opt in optimizers.values():
                    for g in opt.param_groups:
                        g["lr"] = lr
                batch = _to_device(data.batch(step), device)
                losses = {}
                for name, repeats in objectives.items():
                    opt = optimizers[name]
                    for _ in range(repeats):
                        opt.zero_grad(set_to_none=True)
                        with bf16_autocast(device, amp):
                            loss = net(batch, name)
                        loss.backward()
                        if cfg.grad_clip > 0:
                            torch.nn.utils.clip_grad_norm_(opt.param_groups[0]["params"], cfg.grad_clip)
                        opt.step()
                    losses[name] = loss.detach()
                if ema is not None:
                    ema.update(model)
                done = step + 1
                bar.update(1)

                if done % cfg.log_every == 0 or done == cfg.steps:
                    now = time.perf_counter()
                    rec = {
                        "step": done,
                        "lr": lr,
                        **{f"loss/{k}": float(v) for k, v in losses.items()},
                        **{k: float(v) for k, v in (getattr(model, "stats", None) or {}).items()},
                        "steps_per_s": (done - step_last) / max(now - t_last, 1e-9),
                        "time_s": now - t0,
                    }
                    t_last, step_last = now, done
                    if not all(math.isfinite(float(v)) for v in losses.values()):
                        raise GenlabError(
                            f"{desc}: loss is not finite at step {done}; lower --train.lr or use "
                            f"--train.grad-clip, then rerun to resume from the last good checkpoint"
                        )
                    log.append(rec)
                    records.append(rec)
                    bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in rec.items() if k.startswith("loss/")})
                if cfg.eval_every and done % cfg.eval_every == 0 and done != cfg.steps:
                    evaluate(done)
                if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                    save(done)
                elif interrupted[0] and not info.enabled:
                    save(done)  # Ctrl-C: finish the step in progress, checkpoint it, then stop
                if interrupted[0]:
                    print(f"{desc}: interrupted; checkpoint saved at step {done}", file=sys.stderr)
                    raise KeyboardInterrupt
        finally:
            bar.close()
            log.close()
    if start < cfg.steps:
        evaluate(cfg.steps)
    return TrainResult(
        model=model,
        ema_model=ema.model if ema else None,
        step=max(start, cfg.steps),
        resumed_from=resumed_from,
        records=records,
    )
