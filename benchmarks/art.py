"""The art app's diffusion model against the `diffusers` DDPM at the same parameter count: training and sampling
images per second on the same machine in the same run.

ours: `apps.art.models.build_model("diffusion", preset("default"), 9)`, i.e. `shared.nets.UNet` (base 32,
channel_mult (1, 2, 2), 1 res block, attention at level 2 and in the middle, dropout 0.1) in
`shared.generative.Diffusion` (cosine schedule, T = 1000, 10% label dropout to the null class).
peer: diffusers `UNet2DModel` built by `diffusers_unet` from the same config: the same block_out_channels,
layers_per_block, DownBlock2D / AttnDownBlock2D (and AttnUpBlock2D) at the same levels, mid-block attention where
ours has it, the same attention head width and a class embedding of num_classes + 1 rows (the null class), so the
two nets have the same layers and, for these configs, exactly the same parameter count; noised with
`DDPMScheduler.add_noise` ("squaredcos_cap_v2" = the same cosine betas), epsilon MSE loss (`DiffusersDDPM`).

Rows (batch 64, 32 px RGB, 9 classes, on the device `resolve_device("auto")` picks):
    train   one optimiser step (forward loss, backward, clip at cfg grad_clip, AdamW), under bf16 autocast as the app
            trains (cfg.diffusion_train.amp = True), and again in float32; images/s = 64 x steps / time. Where the
            device has no native bf16 (`shared.runtime.native_bf16`) the app trains in float32: that row only.
    sample  50 DDIM steps (eta 0) with classifier-free guidance w = 1.5 at batch 64: every step is one net call on
            the conditional and null-class halves batched together (2 x 64), ours via `Diffusion.sample`, the peer via
            `DDIMScheduler` (same schedule, "trailing" spacing, x0 clipped with eps re-derived from it, as ours).
Timed calls alternate between ours and the peer (`paired_times`; medians of 5 calls of 3 training steps and of 3
sampling calls on a CPU, more on a GPU), so load from other processes on a shared machine falls on both alike.
ratio = peer time / our time (> 1: ours is faster). Without diffusers (`pip install -e .[bench]`) our rows are
still timed and the peer columns say that it is missing (NaN).
"""

from __future__ import annotations

import importlib.util
import math
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from apps.art.config import ArtConfig, preset
from benchmarks.harness import median_time
from shared.errors import ConfigError
from shared.nets.unet import norm_groups
from shared.runtime import bf16_autocast, native_bf16, resolve_device, use_bf16

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # diffusers is only built from configs here: never ask the Hub

BATCH, CLASSES, SAMPLE_STEPS, GUIDANCE = 64, 9, 50, 1.5
MISSING = "diffusers (not installed: pip install -e .[bench])"


def have_diffusers() -> bool:
    return importlib.util.find_spec("diffusers") is not None


# ---- the diffusers side, shared with benchmarks/art_vs_diffusers.py ---------------------------------------------


def diffusers_unet(cfg: ArtConfig, num_classes: int):
    """diffusers `UNet2DModel` laid out like `build_model("diffusion", cfg, num_classes)`'s UNet.

    Level i has base_channels * channel_mult[i] channels and num_res_blocks resnets (AttnDownBlock2D where i is
    in cfg.diffusion.attention_levels, else DownBlock2D; mirrored up blocks with one more resnet each, as ours);
    mid-block attention iff the last level has attention (as ours); attention heads 64 wide where the width allows
    (ours: max(1, C // 64) heads); num_class_embeds = num_classes + 1, the last row the null class. GroupNorm
    group counts differ (diffusers takes one count for every norm; ours picks one per width): no parameters change.
    """
    from diffusers import UNet2DModel

    d = cfg.diffusion
    levels = range(len(d.channel_mult))
    widths = tuple(d.base_channels * m for m in d.channel_mult)
    attn_widths = [widths[i] for i in d.attention_levels] or [widths[-1]]
    head_dim = min(64, *attn_widths)
    if any(w % head_dim for w in attn_widths):
        raise ConfigError(f"attention widths {attn_widths} are not multiples of one head width {head_dim}")
    return UNet2DModel(
        sample_size=cfg.data.image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=widths,
        layers_per_block=d.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if i in d.attention_levels else "DownBlock2D" for i in levels),
        up_block_types=tuple("AttnUpBlock2D" if i in d.attention_levels else "UpBlock2D" for i in reversed(levels)),
        add_attention=(len(widths) - 1) in d.attention_levels,
        attention_head_dim=head_dim,
        norm_num_groups=norm_groups(d.base_channels),
        dropout=d.dropout,
        num_class_embeds=num_classes + 1,
    )


def diffusers_scheduler(cfg: ArtConfig):
    """DDPMScheduler with our T and schedule: "squaredcos_cap_v2" is the cosine schedule of Nichol & Dhariwal
    (same betas, capped at 0.999), "linear" gets our 1000 / T-scaled ends; x0 clipped to [-1, 1] when sampling."""
    from diffusers import DDPMScheduler

    d = cfg.diffusion
    scale = 1000.0 / d.timesteps
    kind = {"cosine": "squaredcos_cap_v2", "linear": "linear"}[d.schedule]
    return DDPMScheduler(
        num_train_timesteps=d.timesteps, beta_schedule=kind, beta_start=scale * 1e-4, beta_end=scale * 0.02,
        prediction_type="epsilon", clip_sample=True, timestep_spacing="trailing",
    )  # fmt: skip


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class DiffusersDDPM(nn.Module):
    """diffusers' UNet2DModel + DDPMScheduler behind `Diffusion`'s interface, so one training loop and one sampling
    call drive both models: forward((x0 (B, 3, S, S), y (B,))) -> scalar loss; sample(n, cond=..., ...) -> images.

    forward draws t, noise and the label dropout from torch's global RNG in the same order and shapes as
    `Diffusion.forward`, so the two see identical noise when started from the same RNG state.
    """

    objectives = {"loss": 1}

    def __init__(self, cfg: ArtConfig, num_classes: int, cond_drop_prob: float | None = None) -> None:
        super().__init__()
        self.unet = diffusers_unet(cfg, num_classes)
        self.scheduler = diffusers_scheduler(cfg)
        self.num_classes = int(num_classes)
        self.cond_drop_prob = cfg.diffusion.cond_drop if cond_drop_prob is None else float(cond_drop_prob)
        self.timesteps = cfg.diffusion.timesteps

    def forward(self, batch, objective: str = "loss") -> torch.Tensor:
        x0, labels = batch[0], batch[1]
        b = x0.shape[0]
        t = torch.randint(0, self.timesteps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.scheduler.add_noise(x0, noise, t)
        drop = torch.rand(b, device=x0.device) < self.cond_drop_prob
        y = torch.where(drop, torch.full_like(labels, self.num_classes), labels.long())
        return F.mse_loss(self.unet(x_t, t, class_labels=y).sample.float(), noise)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond,
        steps: int = SAMPLE_STEPS,
        eta: float = 0.0,
        guidance: float = 1.0,
        generator: torch.Generator | None = None,
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n images (n, 3, S, S) in about [-1, 1] for labels cond (n,): DDIM (DDIMScheduler from this DDPM's config)
        with classifier-free guidance, the conditional and null-class inputs in one (2n, ...) batch per step."""
        from diffusers import DDIMScheduler

        device = next(self.parameters()).device
        y = torch.as_tensor(cond, dtype=torch.long, device=device).expand(n)
        s = self.unet.config.sample_size
        x = torch.randn((n, 3, s, s), generator=generator, device=device) if x_T is None else x_T.to(device)
        ddim = DDIMScheduler.from_config(self.scheduler.config)
        ddim.set_timesteps(steps, device=device)
        labels = torch.cat([y, torch.full_like(y, self.num_classes)])  # (2n,) conditional | null
        was_training = self.training
        self.eval()
        try:
            for t in ddim.timesteps:
                eps = self.unet(torch.cat([x, x]), t, class_labels=labels).sample.float()  # (2n, 3, S, S)
                eps_c, eps_u = eps.chunk(2)
                eps = eps_u + guidance * (eps_c - eps_u)
                x = ddim.step(eps, t, x, eta=eta, use_clipped_model_output=True, generator=generator).prev_sample
        finally:
            self.train(was_training)
        return x


# ---- the benchmark rows -----------------------------------------------------------------------------------------


def _train_step(model: nn.Module, batch, cfg: ArtConfig, amp: bool, device: torch.device):
    """A closure doing one optimiser step as the app's loop does (AdamW, forward under autocast, clip, step)."""
    tcfg = cfg.diffusion_train
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay)

    def step():
        opt.zero_grad(set_to_none=True)
        with bf16_autocast(device, amp):
            loss = model(batch)
        loss.backward()
        if tcfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()

    return step


def _models(cfg: ArtConfig, device: torch.device) -> tuple[nn.Module, nn.Module | None]:
    from apps.art.models import build_model

    torch.manual_seed(0)
    ours = build_model("diffusion", cfg, CLASSES).to(device).train()
    peer = DiffusersDDPM(cfg, CLASSES).to(device).train() if have_diffusers() else None
    return ours, peer


def _row(name, sizes, t_ours, t_peer, images, ours_params, peer_params, amp) -> dict:
    speeds = f"ours {images / t_ours:,.1f} img/s" + (f", diffusers {images / t_peer:,.1f} img/s" if t_peer else "")
    peer = "diffusers UNet2DModel + DDPMScheduler" if t_peer is not None else MISSING
    t_peer = math.nan if t_peer is None else t_peer
    return {
        "name": name,
        "sizes": f"{sizes}; {speeds}",
        "ours_s": t_ours,
        "peer": peer,
        "peer_s": t_peer,
        "ratio": t_peer / t_ours,
        "ours_img_s": images / t_ours,
        "peer_img_s": images / t_peer,
        "ours_params": ours_params,
        "peer_params": peer_params,
        "amp": amp,
    }


def paired_times(fns: dict[str, Callable[[], object]], repeats: int, warmup: bool = True) -> dict[str, float]:
    """Median seconds of each fn() (after one untimed call each when `warmup`); timed calls alternate between the
    fns, so load from other processes on a shared machine falls on every contender alike, not on whichever ran
    then."""
    for fn in fns.values() if warmup else ():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(median_time(fn, repeats=1, warmup=0))
    return {k: statistics.median(v) for k, v in times.items()}


@dataclass
class Setup:
    """What every row shares: the config, the device, both models (the peer only with diffusers), one batch."""

    cfg: ArtConfig
    device: torch.device
    models: dict[str, nn.Module]
    batch: tuple[torch.Tensor, torch.Tensor]  # x (B, 3, S, S) in [-1, 1], y (B,) labels
    x_T: torch.Tensor  # (B, 3, S, S) starting noise of the sampling row

    @property
    def counts(self) -> tuple[int, int | None]:
        peer = self.models.get("peer")
        return count_parameters(self.models["ours"]), (count_parameters(peer) if peer is not None else None)

    def describe(self) -> str:
        n_ours, n_peer = self.counts
        params = f"ours {n_ours:,} params" + (f", diffusers {n_peer:,}" if n_peer is not None else "")
        on_gpu = self.device.type == "cuda"
        where = torch.cuda.get_device_name(self.device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
        return f"{params}, {where}"


def setup() -> Setup:
    device = resolve_device("auto")
    cfg = preset("default")
    s = cfg.data.image_size
    if not have_diffusers():
        print(f"art: {MISSING}; timing ours only", file=sys.stderr)
    ours, peer = _models(cfg, device)
    models = {"ours": ours, "peer": peer} if peer is not None else {"ours": ours}
    g = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 3, s, s, generator=g) * 2 - 1
    y = torch.randint(0, CLASSES, (BATCH,), generator=g)
    x_T = torch.randn(BATCH, 3, s, s, generator=g)
    return Setup(cfg, device, models, (x.to(device), y.to(device)), x_T.to(device))


def train_rows(b: Setup) -> list[dict]:
    """One row per autocast setting, the app's first: seconds per optimiser step, img/s in `sizes`."""
    app_amp, s = use_bf16(b.device, b.cfg.diffusion_train.amp), b.cfg.data.image_size
    # Optimiser steps per timed call and repeats: about a minute for both rows on 2 CPU cores.
    steps, repeats = (20, 5) if b.device.type == "cuda" else (3, 5)
    rows = []
    # Where bf16 is emulated (no AVX512-BF16 / AMX) the app trains in float32 and a bf16 row would only time the
    # emulation (~10x slower), so there is one row.
    settings = (app_amp, not app_amp) if native_bf16(b.device.type) else (False,)
    for amp in settings:
        label = "bf16 autocast" if amp else "float32"
        setting = "as the app trains" if amp == app_amp else "the other setting"
        one = {k: _train_step(m, b.batch, b.cfg, amp, b.device) for k, m in b.models.items()}
        t = paired_times({k: (lambda f=f: [f() for _ in range(steps)]) for k, f in one.items()}, repeats)
        rows.append(
            _row(
                f"art: diffusion training step ({label}, {setting})",
                f"batch {BATCH}, {s} px RGB, {CLASSES} classes, AdamW + clip, {b.describe()}",
                t["ours"] / steps, t["peer"] / steps if "peer" in t else None, BATCH, *b.counts, amp,
            )
        )  # fmt: skip
    return rows


def sample_row(b: Setup) -> dict:
    """Seconds for 50 guided DDIM steps at batch 64 under the app's autocast setting, img/s in `sizes`."""
    amp, y = use_bf16(b.device, b.cfg.diffusion_train.amp), b.batch[1]

    def draw(model: nn.Module, steps: int = SAMPLE_STEPS) -> None:
        with bf16_autocast(b.device, amp):
            model.sample(BATCH, cond=y, steps=steps, eta=0.0, guidance=GUIDANCE, x_T=b.x_T)

    for m in b.models.values():
        draw(m, steps=2)  # warm-up: a full 50-step call would cost as much as a timed one
    repeats = 5 if b.device.type == "cuda" else 3
    t = paired_times({k: (lambda m=m: draw(m)) for k, m in b.models.items()}, repeats, warmup=False)
    return _row(
        f"art: diffusion sampling, {SAMPLE_STEPS} DDIM steps, guidance {GUIDANCE}",
        f"batch {BATCH} (net batch {2 * BATCH}: cond + null class), {b.cfg.data.image_size} px, "
        f"{'bf16 autocast' if amp else 'float32'} as the app samples, {b.describe()}",
        t["ours"], t.get("peer"), BATCH, *b.counts, amp,
    )  # fmt: skip


def run() -> list[dict]:
    b = setup()
    return [*train_rows(b), sample_row(b)]


if __name__ == "__main__":
    from benchmarks.harness import markdown_table

    print(markdown_table(run()))
