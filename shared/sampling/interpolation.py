"""Interpolation between latent vectors: linear (lerp), spherical (slerp) and whole paths of either.

Under a Gaussian prior in many dimensions almost all mass lies near a sphere of radius sqrt(D), and the midpoint
of a straight line between two latents has a norm about 1/sqrt(2) of theirs, a region the generator rarely saw.
Spherical interpolation follows the great circle instead (Shoemake 1985, "Animating rotation with quaternion
curves"; White 2016, "Sampling generative networks"), so equal-norm endpoints give equal-norm points on the way.
Vectors lie along `dim` (the last dimension by default); leading dimensions are independent rows.
"""

from __future__ import annotations

import torch

from shared.errors import ConfigError

_METHODS = ("lerp", "slerp")


def _as_weight(t: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """t as a tensor in like's dtype and device (a float becomes a 0-d tensor)."""
    return torch.as_tensor(t, dtype=like.dtype, device=like.device)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ConfigError(
            f"interpolation endpoints must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if not a.is_floating_point():
        raise ConfigError(f"interpolation needs floating-point tensors, got {a.dtype}; convert with .float()")


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b, exact at t = 0 and t = 1. a, b (*S); t a float or a tensor broadcastable against a."""
    _check_pair(a, b)
    w = _as_weight(t, a)
    return torch.lerp(a, b, w) if w.dim() == 0 else torch.lerp(*torch.broadcast_tensors(a, b, w))


def slerp(
    a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor, dim: int | tuple[int, ...] = -1, eps: float = 1e-6
) -> torch.Tensor:
    """Spherical interpolation along `dim`: sin((1-t) w)/sin w * a + sin(t w)/sin w * b, w the angle of a and b.

    a, b (*S); t a float or a tensor broadcastable against a with size 1 along `dim` (e.g. (steps, 1, 1) for
    a, b (B, D) seen as (1, B, D)). Rows whose sin w < eps (parallel or opposite vectors, where the great circle
    is undefined or numerically unstable) fall back to lerp. Norms are not forced: with |a| = |b| every point
    keeps that norm."""
    _check_pair(a, b)
    w = _as_weight(t, a)
    dot = (a * b).sum(dim=dim, keepdim=True)  # (*S with 1 along dim)
    norms = torch.linalg.vector_norm(a, dim=dim, keepdim=True) * torch.linalg.vector_norm(b, dim=dim, keepdim=True)
    cos = (dot / norms.clamp_min(torch.finfo(a.dtype).tiny)).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin_omega = torch.sin(omega)
    near_parallel = sin_omega < eps
    safe_sin = torch.where(near_parallel, torch.ones_like(sin_omega), sin_omega)
    coef_a = torch.sin((1 - w) * omega) / safe_sin
    coef_b = torch.sin(w * omega) / safe_sin
    spherical = coef_a * a + coef_b * b
    return torch.where(near_parallel, lerp(a, b, w).expand_as(spherical), spherical)


def interpolation_path(a: torch.Tensor, b: torch.Tensor, steps: int, method: str = "slerp") -> torch.Tensor:
    """`steps` evenly spaced points from a to b inclusive: (steps, *a.shape). slerp works along a's last dim."""
    if not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"steps={steps!r} must be an int >= 2 (the path includes both endpoints)")
    if method not in _METHODS:
        raise ConfigError(f"interpolation method {method!r} is unknown; use one of {list(_METHODS)}")
    _check_pair(a, b)
    t = torch.linspace(0.0, 1.0, steps, dtype=a.dtype, device=a.device).reshape(steps, *([1] * a.dim()))
    a0, b0 = a.unsqueeze(0), b.unsqueeze(0)  # (1, *S), broadcast against t (steps, 1, ..., 1)
    return lerp(a0, b0, t) if method == "lerp" else slerp(a0, b0, t)
