"""Monte Carlo estimation: simple random sampling, stratified sampling and importance sampling.

Simple random sampling averages f over i.i.d. draws (error ~ sd(f) / sqrt(n)). Stratified sampling places one
uniform point in each of n equal strata (Latin-hypercube style per dimension for dim > 1, McKay, Beckman & Conover
1979), which removes the between-strata variance; mapped through the normal inverse CDF it gives "latent quantile"
draws. Importance sampling draws from a proposal q and reweights by p/q (Owen 2013, "Monte Carlo theory, methods
and examples", ch. 9), either with exact densities or self-normalised (log densities known up to constants); the
weights' effective sample size measures how well q fits, and systematic resampling turns weights into indices.
`proportional_allocation` spreads a batch over bins (e.g. condition values) by the largest-remainder rule.
All randomness comes from an explicit `generator`; estimates are returned as `Estimate` records of plain floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from shared.errors import ConfigError


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate: mean, its standard error, the number of draws and (for weighted draws) the ESS."""

    mean: float
    stderr: float
    n: int
    ess: float | None = None


def _check_n(n: int, name: str = "n") -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"{name}={n!r} must be a positive int; pass the number of draws, e.g. {name}=1000")


def _device(device: torch.device | str | None, generator: torch.Generator | None):
    """Draw where the caller asked, else on the generator's device (a generator only makes numbers on its own)."""
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else None


# ---- simple random sampling ---------------------------------------------------------------------------------
def sample_mean(values: torch.Tensor) -> Estimate:
    """Estimate of E[f] from i.i.d. values (n,): the mean and sd / sqrt(n) (float64 arithmetic)."""
    values = values.reshape(-1).double()
    n = values.numel()
    if n < 2:
        raise ConfigError(f"a Monte Carlo estimate needs at least 2 values for a standard error, got {n}")
    return Estimate(values.mean().item(), (values.std() / math.sqrt(n)).item(), n)


def simple_random_estimate(
    f: Callable[[torch.Tensor], torch.Tensor],
    sample_fn: Callable[[int, torch.Generator | None], torch.Tensor],
    n: int,
    generator: torch.Generator | None = None,
) -> Estimate:
    """Simple random sampling of E[f(X)]: X = sample_fn(n, generator) (n, ...), f(X) -> (n,) values."""
    _check_n(n)
    return sample_mean(f(sample_fn(n, generator)))


# ---- stratified sampling ------------------------------------------------------------------------------------
def stratified_uniform(
    n: int, dim: int = 1, generator: torch.Generator | None = None, *, dtype=torch.float64, device=None
) -> torch.Tensor:
    """(n, dim) points in [0, 1)^dim with exactly one point in each stratum [i/n, (i+1)/n) of every coordinate.

    Coordinate d is (perm_d(i) + U) / n with an independent random permutation per coordinate (Latin hypercube);
    with dim=1 the rows are in stratum order. Each point is marginally U(0, 1), so the mean of f over the points
    is unbiased for E[f(U)], with variance never above simple random sampling's for dim=1 (proportional
    allocation, Owen 2013, ch. 8)."""
    _check_n(n)
    _check_n(dim, "dim")
    device = _device(device, generator)
    u = torch.rand(n, dim, generator=generator, dtype=dtype, device=device)  # position inside the stratum
    if dim == 1:
        strata = torch.arange(n, dtype=dtype, device=device)[:, None]  # (n, 1)
    else:
        perms = [torch.randperm(n, generator=generator, device=device) for _ in range(dim)]
        strata = torch.stack(perms, dim=1).to(dtype)  # (n, dim), column d a permutation of 0..n-1
    return (strata + u) / n


def stratified_normal(
    n: int, dim: int = 1, generator: torch.Generator | None = None, *, dtype=torch.float64, device=None
) -> torch.Tensor:
    """(n, dim) standard-normal "latent quantiles": Phi^{-1} of `stratified_uniform` points.

    Every coordinate covers the n normal quantile bins once, so a batch of latents spans the tails evenly."""
    u = stratified_uniform(n, dim, generator, dtype=dtype, device=device)
    tiny = torch.finfo(u.dtype).tiny
    return torch.special.ndtri(u.clamp(tiny, 1.0 - torch.finfo(u.dtype).eps / 2))  # keep Phi^{-1} finite


def stratified_estimate(
    f: Callable[[torch.Tensor], torch.Tensor],
    n_strata: int,
    per_stratum: int = 2,
    generator: torch.Generator | None = None,
) -> Estimate:
    """Stratified estimate of E[f(U)], U ~ U(0, 1), with `per_stratum` (>= 2) draws in each of n_strata strata.

    f maps (N,) float64 points to (N,) values. mean = average of stratum means; var = sum_h s_h^2 / (m H^2)
    (the stratified variance with equal strata, Owen 2013, ch. 8); the within-stratum s_h needs m >= 2."""
    _check_n(n_strata, "n_strata")
    if not isinstance(per_stratum, int) or per_stratum < 2:
        raise ConfigError(f"per_stratum={per_stratum!r} must be an int >= 2 to estimate within-stratum variance")
    device = _device(None, generator)
    u = torch.rand(n_strata, per_stratum, generator=generator, dtype=torch.float64, device=device)
    x = (torch.arange(n_strata, dtype=torch.float64, device=device)[:, None] + u) / n_strata  # (H, m)
    y = f(x.reshape(-1)).double().reshape(n_strata, per_stratum)
    var = y.var(dim=1).sum() / (per_stratum * n_strata**2)
    return Estimate(y.mean().item(), var.sqrt().item(), n_strata * per_stratum)


def proportional_allocation(n: int, weights: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Split n draws over K bins in proportion to weights (K,) -> int64 counts (K,) summing to n.

    Largest-remainder (Hamilton) rule: floor(n w_k / sum w), then the leftover draws go to the largest fractional
    parts (ties to the lower index). Used to spread a sampling batch over condition bins."""
    if not isinstance(n, int) or n < 0:
        raise ConfigError(f"n={n!r} must be a non-negative int (the number of draws to allocate)")
    w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
    if w.numel() == 0 or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ConfigError("allocation weights must be finite, non-negative and not all zero; e.g. bin frequencies")
    quota = n * w / w.sum()  # (K,)
    counts = torch.floor(quota).to(torch.int64)
    left = n - int(counts.sum())
    if left > 0:
        order = torch.sort(quota - counts, descending=True, stable=True).indices
        counts[order[:left]] += 1
    return counts


# ---- importance sampling ------------------------------------------------------------------------------------
def importance_weights(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Self-normalised weights w_i = (p_i/q_i) / sum_j (p_j/q_j) (n,), via softmax of log p - log q (stable).

    log_p may be unnormalised: the constant cancels."""
    if log_p.shape != log_q.shape or log_p.dim() != 1:
        raise ConfigError(f"log_p and log_q must both be (n,), got {tuple(log_p.shape)} and {tuple(log_q.shape)}")
    return torch.softmax(log_p.double() - log_q.double(), dim=0)


def effective_sample_size(weights: torch.Tensor) -> float:
    """Kish's ESS (sum w)^2 / sum w^2 of weights (n,) (normalised or not): n for equal weights, 1 for one."""
    w = weights.double().reshape(-1)
    return (w.sum() ** 2 / (w**2).sum()).item()


def systematic_resample(weights: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n indices (int64) drawn by systematic resampling from weights (K,) (Kitagawa 1996; Douc et al. 2005).

    One uniform offset u ~ U(0, 1/n); index i is where (u + i/n) falls in the cumulative weights. Index k is
    chosen floor or ceil of n w_k times, which gives lower variance than multinomial resampling."""
    _check_n(n)
    w = weights.double().reshape(-1)
    if (w < 0).any() or w.sum() <= 0:
        raise ConfigError("resampling weights must be non-negative and not all zero")
    cdf = torch.cumsum(w / w.sum(), 0)  # (K,)
    u = torch.rand(1, generator=generator, dtype=torch.float64, device=_device(None, generator))
    positions = (u.to(w.device) + torch.arange(n, dtype=torch.float64, device=w.device)) / n  # (n,)
    return torch.searchsorted(cdf, positions, right=True).clamp_max(w.numel() - 1)


def importance_estimate(
    values: torch.Tensor, log_p: torch.Tensor, log_q: torch.Tensor, self_normalised: bool = True
) -> Estimate:
    """Importance-sampling estimate of E_p[f] from draws x_i ~ q: values f(x_i) (n,), log p(x_i), log q(x_i) (n,).

    self_normalised=True: sum_i w_i f_i with normalised weights; p may be unnormalised; the standard error is the
    delta-method sqrt(sum_i w_i^2 (f_i - mean)^2) (Owen 2013, ch. 9). self_normalised=False: mean of
    (p_i/q_i) f_i, unbiased but needs normalised log p; its standard error is the ordinary sd / sqrt(n)."""
    values = values.double().reshape(-1)
    if values.shape != log_p.reshape(-1).shape:
        raise ConfigError(f"values {tuple(values.shape)} and log_p {tuple(log_p.shape)} must both be (n,)")
    n = values.numel()
    w = importance_weights(log_p.reshape(-1), log_q.reshape(-1))
    ess = effective_sample_size(w)
    if self_normalised:
        mean = (w * values).sum()
        stderr = torch.sqrt((w**2 * (values - mean) ** 2).sum())
        return Estimate(mean.item(), stderr.item(), n, ess)
    ratio = torch.exp(log_p.double().reshape(-1) - log_q.double().reshape(-1))
    est = sample_mean(ratio * values)
    return Estimate(est.mean, est.stderr, n, ess)
