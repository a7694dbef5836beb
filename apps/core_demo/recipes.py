"""One recipe per family: the model built from shared nets and families, its training data and its budget.

A recipe is rebuilt from (family, preset, data shape), which is what checkpoints store, so `sample` can
reload any trained family. Budgets were chosen so that `default` reaches the foundation's acceptance figures on
2 CPU cores in a few minutes per family; `tiny` only proves the plumbing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from apps.core_demo.data import bars_and_stripes, load_digits, load_images_npz, ring_of_gaussians
from shared.generative.autoregressive import Autoregressive
from shared.generative.diffusion import Diffusion
from shared.generative.gan import GAN
from shared.generative.rbm import RBM
from shared.generative.vae import VAE
from shared.nets.mlp import MLP
from shared.nets.presets import build_net
from shared.training import StepBatches, TrainConfig

PIXEL_LEVELS = 17  # digits intensities 0..16 become tokens 0..16; token 17 is BOS


@dataclass
class ImageData:
    """Images in [0, 1] (N, 1, S, S) with labels, split into train and held-out."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    source: str

    @property
    def size(self) -> int:
        return self.x_train.shape[-1]


def image_data(path: str = "", seed: int = 0) -> ImageData:
    if path:
        x_tr, y_tr, x_te, y_te = load_images_npz(path, split_seed=seed)
        source = path
    else:
        x_tr, y_tr, x_te, y_te = load_digits(split_seed=seed)
        source = "scikit-learn digits (8x8, 1,797 images, 10 classes)"
    return ImageData(x_tr, y_tr, x_te, y_te, int(max(y_tr.max(), y_te.max())) + 1, source)


class BinarizedBatches(StepBatches):
    """Dynamic binarisation (x ~ Bernoulli(intensity)) for a proper discrete likelihood; draws from the global RNG,
    which checkpoints restore, so resumed runs see the same bits."""

    def batch(self, step: int):
        x, y = super().batch(step)
        return torch.bernoulli(x), y

    def shard(self, rank: int, world_size: int) -> BinarizedBatches:
        return BinarizedBatches(self.tensors, self.batch_size, self.seed, rank, world_size)


@dataclass
class Recipe:
    model: nn.Module
    batches: StepBatches
    train: TrainConfig
    meta: dict = field(default_factory=dict)
    """What the model was built from (stored in checkpoints to rebuild it)."""


# family -> preset -> training budget. lr and batch sizes were tuned on the digits / toy sets.
BUDGETS: dict[str, dict[str, dict]] = {
    "vae": {
        "tiny": dict(steps=30, batch_size=64, lr=2e-3),
        "default": dict(steps=3000, batch_size=128, lr=2e-3, lr_schedule="cosine"),
    },
    "diffusion": {
        "tiny": dict(steps=30, batch_size=32, lr=2e-3, ema_decay=0.9),
        # 1000 steps: label agreement 0.998 (2000 steps: 0.999) at half the cost (2026-12-07, 2-core AVX2 EPYC)
        "default": dict(steps=1000, batch_size=128, lr=2e-3, ema_decay=0.999, warmup_steps=100),
    },
    # GAN: Adam (0.5, 0.999), no clipping, linear decay to 1% (samples sharpen as the step size falls).
    "gan": {
        "tiny": dict(steps=30, batch_size=64, lr=1e-3, betas=(0.5, 0.999), grad_clip=0.0),
        "default": dict(
            steps=14_000,
            batch_size=256,
            lr=1e-3,
            betas=(0.5, 0.999),
            grad_clip=0.0,
            lr_schedule="linear",
            final_lr_ratio=0.01,
        ),
    },
    "rbm": {
        "tiny": dict(steps=30, batch_size=32, lr=5e-3, grad_clip=0.0),
        "default": dict(steps=4000, batch_size=32, lr=5e-3, grad_clip=0.0),
    },
    "ar": {
        "tiny": dict(steps=30, batch_size=32, lr=2e-3),
        "default": dict(steps=1500, batch_size=64, lr=3e-3, lr_schedule="cosine"),
    },
}
CHECKPOINT_EVERY = {"tiny": 10, "default": 500}
LOG_EVERY = {"tiny": 5, "default": 50}

NET_PRESET = {"tiny": "tiny", "default": "small"}  # demo preset -> shared/nets/presets.py size preset


def _size(preset: str, tiny, default):
    return tiny if preset == "tiny" else default


def build_model(family: str, preset: str, meta: dict) -> nn.Module:
    """The model for `family` at `preset`; `meta` carries data-dependent sizes (image size, classes)."""
    net_preset = NET_PRESET[preset]
    if family == "vae":
        s, k, latent, feat = meta["size"], meta["num_classes"], _size(preset, 4, 16), _size(preset, 32, 256)
        enc = build_net("conv_encoder", net_preset, in_channels=1, image_size=s, out_dim=feat)  # -> (B, feat)
        dec = build_net("conv_decoder", net_preset, in_dim=latent + k, out_channels=1, image_size=s)  # logits
        return VAE(enc, dec, feature_dim=feat, latent_dim=latent, likelihood="bernoulli", num_classes=k)
    if family == "diffusion":
        k = meta["num_classes"]
        net = build_net("unet", net_preset, in_channels=1, num_classes=k)  # small: 0.64M parameters
        return Diffusion(
            net,
            sample_shape=(1, meta["size"], meta["size"]),
            schedule="cosine",
            timesteps=1000,
            num_classes=k,
            cond_drop_prob=0.1,
        )
    if family == "gan":
        # Non-saturating loss + R1 penalty (Mescheder et al. 2018): without R1 it collapses onto a few modes.
        # ReLU MLPs with a deeper generator than discriminator give sharp jumps between modes.
        latent, width = 8, _size(preset, 32, 128)
        gen = MLP(latent, 2, hidden=(width,) * 4, act="relu")  # (B, 8) -> (B, 2)
        disc = nn.Sequential(MLP(2, width, hidden=(width,) * 2, act="relu"), nn.ReLU())  # (B, 2) -> (B, width)
        return GAN(gen, disc, latent_dim=latent, feature_dim=width, loss="nonsaturating", r1_weight=0.1)
    if family == "rbm":
        # CD-10 with 16 hidden units: PCD with Adam was unstable on this tiny set (see tests/acceptance).
        return RBM(9, _size(preset, 4, 16), k=_size(preset, 1, 10))
    if family == "ar":
        k, length = meta["num_classes"], meta["size"] ** 2 + 1
        # The small preset narrowed to 128 wide: ~8x cheaper per step than 256 on a CPU, enough for 8x8 digits.
        net = build_net("lstm", net_preset, vocab_size=PIXEL_LEVELS + 1, cond_dim=k, d_model=_size(preset, 32, 128))
        return Autoregressive(net, vocab_size=PIXEL_LEVELS + 1, bos_id=PIXEL_LEVELS, max_len=length, num_classes=k)
    raise ValueError(f"no recipe for family {family!r}")


def images_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, S, S) in [0,1] -> (N, 1 + S*S) long: BOS then the pixel levels 0..16 in raster order."""
    levels = (x.flatten(1) * (PIXEL_LEVELS - 1)).round().long()
    return torch.cat([torch.full((len(x), 1), PIXEL_LEVELS, dtype=torch.long), levels], dim=1)


def tokens_to_images(tokens: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of images_to_tokens (BOS dropped): (N, 1 + S*S) -> (N, 1, S, S) in [0, 1]."""
    return (tokens[:, 1:].clamp(0, PIXEL_LEVELS - 1).float() / (PIXEL_LEVELS - 1)).view(-1, 1, size, size)


def make_recipe(family: str, preset: str, seed: int, images: ImageData | None) -> Recipe:
    budget = dict(BUDGETS[family][preset])
    train = TrainConfig(**budget, seed=seed, checkpoint_every=CHECKPOINT_EVERY[preset], log_every=LOG_EVERY[preset])
    g = torch.Generator().manual_seed(seed)
    if family in ("vae", "diffusion", "ar"):
        assert images is not None
        meta = {"size": images.size, "num_classes": images.num_classes}
        x, y = images.x_train, images.y_train
        if family == "vae":
            batches = BinarizedBatches((x, y), train.batch_size, seed=seed)
        elif family == "diffusion":
            batches = StepBatches((x * 2 - 1, y), train.batch_size, seed=seed)  # diffusion works in [-1, 1]
        else:
            batches = StepBatches((images_to_tokens(x), y), train.batch_size, seed=seed)
    elif family == "gan":
        meta = {}
        batches = StepBatches(ring_of_gaussians(100_000, generator=g), train.batch_size, seed=seed)
    else:
        meta = {}
        batches = StepBatches(bars_and_stripes(3), train.batch_size, seed=seed)
    torch.manual_seed(seed)  # initialisation is a function of the seed
    model = build_model(family, preset, meta)
    return Recipe(model, batches, train, {"family": family, "preset": preset, **meta})
