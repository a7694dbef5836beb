"""Gaussian diffusion: noise schedules and the `Diffusion` family (eps- or v-prediction training, DDPM/DDIM sampling).

`make_schedule` builds a `NoiseSchedule` (linear, Ho et al. 2020; cosine, Nichol & Dhariwal 2021), computed in
float64 and stored as float32 buffers that follow the module's device. `Diffusion` wraps a denoising net called
as `net(x_t (B, *shape), t (B,) long, y (B,) long | None) -> eps or v (B, *shape)` (e.g. `shared.nets.UNet`):
its `forward` is the simple loss of Ho et al. Algorithm 1 (on v when prediction="v"), with labels dropped to the
null class (index `num_classes`) with probability `cond_drop_prob` so that one net learns both the conditional and
the unconditional model for classifier-free guidance (Ho & Salimans 2022). Sampling and DDIM inversion delegate
the update rules to the pure functions in `shared.sampling.diffusion`.
Data are expected already scaled to about [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import ConfigError
from shared.sampling.diffusion import (
    cfg_combine,
    check_prediction,
    ddim_invert_loop,
    ddim_timesteps,
    guidance_at,
    sample_loop,
    v_target,
)

SCHEDULES = ("cosine", "linear")


class NoiseSchedule(nn.Module):
    """betas (T,), alphas_cumprod (T,) = prod_{s<=t} (1 - beta_s), as non-persistent float32 buffers.

    Timesteps are indexed 0..T-1; x_t = sqrt(alphas_cumprod[t]) x_0 + sqrt(1 - alphas_cumprod[t]) eps.
    """

    def __init__(self, betas: torch.Tensor, kind: str = "custom") -> None:
        super().__init__()
        betas = betas.to(torch.float64)
        if betas.dim() != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ConfigError("a noise schedule needs a 1-D tensor of betas strictly inside (0, 1)")
        self.kind, self.timesteps = kind, len(betas)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)  # float64 for accuracy over 1000 products
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0) (Ho et al. eq. 4): x0 (B, ...), t (B,) long, noise (B, ...) -> x_t (B, ...)."""
        a = self.alphas_cumprod[t].view(-1, *([1] * (x0.dim() - 1)))  # (B, 1, ..., 1)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise


def make_schedule(kind: str = "cosine", timesteps: int = 1000) -> NoiseSchedule:
    """A NoiseSchedule of `timesteps` steps.

    "linear": betas linear from 1e-4 to 0.02 for T = 1000 (Ho et al. 2020, sec. 4), both ends scaled by 1000 / T
    for other T as in improved-diffusion so the total noise stays comparable. "cosine": alpha_bar(t) = f(t) / f(0),
    f(t) = cos(((t / T + s) / (1 + s)) pi / 2)^2, s = 0.008, betas_t = 1 - alpha_bar(t+1) / alpha_bar(t) clipped at
    0.999 (Nichol & Dhariwal 2021, eq. 17).
    """
    if timesteps < 2:
        raise ConfigError(f"timesteps={timesteps} is too few; use e.g. 1000")
    T = int(timesteps)
    if kind == "linear":
        scale = 1000.0 / T
        betas = torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64).clamp(max=0.999)
    elif kind == "cosine":
        s = 0.008
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2  # (T+1,)
        alpha_bar = f / f[0]
        betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    else:
        raise ConfigError(f"unknown noise schedule {kind!r}; use one of {list(SCHEDULES)}")
    return NoiseSchedule(betas, kind)


class Diffusion(nn.Module):
    """Denoising diffusion family around a denoiser `net(x_t, t, y)` that predicts eps or v.

    Args:
        net: the denoiser; takes y=None (unconditional / null class) and, if num_classes > 0, labels.
        sample_shape: shape of one sample without the batch, e.g. (1, 8, 8).
        schedule, timesteps: the noise schedule ("cosine" or "linear") and its length T.
        num_classes: 0 for unconditional; otherwise batches are (x, y) with y (B,) in 0..num_classes-1.
        cond_drop_prob: probability of training a label as the null class (classifier-free guidance).
        prediction: what the net predicts: "eps", the noise (Ho et al. 2020), or "v" = sqrt(a) eps - sqrt(1 - a) x0
            (Salimans & Ho 2022), better conditioned at high noise and for few-step samplers
            (see shared.sampling.diffusion).
        snr_gamma: 0 for the simple loss (every t weighted alike in the net's own target); > 0 for Min-SNR-gamma
            weighting (Hang et al. 2023, "Efficient diffusion training via Min-SNR weighting strategy"): each
            example's loss is scaled so that, read as a loss on x0, its weight is min(SNR_t, gamma). Low-noise
            steps (SNR_t >> gamma), easy and in conflict with the rest, stop dominating the gradient; gamma = 5 is
            the paper's choice. The weight on the net's target is min(SNR, gamma) / SNR for eps and
            min(SNR, gamma) / (SNR + 1) for v, with SNR_t = abar_t / (1 - abar_t).
    """

    objectives = {"loss": 1}

    def __init__(
        self,
        net: nn.Module,
        sample_shape: Sequence[int],
        schedule: str = "cosine",
        timesteps: int = 1000,
        num_classes: int = 0,
        cond_drop_prob: float = 0.1,
        prediction: str = "eps",
        snr_gamma: float = 0.0,
    ) -> None:
        super().__init__()
        self.prediction = check_prediction(prediction)
        if not snr_gamma >= 0:
            raise ConfigError(f"snr_gamma={snr_gamma} must be >= 0 (0 = the simple loss; 5 is Min-SNR's usual gamma)")
        self.snr_gamma = float(snr_gamma)
        if not 0.0 <= cond_drop_prob <= 1.0:
            raise ConfigError(f"cond_drop_prob={cond_drop_prob} must be in [0, 1]; 0.1 is usual")
        if num_classes < 0:
            raise ConfigError(f"num_classes={num_classes} must be >= 0 (0 = unconditional)")
        self.net = net
        self.sample_shape = tuple(int(d) for d in sample_shape)
        self.schedule = make_schedule(schedule, timesteps)
        self.num_classes = int(num_classes)
        self.cond_drop_prob = float(cond_drop_prob)
        self.stats: dict[str, torch.Tensor] = {}

    def objective_parameters(self, name: str = "loss") -> list[nn.Parameter]:
        if name not in self.objectives:
            raise ValueError(f"Diffusion has objectives {list(self.objectives)}, not {name!r}")
        return list(self.net.parameters())

    def forward(self, batch: Sequence[torch.Tensor], objective: str = "loss") -> torch.Tensor:
        """Simple loss ||target - net(x_t, t, y)||^2 averaged over elements (Ho et al. Algorithm 1), the target
        being eps or v = sqrt(a_t) eps - sqrt(1 - a_t) x0 (`prediction`).

        batch: (x0,) or (x0, y) with x0 (B, *sample_shape) scaled to about [-1, 1] and y (B,) long labels (ignored
        when num_classes = 0). t ~ U{0..T-1}, eps ~ N(0, I) and the label dropout use torch's global RNG.
        """
        if objective not in self.objectives:
            raise ValueError(f"Diffusion has objectives {list(self.objectives)}, not {objective!r}")
        x0 = batch[0]
        b = x0.shape[0]
        t = torch.randint(0, self.schedule.timesteps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.q_sample(x0, t, noise)
        y = None
        if self.num_classes > 0:
            null = torch.full((b,), self.num_classes, dtype=torch.long, device=x0.device)
            if len(batch) > 1 and batch[1] is not None:
                drop = torch.rand(b, device=x0.device) < self.cond_drop_prob
                y = torch.where(drop, null, batch[1].long())
            else:
                y = null
        abar = self.schedule.alphas_cumprod[t]  # (B,)
        if self.prediction == "eps":
            target = noise
        else:
            target = v_target(x0, noise, abar.view(-1, *([1] * (x0.dim() - 1))))
        if not self.snr_gamma:
            loss = F.mse_loss(self.net(x_t, t, y), target)
            self.stats = {"mse": loss.detach()}
            return loss
        per_example = (self.net(x_t, t, y) - target).pow(2).flatten(1).mean(dim=1)  # (B,)
        loss = (self.loss_weights(abar) * per_example).mean()
        self.stats = {"mse": per_example.detach().mean(), "weighted": loss.detach()}
        return loss

    def loss_weights(self, abar: torch.Tensor) -> torch.Tensor:
        """Min-SNR-gamma weights (B,) on the net's own target for examples at abar_t (B,); ones when snr_gamma = 0."""
        if not self.snr_gamma:
            return torch.ones_like(abar)
        snr = abar / (1.0 - abar).clamp_min(1e-20)
        clipped = snr.clamp(max=self.snr_gamma)
        return clipped / snr.clamp_min(1e-20) if self.prediction == "eps" else clipped / (snr + 1.0)

    # ---- sampling -------------------------------------------------------------------------------------------

    def _labels(self, cond, n: int, device: torch.device) -> torch.Tensor | None:
        """cond (int, sequence or (n,) tensor of class ids) -> (n,) long on `device`, or None."""
        if cond is None:
            return None
        if self.num_classes == 0:
            raise ConfigError("this diffusion model is unconditional (num_classes=0); sample with cond=None")
        y = torch.as_tensor(cond, dtype=torch.long, device=device)
        if y.dim() == 0:
            y = y.expand(n)
        if y.shape != (n,):
            raise ConfigError(f"cond must be one class id or {n} of them, got shape {tuple(y.shape)}")
        if bool(((y < 0) | (y >= self.num_classes)).any()):
            raise ConfigError(f"class ids must be in 0..{self.num_classes - 1}, got {sorted(set(y.tolist()))}")
        return y

    def net_outputs(
        self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, guidance: float = 1.0
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The net's eps or v for x_t (B, ...) at t (B,) given labels y (B,) | None, uncombined: one output
        (B, ...) when y=None or w=1 (one net call), else the pair (out_cond, out_uncond) of the labels and the
        null class, from one batched call of size 2B. `sample` hands the pair to the fused step, which combines it.
        """
        if y is None or guidance == 1.0:
            return self.net(x_t, t, y)
        null = torch.full_like(y, self.num_classes)
        out = self.net(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))  # (2B, ...)
        out_cond, out_uncond = out.chunk(2)
        return out_cond, out_uncond

    def guided(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, guidance: float = 1.0) -> torch.Tensor:
        """The net's eps or v for x_t (B, ...) at t (B,) given labels y (B,) | None, with classifier-free guidance
        weight w (the combination is linear, so it reads the same for eps and v): eps_u + w (eps_c - eps_u)
        from `net_outputs` (one net call when y=None or w=1).
        """
        out = self.net_outputs(x_t, t, y, guidance)
        return cfg_combine(*out, guidance) if isinstance(out, tuple) else out

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond=None,
        steps: int = 50,
        sampler: str = "ddim",
        eta: float = 0.0,
        guidance: float = 1.0,
        generator: torch.Generator | None = None,
        x_T: torch.Tensor | None = None,
        clip_x0: bool = True,
        backend: str = "auto",
        guidance_interval: tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """Draw n samples (n, *sample_shape) with `steps` evenly spaced timesteps (steps = T: the full chain).

        cond: class id(s) or None (unconditional = null class). sampler: "ddim" (Song et al. 2021, eq. 12, with
        eta), "ddpm" (ancestral), "dpm++2m" (DPM-Solver++ 2M, Lu et al. 2022) or "dpm++2m-sde". guidance: CFG weight w
        (1 = plain conditional); guidance_interval (sigma_lo, sigma_hi): guide only the steps whose noise level
        sigma_t = sqrt((1 - abar_t) / abar_t) lies in (sigma_lo, sigma_hi], the others are plain conditional steps
        with one net call (`guidance_at`; None = every step). x_T: starting noise (n, *sample_shape); otherwise
        drawn from `generator`, which also supplies every later noise draw.
        clip_x0: clip each x0 estimate to [-1, 1]. The net runs in eval mode; the previous mode is restored.
        Each step (guidance combine, x0 estimate, update, noise) is one fused pass: backend "auto" runs its
        Triton kernel on CUDA (noise then from the kernel's Philox stream, seeded from `generator`), "torch" the
        PyTorch reference (`shared.kernels.diffusion_step`).
        """
        device = self.schedule.alphas_cumprod.device
        y = self._labels(cond, n, device)
        if x_T is None:
            x_T = torch.randn((n, *self.sample_shape), generator=generator, device=device)
        elif tuple(x_T.shape) != (n, *self.sample_shape):
            raise ValueError(f"x_T must have shape {(n, *self.sample_shape)}, got {tuple(x_T.shape)}")
        timesteps = ddim_timesteps(self.schedule.timesteps, steps)
        ab = self.schedule.alphas_cumprod.detach().cpu()
        # sample_loop calls the net once per step, in timestep order: each call takes the next step's weight
        weights = iter([guidance_at(float(ab[t]), guidance, guidance_interval) for t in timesteps.tolist()])
        was_training = self.training
        self.eval()
        try:
            return sample_loop(
                lambda x, t: self.net_outputs(x, t, y, next(weights)),
                x_T,
                self.schedule,
                timesteps,
                sampler,
                eta,
                generator,
                clip_x0,
                self.prediction,
                guidance=guidance,
                backend=backend,
            )
        finally:
            self.train(was_training)

    @torch.no_grad()
    def ddim_invert(self, x0: torch.Tensor, cond=None, steps: int = 50, guidance: float = 1.0) -> torch.Tensor:
        """Deterministic DDIM inversion x0 (n, *sample_shape) -> x_T (n, *sample_shape), for interpolation.

        `sample(n, x_T=..., steps=steps, eta=0, cond=cond, guidance=guidance, clip_x0=False)` approximately
        reconstructs x0 (exactly as steps -> T for a smooth net).
        """
        y = self._labels(cond, x0.shape[0], x0.device)
        timesteps = ddim_timesteps(self.schedule.timesteps, steps).flip(0)  # increasing
        was_training = self.training
        self.eval()
        try:
            return ddim_invert_loop(
                lambda x, t: self.guided(x, t, y, guidance), x0, self.schedule, timesteps, self.prediction
            )
        finally:
            self.train(was_training)
