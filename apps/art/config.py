"""The art app's one config; `python -m apps.art <command> --help` is derived from it.

Presets (`--preset`):
    default    emoji at 32 px on the CPU: diffusion (main), VAE and GAN (`make art`): 24 min on 2 cores with native
               bf16 (AVX512-BF16 / AMX), 60 min on 2 AVX2-only cores (float32)
    portraits  the 238 Wesnoth portraits at 64 px, a GPU configuration (hours on a CPU)
    portraits-cpu  the portraits at 32 px on the CPU with the default budgets (~20 min)
    demo       emoji at 32 px with short budgets (`make demo`, ~6 min)
    tiny       16 px, a few steps: proves the plumbing (tests)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shared.config import replace
from shared.errors import ConfigError
from shared.sampling.diffusion import PREDICTIONS, SAMPLERS
from shared.training import TrainConfig

MODELS = ("diffusion", "vae", "gan")
PRESETS = ("default", "portraits", "portraits-cpu", "demo", "tiny")


@dataclass
class DataConfig:
    """Which images, at what size, and the held-out split."""

    collection: str = "emoji"
    """A default collection prepared from Debian packages: emoji or portraits (see data/art/README.md)."""
    folder: str = ""
    """Your own folder of images instead (PNG/JPEG/WebP; subfolders = classes); overrides --data.collection."""
    image_size: int = 32
    """Training size in pixels (square); the UNet needs it divisible by 2**(levels - 1)."""
    fit: str = "pad"
    """pad: resize the long side and pad with the background (keeps flags, tall figures and narrow symbols whole);
    crop: resize the short side and centre-crop."""
    background: tuple[int, int, int] = (255, 255, 255)
    """RGB colour that transparent pixels are composited onto."""
    holdout: float = 0.15
    """Fraction of each class kept out of training: the real-vs-real reference of the metrics."""
    flip: bool = False
    """Random horizontal flips while training (off for emoji: flags and text are not mirror-symmetric)."""
    seed: int = 0
    """Seed of the held-out split."""

    def __post_init__(self):
        if self.fit not in ("crop", "pad"):
            raise ConfigError(f"--data.fit must be crop or pad, got {self.fit!r}")
        if not 0.05 <= self.holdout <= 0.5:
            raise ConfigError(f"--data.holdout={self.holdout} must be in [0.05, 0.5]; 0.15 is usual")
        if self.image_size < 8:
            raise ConfigError(f"--data.image-size={self.image_size} is too small; use 16, 32 or 64")
        if any(not 0 <= c <= 255 for c in self.background) or len(self.background) != 3:
            raise ConfigError(f"--data.background must be three values in 0..255, got {self.background}")


@dataclass
class DiffusionConfig:
    """The main model: a class-conditional UNet trained with DDPM's loss, sampled with DDIM and guidance."""

    base_channels: int = 32
    """UNet width at full resolution."""
    channel_mult: tuple[int, ...] = (1, 2, 2)
    """Width multipliers per resolution level; the image size must be divisible by 2**(levels - 1)."""
    num_res_blocks: int = 1
    """Residual blocks per level."""
    attention_levels: tuple[int, ...] = (2,)
    """Levels with self-attention (0 = full resolution)."""
    dropout: float = 0.0
    """Dropout in the residual blocks. Off by default: the CPU budgets see each image ~70 times, far from
    overfitting (memorisation ratio ~1.2), and dropout slows learning (emoji, 1,800 steps: KID 0.030 without,
    0.038 with 0.1). Long runs on small sets (the portraits presets) keep 0.1."""
    prediction: str = "v"
    """What the UNet predicts: v (velocity, Salimans & Ho 2022: keeps the global layout right with short training
    and few sampling steps) or eps (the noise, as DDPM)."""
    snr_gamma: float = 0.0
    """Min-SNR-gamma loss weighting (Hang et al. 2023; 5 is usual): 0 = the simple loss."""
    schedule: str = "cosine"
    """Noise schedule: cosine or linear."""
    timesteps: int = 1000
    """Training timesteps T."""
    cond_drop: float = 0.1
    """Probability of training a label as the null class (classifier-free guidance)."""
    sampler: str = "dpm++2m-sde"
    """dpm++2m-sde (SDE-DPM-Solver++(2M), Lu et al. 2022: second order, with fresh noise each step), dpm++2m (its
    deterministic ODE form), ddim (Song et al. 2021, with --diffusion.eta) or ddpm (ancestral). On the default
    model, the same weights and 280 samples, seeds 0 / 1: dpm++2m-sde KID 0.010 / 0.007, SWD-32 26 / 23;
    dpm++2m 0.019 / 0.008, SWD-32 46 / 42 (an ODE solve carries the briefly trained net's errors to the end and
    blurs the fine detail); ddpm needs 250 steps for KID 0.011. Interpolation always decodes with DDIM, the
    inverse of its inversion."""
    sample_steps: int = 50
    """Sampler steps (net evaluations, twice that with guidance) per image."""
    guidance: float = 1.5
    """Classifier-free guidance weight w (1 = plain conditional, 0 = unconditional), on the steps of the interval
    below."""
    guidance_sigma_min: float = 0.0
    """Guide only the sampler steps whose noise level sigma_t = sqrt((1 - abar_t) / abar_t) is above this ..."""
    guidance_sigma_max: float = 0.0
    """... and at most this (0 = no upper limit); the other steps are plain conditional, one net call each
    (guidance in a limited interval, Kynkaanniemi et al. 2024). Default: every step guided. Guidance at high noise
    pulls layout and colours towards class templates: leaving it out lowers SWD-16 but raises KID. On the 3,300-step
    `make art` model (float32, AVX2 CPU), paired draws of 280 (seeds 0 / 2): w 1.5 on every step KID 0.019 / 0.015,
    SWD-16 32.6 / 38.4, class accuracy 0.68; w 1.5 on sigma <= 2 (the last 35 of 50 steps) 0.021 / 0.038, 24.3 /
    32.3; w 2 there 0.020 / 0.034, 25.8 / 32.7, 0.63; w 1 0.023 / 0.042, 23.4 / 32.7. On a 1,650-step model w 2 on
    sigma <= 2 against w 1.5 on every step: KID 0.014 / 0.034 against 0.023 / 0.027, SWD-16 23.2 / 33.5 against 33.9
    / 44.6, class accuracy 0.62 against 0.65. KID (whose bar the model nears) and class accuracy favour guiding
    every step."""
    eta: float = 0.0
    """DDIM eta (0 = deterministic, 1 = DDPM-like)."""
    clip_x0: bool = False
    """Clip each x0 estimate to [-1, 1] while sampling. Off: v-prediction keeps the estimates in range, and clipping
    pulls pixels at the edge of the range (the emoji's white background) inwards: one default model gave KID 0.028
    clipped and 0.023 not, with 5.9% of its samples' pixels pure white instead of 1.3% (real images: 31%)."""

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--diffusion.sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if self.prediction not in PREDICTIONS:
            raise ConfigError(f"--diffusion.prediction {self.prediction!r}: choose v or eps")
        if (
            self.guidance_sigma_min < 0
            or self.guidance_sigma_max < 0
            or (0 < self.guidance_sigma_max <= self.guidance_sigma_min)
        ):
            raise ConfigError(
                f"--diffusion.guidance-sigma-min {self.guidance_sigma_min} / -max {self.guidance_sigma_max}: use "
                "0 <= min < max (max 0 = no upper limit)"
            )

    @property
    def guidance_interval(self) -> tuple[float, float] | None:
        """(sigma_lo, sigma_hi] of the guided steps, None when every step is guided."""
        if self.guidance_sigma_min == 0 and self.guidance_sigma_max == 0:
            return None
        return self.guidance_sigma_min, self.guidance_sigma_max or math.inf


@dataclass
class VAEConfig:
    """The fast baseline: a class-conditional convolutional VAE with a Gaussian likelihood."""

    latent_dim: int = 64
    """Latent width."""
    channels: tuple[int, ...] = (32, 64, 128)
    """Encoder widths (one stride-2 halving each); the decoder mirrors them."""
    feature_dim: int = 256
    """Encoder feature width before the latent head."""
    beta: float = 1.0
    """KL weight (1 = the ELBO)."""


@dataclass
class GANConfig:
    """A class-conditional GAN with DiffAugment for few-shot data (projection discriminator, R1)."""

    latent_dim: int = 64
    """Latent noise width."""
    channels: tuple[int, ...] = (128, 64, 32)
    """Generator widths from the bottleneck up (the discriminator mirrors them)."""
    augment: str = "color,translation,cutout"
    """DiffAugment policy applied to real and fake images before the discriminator."""
    r1: float = 1.0
    """R1 penalty weight on real images."""


@dataclass
class EvalConfig:
    """How samples are drawn and measured (`evaluate`)."""

    n_samples: int = 0
    """Samples per model for KID/SWD/memorisation (0 = as many as held-out images, so every set has one size)."""
    draws: int = 2
    """Independent sets of n samples per model (seeds seed, seed+2, seed+3, ...): its KID and SWD are the means
    over the sets, with their sd across sets beside them. One set of a few hundred is a noisy reading: three sets
    of 280 from one diffusion model gave KID 0.019, 0.008 and 0.008 (emoji, 2026-12-07)."""
    per_class: int = 16
    """Samples per class for the class-recognition check (the first 8 of each class make the gallery)."""
    classifier_steps: int = 800
    """Training steps of the small CNN that recognises classes (trained on the real training images)."""
    noise_sigma: float = 0.1
    """The 'noise' degradation: Gaussian noise of this sd (pixel values in [0, 1]) on held-out images."""
    blur_sigma: float = 1.0
    """The 'blur' degradation: Gaussian blur of this sd in pixels on held-out images."""
    interp_pairs: int = 4
    """Interpolation strips per model."""
    interp_steps: int = 8
    """Images per interpolation strip (endpoints included)."""
    seed: int = 0
    """Seed of every evaluation draw."""

    def __post_init__(self):
        if self.draws < 1:
            raise ConfigError(f"--eval.draws={self.draws}: use 1 or more sets of samples per model (2 is usual)")
        if self.per_class < 1 or self.n_samples < 0:
            raise ConfigError("--eval.per-class must be >= 1 and --eval.n-samples >= 0 (0 = the held-out count)")


def _diffusion_train() -> TrainConfig:
    # bf16 autocast raises a CPU's UNet throughput where the CPU has AMX / AVX512-BF16 (measured at 32 px on 2
    # cores: 250 vs 119 images/s with AMX, 135 vs 85 on an AVX512-BF16 EPYC); the loss stays float32. A CPU without
    # them (AVX2 only: a Zen 3 EPYC ran 3.2 images/s emulated, 41 in float32) trains in float32: the loop checks.
    # lr 2e-3 (with dropout 0) learns fastest of the settings tried on the emoji: at 1,800 steps of 64, KID 0.027
    # against 0.030 at 1e-3; 4e-3 no better. Batches of 32 run as many images/s on 2 cores as batches of 64, and
    # twice the steps over the same images gave KID 0.019 against 0.023 (2026-12-07, one seed each, unclipped
    # sampling); `make art` with them gave 0.024, so the gain is within run-to-run spread. The EMA's warm-up
    # (1 + n) / (10 + n) stays under 0.999 all run: it averages about the last ninth of the steps, the best of
    # three widths tried. 3,300 steps, not 3,600: evaluating two sets of samples per model made `make art` 25 min
    # 22 s on a fresh clone with 3,600 (this machine at its slower, 3.7 steps/s); each progress grid (54 samples)
    # costs ~15 s, so there are three.
    return TrainConfig(
        steps=3300, batch_size=32, lr=2e-3, warmup_steps=200, lr_schedule="cosine", ema_decay=0.999, amp=True,
        checkpoint_every=550, log_every=50, eval_every=1100,
    )  # fmt: skip


# The VAE and GAN train under bf16 autocast too (2 cores of the EPYC of 2026-12-07: VAE 800 steps 102 s against
# 121 s in float32, GAN 1,000 steps 206 s against 251 s). The GAN is the cheap baseline: 600 steps.
def _vae_train() -> TrainConfig:
    return TrainConfig(
        steps=800, batch_size=64, lr=1e-3, lr_schedule="cosine", checkpoint_every=400, log_every=25, eval_every=400,
        amp=True,
    )  # fmt: skip


def _gan_train() -> TrainConfig:
    return TrainConfig(
        steps=600, batch_size=64, lr=2e-4, betas=(0.0, 0.99), ema_decay=0.999, checkpoint_every=300, log_every=25,
        eval_every=300, grad_clip=0.0, amp=True,
    )  # fmt: skip


@dataclass
class ArtConfig:
    """One run of the art app: data, the three models with their training budgets, and evaluation."""

    run_name: str = "default"
    """Run folder runs/art/<run-name>/; the same name resumes, a new name starts fresh."""
    runs_dir: str = "runs"
    """Root of the run folders."""
    preset: str = "default"
    """The preset these values came from (see --preset)."""
    models: tuple[str, ...] = MODELS
    """Models to train and compare: diffusion, vae, gan."""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    diffusion_train: TrainConfig = field(default_factory=_diffusion_train)
    vae_train: TrainConfig = field(default_factory=_vae_train)
    gan_train: TrainConfig = field(default_factory=_gan_train)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        bad = [m for m in self.models if m not in MODELS]
        if bad or not self.models:
            raise ConfigError(f"--models {','.join(self.models)}: choose from {','.join(MODELS)}")

    def train_config(self, kind: str) -> TrainConfig:
        return getattr(self, f"{kind}_train")


def preset(name: str) -> ArtConfig:
    """The named preset (see the module docstring)."""
    if name == "default":
        return ArtConfig()
    if name == "demo":
        base = ArtConfig(preset="demo")
        return replace(
            base,
            diffusion_train=replace(base.diffusion_train, steps=800, eval_every=400),
            vae_train=replace(base.vae_train, steps=200, eval_every=100, checkpoint_every=100),
            gan_train=replace(base.gan_train, steps=200, eval_every=100, checkpoint_every=100),
            diffusion=replace(base.diffusion, sample_steps=25),
            eval=replace(base.eval, per_class=8, classifier_steps=300, interp_pairs=2, draws=1),
        )
    if name == "tiny":
        base = ArtConfig(preset="tiny")
        tiny = dict(checkpoint_every=4, log_every=2, eval_every=4, batch_size=16, warmup_steps=0, amp=False)
        return replace(
            base,
            data=replace(base.data, image_size=16),
            diffusion=DiffusionConfig(base_channels=8, channel_mult=(1, 2), attention_levels=(1,), sample_steps=4),
            vae=VAEConfig(latent_dim=8, channels=(8, 16), feature_dim=32),
            gan=GANConfig(latent_dim=8, channels=(16, 8)),
            diffusion_train=replace(base.diffusion_train, steps=8, **tiny),
            vae_train=replace(base.vae_train, steps=8, **tiny),
            gan_train=replace(base.gan_train, steps=8, **tiny),
            eval=EvalConfig(per_class=2, classifier_steps=10, interp_pairs=1, interp_steps=3),
        )
    if name in ("portraits", "portraits-cpu"):
        base = ArtConfig(preset=name)
        data = replace(base.data, collection="portraits", flip=True, holdout=0.15)
        # 238 images: a run sees each one hundreds of times, so dropout stays on (measured settings of 2026-11).
        diffusion = replace(base.diffusion, dropout=0.1)
        if name == "portraits-cpu":
            return replace(base, data=data, diffusion=diffusion, diffusion_train=replace(base.diffusion_train, lr=1e-3))
        # 64 px on a GPU: a DDPM-CIFAR-sized UNet (35M parameters), 4 levels, attention at 16 px.
        return replace(
            base,
            data=replace(data, image_size=64),
            diffusion=replace(
                diffusion, base_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2, attention_levels=(2,)
            ),
            vae=replace(base.vae, channels=(64, 128, 256, 512)),
            gan=replace(base.gan, channels=(512, 256, 128, 64)),
            diffusion_train=replace(
                base.diffusion_train, steps=30_000, batch_size=64, lr=2e-4, eval_every=5000, checkpoint_every=2000
            ),  # fmt: skip
            vae_train=replace(base.vae_train, steps=10_000, eval_every=2500, checkpoint_every=2000),
            gan_train=replace(base.gan_train, steps=20_000, eval_every=5000, checkpoint_every=2000),
        )
    raise ConfigError(f"unknown --preset {name!r}: choose one of {', '.join(PRESETS)}")
