"""Convolutional encoder and decoder for square images (VAE encoders/decoders, GAN critics/generators).

`ConvEncoder` halves the resolution once per entry of `channels` with stride-2 convolutions, flattens and maps to a
feature vector: (B, C, H, W) -> (B, out_dim). `ConvDecoder` mirrors it: a Linear to a (channels[0], s, s) map, one
nearest-neighbour 2x upsampling + 3x3 convolution per entry of `channels`, then a 3x3 convolution to the output
channels with no final activation (the outputs are logits or means; the family decides which). Nearest upsampling
followed by a convolution avoids the checkerboard artefacts of transposed convolutions (Odena et al. 2016,
"Deconvolution and Checkerboard Artifacts"). Both need `image_size` divisible by 2**len(channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from shared.errors import ConfigError
from shared.nets.mlp import make_activation

NORMS = ("none", "batch", "group")


def make_norm(kind: str, channels: int) -> list[nn.Module]:
    """The normalisation layers over `channels` feature maps: [] for none (so layer indices, and checkpoints of
    nets built without a norm, stay as they were), [BatchNorm2d] for batch (DCGAN generators), [GroupNorm] with
    8 groups (fewer when `channels` is not divisible by 8; independent of the batch) for group."""
    if kind not in NORMS:
        raise ConfigError(f"unknown norm {kind!r}; use one of {list(NORMS)}")
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "group":
        return [nn.GroupNorm(next(g for g in (8, 4, 2, 1) if channels % g == 0), channels)]
    return []


def check_image_size(image_size: int, n_halvings: int, who: str) -> int:
    """Return the bottleneck side image_size / 2**n_halvings, or raise ConfigError naming sizes that work."""
    factor = 2**n_halvings
    if image_size < 1 or image_size % factor != 0:
        valid = ", ".join(str(factor * k) for k in (1, 2, 4, 8, 16))
        raise ConfigError(
            f"{who} with {n_halvings} resolution levels needs image_size divisible by {factor}, got {image_size}; "
            f"use e.g. {valid}, or change the number of channels entries"
        )
    return image_size // factor


def _check_channels(channels: Sequence[int], who: str) -> tuple[int, ...]:
    channels = tuple(int(c) for c in channels)
    if not channels or any(c < 1 for c in channels):
        raise ConfigError(f"{who} channels must be a non-empty list of positive widths, got {channels}")
    return channels


class ConvEncoder(nn.Module):
    """(B, in_channels, S, S) -> (B, out_dim) with S = image_size.

    Each entry c of `channels` adds a 4x4 stride-2 convolution to c channels, the `norm` and an activation, so
    the spatial side goes S -> S / 2**len(channels); the map is flattened and a Linear produces the features.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        out_dim: int,
        channels: Sequence[int] = (32, 64),
        act: str = "silu",
        norm: str = "none",
    ) -> None:
        super().__init__()
        channels = _check_channels(channels, "ConvEncoder")
        if in_channels < 1 or out_dim < 1:
            raise ConfigError(f"ConvEncoder needs positive in_channels and out_dim, got {in_channels}, {out_dim}")
        side = check_image_size(int(image_size), len(channels), "ConvEncoder")
        self.in_channels, self.image_size, self.out_dim = int(in_channels), int(image_size), int(out_dim)
        layers: list[nn.Module] = []
        prev = self.in_channels
        for c in channels:
            # kernel 4, stride 2, padding 1 halves the side exactly (the DCGAN down-sampling block).
            layers += [
                nn.Conv2d(prev, c, kernel_size=4, stride=2, padding=1),
                *make_norm(norm, c),
                make_activation(act),
            ]
            prev = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(prev * side * side, self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, S, S) -> (B, out_dim)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"ConvEncoder expects (B, {self.in_channels}, {self.image_size}, {self.image_size}), "
                f"got {tuple(x.shape)}"
            )
        h = self.features(x)  # (B, channels[-1], s, s)
        return self.head(h.flatten(1))


class ConvDecoder(nn.Module):
    """(B, in_dim) -> (B, out_channels, S, S) raw outputs (no final activation), S = image_size.

    A Linear makes a (channels[0], s, s) map with s = S / 2**len(channels); each entry c of `channels` then
    doubles the side (nearest upsampling) and applies a 3x3 convolution to c channels, the `norm` and an
    activation; a last 3x3 convolution maps to `out_channels`.
    """

    def __init__(
        self,
        in_dim: int,
        out_channels: int,
        image_size: int,
        channels: Sequence[int] = (64, 32),
        act: str = "silu",
        norm: str = "none",
    ) -> None:
        super().__init__()
        channels = _check_channels(channels, "ConvDecoder")
        if in_dim < 1 or out_channels < 1:
            raise ConfigError(f"ConvDecoder needs positive in_dim and out_channels, got {in_dim}, {out_channels}")
        self.side = check_image_size(int(image_size), len(channels), "ConvDecoder")
        self.in_dim, self.out_channels, self.image_size = int(in_dim), int(out_channels), int(image_size)
        self.first_channels = channels[0]
        self.project = nn.Sequential(nn.Linear(self.in_dim, channels[0] * self.side * self.side), make_activation(act))
        layers: list[nn.Module] = []
        prev = channels[0]
        for c in channels:
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(prev, c, kernel_size=3, padding=1),
                *make_norm(norm, c),
                make_activation(act),
            ]
            prev = c
        layers.append(nn.Conv2d(prev, self.out_channels, kernel_size=3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, in_dim) -> (B, out_channels, S, S)."""
        if z.dim() != 2 or z.shape[1] != self.in_dim:
            raise ValueError(f"ConvDecoder expects (B, {self.in_dim}), got {tuple(z.shape)}")
        h = self.project(z).view(z.shape[0], self.first_channels, self.side, self.side)  # (B, C0, s, s)
        return self.body(h)  # (B, out_channels, S, S)
