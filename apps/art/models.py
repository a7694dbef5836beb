"""The three image models built from the shared core, and how each one samples and interpolates.

    diffusion  shared.nets.UNet (v or eps prediction, class embedding + null class) in shared.generative.Diffusion:
               DDPM's simple loss (Ho et al. 2020), DDIM sampling (Song et al. 2021) with classifier-free
               guidance (Ho & Salimans 2022), EMA weights.
    vae        shared.nets.ConvEncoder / ConvDecoder (GroupNorm) in shared.generative.VAE, class-conditional,
               Gaussian likelihood with a learned scale (Kingma & Welling 2014).
    gan        a DCGAN-style generator (nearest upsampling + conv, BatchNorm, ReLU, tanh; Radford et al. 2016) and
               a strided-conv critic with a projection head (Miyato & Koyama 2018), non-saturating loss with R1
               (Mescheder et al. 2018) and DiffAugment (Zhao et al. 2020) for few-shot data.

Images enter the models scaled to [-1, 1] (apps.art.data.to_unit); everything leaving `generate` and the
interpolation functions is uint8 (N, 3, S, S), the format of the metrics and galleries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from apps.art.config import ArtConfig
from apps.art.data import from_unit, to_unit
from shared.errors import ConfigError
from shared.generative.diffusion import Diffusion
from shared.generative.gan import GAN
from shared.generative.vae import VAE
from shared.nets.conv import ConvDecoder, ConvEncoder
from shared.nets.unet import UNet
from shared.runtime import bf16_autocast
from shared.sampling.interpolation import interpolation_path, slerp
from shared.training import checkpoint as ckpt

GAN_FEATURES = 256  # width of the critic's feature vector (the input of the GAN family's head)
# Images per sampling batch on a CPU. Guidance doubles the rows the UNet sees; the default 32 px UNet runs 455
# rows/s at 64 rows and 313 at 512 (2-core EPYC, bf16), so small batches sample ~1.4x faster than 256.
CPU_BATCH = 32


def build_model(kind: str, cfg: ArtConfig, num_classes: int) -> nn.Module:
    """The `kind` model for cfg.data.image_size RGB images and `num_classes` classes (labels 0..K-1)."""
    s = cfg.data.image_size
    if kind == "diffusion":
        d = cfg.diffusion
        net = UNet(
            3,
            base_channels=d.base_channels,
            channel_mult=d.channel_mult,
            num_res_blocks=d.num_res_blocks,
            attention_levels=d.attention_levels,
            num_classes=num_classes,
            dropout=d.dropout,
        )
        return Diffusion(
            net, (3, s, s), schedule=d.schedule, timesteps=d.timesteps, num_classes=num_classes,
            cond_drop_prob=d.cond_drop, prediction=d.prediction, snr_gamma=d.snr_gamma,
        )  # fmt: skip
    if kind == "vae":
        v = cfg.vae
        enc = ConvEncoder(3, s, v.feature_dim, channels=v.channels, act="silu", norm="group")  # -> (B, feature)
        dec = ConvDecoder(v.latent_dim + num_classes, 3, s, channels=tuple(reversed(v.channels)), norm="group")
        return VAE(enc, dec, v.feature_dim, v.latent_dim, likelihood="gaussian", beta=v.beta, num_classes=num_classes)
    if kind == "gan":
        g = cfg.gan
        gen = nn.Sequential(
            ConvDecoder(g.latent_dim + num_classes, 3, s, channels=g.channels, act="relu", norm="batch"), nn.Tanh()
        )  # (B, latent + K) -> (B, 3, S, S) in [-1, 1]
        disc = nn.Sequential(
            ConvEncoder(3, s, GAN_FEATURES, channels=tuple(reversed(g.channels)), act="leaky_relu"), nn.LeakyReLU(0.2)
        )  # (B, 3, S, S) -> (B, GAN_FEATURES)
        return GAN(
            gen, disc, g.latent_dim, GAN_FEATURES, loss="nonsaturating", augment=g.augment or None,
            num_classes=num_classes, r1_weight=g.r1,
        )  # fmt: skip
    raise ConfigError(f"unknown model {kind!r}; choose diffusion, vae or gan")


@dataclass
class Trained:
    """A trained model ready to sample: the weights to sample from (EMA where kept), its kind and classes."""

    kind: str
    model: nn.Module
    classes: list[str]
    step: int
    amp: bool

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_trained(kind: str, cfg: ArtConfig, folder, device: torch.device) -> Trained:
    """Rebuild and load the newest valid checkpoint in `folder` (safetensors; EMA weights when present)."""
    chosen = ckpt.latest_valid(folder)
    if chosen is None:
        raise ConfigError(
            f"no {kind} checkpoint in {folder}; run `python -m apps.art train --run-name {cfg.run_name} "
            f"--models {kind}` first"
        )
    classes = list(chosen.config.get("classes") or [])
    if not classes:
        raise ConfigError(f"{chosen.path}: the checkpoint does not record its classes; retrain the model")
    model = build_model(kind, cfg, len(classes))
    chosen.load_model(model, ema=chosen.has_ema)
    model.to(device).eval()
    return Trained(kind, model, classes, chosen.step, cfg.train_config(kind).amp)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def generate(
    trained: Trained, labels: torch.Tensor, cfg: ArtConfig, seed: int = 0, batch: int | None = None, guidance=None
) -> torch.Tensor:
    """One image per label: labels (N,) long -> uint8 (N, 3, S, S); all noise from a generator seeded `seed`.

    Diffusion samples with cfg.diffusion's sampler, steps, eta, guidance (or `guidance` when given) and clip_x0,
    under bf16 autocast when the model trained with it; the VAE decodes prior draws to its mean; the GAN maps
    N(0, I).
    `batch` images go through the net at once (default CPU_BATCH on a CPU, 256 on a GPU).
    """
    model, device = trained.model, _device(trained.model)
    batch = batch or (CPU_BATCH if device.type == "cpu" else 256)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    out = []
    for chunk in labels.split(batch):
        y = chunk.to(device)
        with bf16_autocast(device, trained.amp):
            if trained.kind == "diffusion":
                d = cfg.diffusion
                x = model.sample(
                    len(y), cond=y, steps=d.sample_steps, sampler=d.sampler, eta=d.eta, generator=gen,
                    guidance=d.guidance if guidance is None else float(guidance), clip_x0=d.clip_x0,
                    guidance_interval=d.guidance_interval,
                )  # fmt: skip
            elif trained.kind == "vae":
                x = model.sample(len(y), cond=y, generator=gen, mean=True)
            else:
                x = model.sample(len(y), cond=y, generator=gen)
        out.append(from_unit(x.float().cpu()))
    return torch.cat(out)


@torch.no_grad()
def interpolate(
    trained: Trained, x_a: torch.Tensor, x_b: torch.Tensor, labels: torch.Tensor, steps: int, cfg: ArtConfig,
    seed: int = 0,
) -> torch.Tensor:  # fmt: skip
    """Paths between pairs: x_a, x_b uint8 (P, 3, S, S) (real images; the GAN, which has no encoder, uses them
    only for their count), labels (P,) -> uint8 (P, steps, 3, S, S), endpoints included.

    diffusion: DDIM inversion of both images (eta 0, conditional on the label, no guidance), slerp between the
    two inverted noises (flattened), decoded with the same deterministic DDIM chain (Song et al. 2021, sec. 4.3).
    vae: slerp between the posterior means. gan: slerp between two N(0, I) draws of a generator seeded `seed`.
    """
    model, device = trained.model, _device(trained.model)
    p = len(labels)
    y = labels.to(device)
    if trained.kind == "gan":
        gen = torch.Generator(device=device).manual_seed(int(seed))
        z = torch.randn(2, p, model.latent_dim, generator=gen, device=device)
        path = interpolation_path(z[0], z[1], steps)  # (steps, P, L)
        x = model.sample(steps * p, cond=y.repeat(steps), z=path.reshape(steps * p, -1))
        x = x.reshape(steps, p, *x.shape[1:])
    elif trained.kind == "vae":
        x = model.interpolate(to_unit(x_a).to(device), to_unit(x_b).to(device), steps, cond=y)  # (steps, P, ...)
    else:
        n = cfg.diffusion.sample_steps
        with bf16_autocast(device, trained.amp):
            noise = model.ddim_invert(to_unit(torch.cat([x_a, x_b])).to(device), cond=y.repeat(2), steps=n).float()
        na, nb = noise.chunk(2)  # (P, 3, S, S) each
        t = torch.linspace(0, 1, steps, device=device).view(steps, 1, 1)
        path = slerp(na.flatten(1)[None], nb.flatten(1)[None], t)  # (steps, P, D)
        x_t = path.reshape(steps * p, *na.shape[1:])
        with bf16_autocast(device, trained.amp):
            x = model.sample(
                steps * p, cond=y.repeat(steps), x_T=x_t, steps=n, eta=0.0, guidance=1.0, clip_x0=cfg.diffusion.clip_x0
            )  # fmt: skip
        x = x.float().reshape(steps, p, *x.shape[1:])
    return from_unit(x.float().clamp(-1, 1).cpu()).transpose(0, 1).contiguous()  # (P, steps, 3, S, S)
