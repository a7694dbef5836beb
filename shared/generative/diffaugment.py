"""Differentiable augmentation (DiffAugment) for training GANs on small image sets.

Zhao, Liu, Lin, Zhu and Han 2020, "Differentiable Augmentation for Data-Efficient GAN Training": the same random
augmentations are applied to real and to generated images before the discriminator, in both the D and G steps;
because every operation is differentiable in the pixels, the generator's gradient flows through them, and the
discriminator cannot memorise the few real images. Three policies, as in the paper: `color` (random brightness,
saturation and contrast), `translation` (shift by up to 1/8 of the image size, zero padding) and `cutout` (zero a
random square of half the image size). Images are (B, C, H, W); the paper's constants assume pixels in [-1, 1].
All randomness comes from torch's global RNG (training randomness, saved by checkpoints), drawn per image.
"""

from __future__ import annotations

import torch

from shared.errors import ConfigError


def _brightness(x: torch.Tensor) -> torch.Tensor:
    # Add a per-image offset in [-0.5, 0.5).
    return x + (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)


def _saturation(x: torch.Tensor) -> torch.Tensor:
    # Scale each pixel's deviation from its channel mean (the grey value) by a factor in [0, 2).
    grey = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return (x - grey) * (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + grey


def _contrast(x: torch.Tensor) -> torch.Tensor:
    # Scale each image's deviation from its overall mean by a factor in [0.5, 1.5).
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - mean) * (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by an integer offset in [-s, s] per axis (s = ratio * size), filling with zeros."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    # Output pixel (i, j) reads input pixel (i + dy, j + dx) of the zero-padded image, whose index is shifted by
    # the pad width; indices are clamped into the padded border, which is all zeros.
    iy = (torch.arange(h, device=x.device)[None, :, None] + dy + 1).clamp(0, h + 1)  # (B, H, 1)
    ix = (torch.arange(w, device=x.device)[None, None, :] + dx + 1).clamp(0, w + 1)  # (B, 1, W)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))  # (B, C, H + 2, W + 2)
    bi = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
    # Advanced indexing on (B, H+2, W+2, C) -> (B, H, W, C); gather keeps the gradient to x.
    out = padded.permute(0, 2, 3, 1)[bi, iy, ix]
    return out.permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a (ratio*H, ratio*W) square at a random centre per image (it may hang over the border)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # Centres in [0, size + (1 - cut % 2)), as in the reference implementation, so the square can sit flush
    # with either edge.
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :]  # (1, H)
    cols = torch.arange(w, device=x.device)[None, :]  # (1, W)
    in_y = (rows >= cy - ch // 2) & (rows < cy - ch // 2 + ch)  # (B, H)
    in_x = (cols >= cx - cw // 2) & (cols < cx - cw // 2 + cw)  # (B, W)
    keep = ~(in_y[:, :, None] & in_x[:, None, :])  # (B, H, W)
    return x * keep[:, None].to(x.dtype)


# Policy name -> the operations it applies, in order.
AUGMENTATIONS = {
    "color": (_brightness, _saturation, _contrast),
    "translation": (_translation,),
    "cutout": (_cutout,),
}


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); None or '' -> (). Unknown names are a ConfigError."""
    if policy is None:
        return ()
    if not isinstance(policy, str):
        raise ConfigError(f"augment policy must be a string like 'color,translation,cutout', got {policy!r}")
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"unknown DiffAugment policy {unknown}; choose from {sorted(AUGMENTATIONS)}")
    return names


def diff_augment(x: torch.Tensor, policy: str | None = "color,translation,cutout") -> torch.Tensor:
    """Augment images x (B, C, H, W) -> (B, C, H, W), differentiably, with a fresh random draw per image.

    policy: comma-separated names from AUGMENTATIONS; None or '' returns x unchanged.
    """
    names = parse_policy(policy)
    if not names:
        return x
    if x.dim() != 4:
        raise ConfigError(f"DiffAugment needs images (B, C, H, W), got {tuple(x.shape)}; use augment=None")
    for name in names:
        for op in AUGMENTATIONS[name]:
            x = op(x)
    return x
