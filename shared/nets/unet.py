"""A time- and class-conditional UNet, the noise-prediction network for image diffusion.

The layout follows Ho et al. 2020 (DDPM, Appendix B) as cleaned up by Nichol & Dhariwal 2021 (improved-diffusion):
a 3x3 input convolution; per resolution level `num_res_blocks` residual blocks (GroupNorm -> SiLU -> conv, with
the embedding added between the two convolutions) and optional self-attention, then a stride-2 down-sampling
convolution; a middle block; a mirrored up path whose blocks take the matching down-path activations as skip
connections; and a zero-initialised output convolution. The embedding is a sinusoidal encoding of the timestep
(Vaswani et al. 2017, sec. 3.5) through a two-layer MLP, plus a learned class embedding when `num_classes > 0`.
That table has num_classes + 1 rows: the last one is the "null" class used for classifier-free guidance (Ho &
Salimans 2022), which `y=None` selects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import ConfigError


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal encoding of (B,) timesteps (int or float) -> (B, dim) float32, [cos | sin] halves.

    Frequencies are max_period**(-k / half) for k = 0..half-1 (Vaswani et al. 2017, sec. 3.5); an odd `dim` gets a
    zero column at the end.
    """
    half = dim // 2
    k = torch.arange(half, device=t.device, dtype=torch.float32)
    freqs = torch.exp(-math.log(max_period) * k / half)  # (half,)
    args = t.float()[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, 2*half)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def norm_groups(channels: int, max_groups: int = 32, min_group_size: int = 4) -> int:
    """Number of GroupNorm groups for `channels`: the largest divisor of `channels` that is at most
    min(max_groups, channels // min_group_size) (at least 1), so each group holds a few channels."""
    cap = max(1, min(max_groups, channels // min_group_size))
    return max(g for g in range(1, cap + 1) if channels % g == 0)


class ResBlock(nn.Module):
    """(B, C_in, H, W), emb (B, E) -> (B, C_out, H, W): two 3x3 convs with the projected embedding added between."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(norm_groups(out_ch), out_ch)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (improved-diffusion zero_module)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = h + self.emb(F.silu(emb))[:, :, None, None]  # embedding broadcast over space
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map, residual: (B, C, H, W) -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.heads = max(1, channels // 64)  # head width 64 where the map is wide enough, else one head
        self.norm = nn.GroupNorm(norm_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # each (B, heads, HW, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class UNet(nn.Module):
    """eps-prediction UNet: forward(x (B, C, H, W), t (B,), y (B,) long | None) -> (B, out_channels, H, W).

    Args:
        in_channels, out_channels: image channels in and out (out defaults to in).
        base_channels: width at full resolution; level i has base_channels * channel_mult[i] channels.
        channel_mult: one entry per resolution level; H and W must be divisible by 2**(len(channel_mult) - 1).
        num_res_blocks: residual blocks per level on the down path (the up path has one more, as in DDPM).
        attention_levels: level indices (0 = full resolution) that get self-attention; the middle block gets
            attention when the last level is listed.
        num_classes: 0 for an unconditional net; otherwise labels 0..num_classes-1 plus the null class.
        dropout: dropout inside the residual blocks.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        base_channels: int = 32,
        channel_mult: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        attention_levels: Sequence[int] = (),
        num_classes: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channel_mult = tuple(int(m) for m in channel_mult)
        attention_levels = tuple(int(a) for a in attention_levels)
        if in_channels < 1 or base_channels < 1 or num_res_blocks < 1 or num_classes < 0:
            raise ConfigError(
                f"UNet needs in_channels, base_channels, num_res_blocks >= 1 and num_classes >= 0, got "
                f"{in_channels}, {base_channels}, {num_res_blocks}, {num_classes}"
            )
        if not channel_mult or any(m < 1 for m in channel_mult):
            raise ConfigError(f"UNet channel_mult must be non-empty positive integers, got {channel_mult}")
        bad = [a for a in attention_levels if not 0 <= a < len(channel_mult)]
        if bad:
            raise ConfigError(
                f"UNet attention_levels {bad} out of range; "
                f"levels are 0..{len(channel_mult) - 1} (one per channel_mult entry)"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"UNet dropout={dropout} is outside [0, 1)")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels or in_channels)
        self.num_classes = int(num_classes)
        self.n_levels = len(channel_mult)
        self.factor = 2 ** (self.n_levels - 1)  # total down-sampling
        emb_dim = 4 * base_channels
        self.base_channels = base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None

        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        # Down path; `skips` records the width of every activation pushed for the up path.
        self.down = nn.ModuleList()
        skips = [base_channels]
        ch = base_channels
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                blocks = [ResBlock(ch, base_channels * mult, emb_dim, dropout)]
                ch = base_channels * mult
                if level in attention_levels:
                    blocks.append(SelfAttention(ch))
                self.down.append(nn.ModuleList(blocks))
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)
        mid_attn = (len(channel_mult) - 1) in attention_levels
        self.mid = nn.ModuleList(
            [ResBlock(ch, ch, emb_dim, dropout)]
            + ([SelfAttention(ch)] if mid_attn else [])
            + [ResBlock(ch, ch, emb_dim, dropout)]
        )
        # Up path: num_res_blocks + 1 blocks per level, each concatenating one skip.
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                blocks = [ResBlock(ch + skips.pop(), base_channels * mult, emb_dim, dropout)]
                ch = base_channels * mult
                if level in attention_levels:
                    blocks.append(SelfAttention(ch))
                if level > 0 and i == num_res_blocks:
                    blocks.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    blocks.append(nn.Conv2d(ch, ch, 3, padding=1))
                self.up.append(nn.ModuleList(blocks))
        self.norm_out = nn.GroupNorm(norm_groups(ch), ch)
        self.conv_out = nn.Conv2d(ch, self.out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # the untrained net predicts eps = 0
        nn.init.zeros_(self.conv_out.bias)

    def _embedding(self, t: torch.Tensor, y: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(B, 4*base) time (+ class) embedding."""
        if t.dim() == 0:
            t = t.expand(batch)
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))  # (B, E)
        if self.class_emb is not None:
            if y is None:  # null class: unconditional branch of classifier-free guidance
                y = torch.full((batch,), self.num_classes, dtype=torch.long, device=t.device)
            emb = emb + self.class_emb(y)
        elif y is not None:
            raise ValueError("this UNet was built with num_classes=0 and takes no labels; pass y=None")
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W), t (B,) or () timesteps, y (B,) long in [0, num_classes] or None -> (B, C_out, H, W)."""
        b, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f"UNet expects {self.in_channels} input channels, got {c}")
        if h % self.factor or w % self.factor:
            raise ConfigError(
                f"UNet with {self.n_levels} levels needs H and W divisible by {self.factor}, got {h}x{w}; "
                f"use sizes like {self.factor * 4}, {self.factor * 8} or {self.factor * 16}, "
                "or fewer channel_mult levels"
            )
        emb = self._embedding(torch.as_tensor(t, device=x.device), y, b)
        hs = [self.conv_in(x)]  # (B, base, H, W)
        for blocks in self.down:
            h_ = hs[-1]
            for m in blocks:
                h_ = m(h_, emb) if isinstance(m, ResBlock) else m(h_)
            hs.append(h_)
        h_ = hs[-1]
        for m in self.mid:
            h_ = m(h_, emb) if isinstance(m, ResBlock) else m(h_)
        for blocks in self.up:
            h_ = torch.cat([h_, hs.pop()], dim=1)  # skip connection along channels
            for m in blocks:
                h_ = m(h_, emb) if isinstance(m, ResBlock) else m(h_)
        return self.conv_out(F.silu(self.norm_out(h_)))
