"""Property conditioning: targets from the command line, the condition vector the language model reads, training
batches with randomly hidden properties, stratified targets over a range, and importance re-ranking of a pool.

Condition vector (B, 8): for the four properties (logp, sa, qed, weight) the standardised value where the property
is given, 0 where it is hidden, then four 0/1 "given" flags. Training hides each property with probability
1 - p_keep and all of them with probability p_uncond (as classifier-free guidance drops its condition, Ho &
Salimans 2022), so one model samples unconditionally (all hidden), or for any subset of targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import gaussian_kde

from apps.molecules.config import PROPERTY_NAMES
from shared.errors import ConfigError
from shared.sampling.monte_carlo import effective_sample_size, importance_weights, stratified_uniform

N_PROPS = len(PROPERTY_NAMES)
COND_DIM = 2 * N_PROPS
# Half-widths of "near the target" for a point target: the sd of the target distribution importance re-ranking
# aims at (about a tenth of each property's spread over MOSES).
TOLERANCE = {"logp": 0.15, "sa": 0.1, "qed": 0.015, "weight": 8.0}
# Plausible ranges, to reject typos such as qed=9.
RANGES = {"logp": (-10.0, 15.0), "sa": (1.0, 10.0), "qed": (0.0, 1.0), "weight": (20.0, 1500.0)}


@dataclass(frozen=True)
class Target:
    """One property target: a point (lo == hi) or a range [lo, hi] to spread the batch over."""

    name: str
    lo: float
    hi: float

    @property
    def is_range(self) -> bool:
        return self.hi > self.lo


def parse_targets(items: Sequence[str]) -> list[Target]:
    """['qed=0.9', 'logp=1:3'] -> targets; one-line ConfigError for unknown names, bad numbers or repeats."""
    out: dict[str, Target] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in PROPERTY_NAMES:
            raise ConfigError(f"bad target {item!r}: write NAME=VALUE or NAME=LO:HI with NAME one of {PROPERTY_NAMES}")
        try:
            parts = [float(v) for v in value.split(":")]
        except ValueError:
            raise ConfigError(f"bad target {item!r}: {value!r} is not a number or a LO:HI range") from None
        if len(parts) not in (1, 2) or parts[0] > parts[-1] or not all(map(math.isfinite, parts)):
            raise ConfigError(f"bad target {item!r}: give one value or an increasing range LO:HI")
        lo_ok, hi_ok = RANGES[name]
        if parts[0] < lo_ok or parts[-1] > hi_ok:
            raise ConfigError(f"target {item!r} is outside the plausible range of {name} [{lo_ok}, {hi_ok}]")
        if name in out:
            raise ConfigError(f"property {name} is targeted twice; give it once")
        out[name] = Target(name, parts[0], parts[-1])
    return list(out.values())


@dataclass
class PropertyScaler:
    """Standardisation of the four properties, fitted on the training molecules."""

    mean: np.ndarray  # (4,)
    std: np.ndarray  # (4,)

    @classmethod
    def fit(cls, props: np.ndarray) -> PropertyScaler:
        """props (N, 4) in PROPERTY_NAMES order; rows of NaN (properties not computed) are ignored."""
        return cls(np.nanmean(props, axis=0), np.nanstd(props, axis=0).clip(min=1e-6))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "names": list(PROPERTY_NAMES)}

    @classmethod
    def from_dict(cls, d: dict) -> PropertyScaler:
        return cls(np.asarray(d["mean"], dtype=float), np.asarray(d["std"], dtype=float))

    def cond(self, values: np.ndarray) -> torch.Tensor:
        """values (N, 4) with NaN for hidden properties -> condition (N, 8) float32."""
        given = ~np.isnan(values)
        z = np.where(given, (values - self.mean) / self.std, 0.0)
        return torch.from_numpy(np.concatenate([z, given], axis=1).astype(np.float32))


def unconditional(n: int) -> torch.Tensor:
    """(n, 8) zeros: every property hidden."""
    return torch.zeros(n, COND_DIM)


def target_values(targets: Sequence[Target], n: int, generator: torch.Generator | None = None) -> np.ndarray:
    """(n, 4) property values to condition on, NaN where not targeted. A range target is covered by stratified
    sampling: one value in each of n equal strata of [lo, hi], shuffled, so any batch spans the whole range."""
    values = np.full((n, N_PROPS), np.nan)
    for t in targets:
        j = PROPERTY_NAMES.index(t.name)
        if t.is_range:
            u = stratified_uniform(n, 1, generator)[:, 0]
            perm = torch.randperm(n, generator=generator)
            values[:, j] = t.lo + (t.hi - t.lo) * u[perm].numpy()
        else:
            values[:, j] = t.lo
    return values


class ConditionedBatches:
    """Training batches (tokens (B, T), cond (B, 8)) for the language model; a pure function of the step.

    Indices come from `StepBatches` (epoch permutations of the seed); the hidden/given mask is drawn from a
    generator seeded by (seed, step), so a resumed run sees the same batches. Trailing all-pad columns are cut, so
    an LSTM runs over the longest molecule of the batch, not over max_tokens.
    """

    def __init__(
        self,
        tokens: torch.Tensor,
        props: np.ndarray | None,
        scaler: PropertyScaler | None,
        batch_size: int,
        seed: int,
        p_keep: float = 0.5,
        p_uncond: float = 0.25,
        pad_id: int = 0,
    ):
        from shared.training.batches import StepBatches

        self.steps = StepBatches(tokens, batch_size, seed)
        self.tokens, self.pad_id, self.seed = tokens, pad_id, seed
        self.cond = None if props is None else scaler.cond(props)  # (N, 8), all given
        self.p_keep, self.p_uncond = p_keep, p_uncond

    def shard(self, rank: int, world_size: int) -> ConditionedBatches:
        out = object.__new__(ConditionedBatches)
        out.__dict__.update(self.__dict__)
        out.steps = self.steps.shard(rank, world_size)
        return out

    def batch(self, step: int) -> tuple[torch.Tensor, ...]:
        idx = self.steps.indices(step)
        tokens = self.tokens[idx]
        width = int((tokens != self.pad_id).sum(dim=1).max())
        tokens = tokens[:, :width]
        if self.cond is None:
            return (tokens,)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        keep = torch.rand(len(idx), N_PROPS, generator=g) < self.p_keep  # (B, 4)
        keep &= torch.rand(len(idx), 1, generator=g) >= self.p_uncond  # all hidden for some rows
        c = self.cond[idx]
        keep &= c[:, N_PROPS:] > 0  # molecules without computed properties always train unconditionally
        return tokens, torch.cat([c[:, :N_PROPS] * keep, keep.float()], dim=1)


def _log_target(targets: Sequence[Target], props: np.ndarray) -> np.ndarray:
    """log density (up to a constant) of the target distribution at props (N, 4): Gaussian of sd TOLERANCE
    around a point target, uniform over a range target (with Gaussian shoulders of the same sd)."""
    out = np.zeros(len(props))
    for t in targets:
        x = props[:, PROPERTY_NAMES.index(t.name)]
        gap = np.maximum(t.lo - x, 0) + np.maximum(x - t.hi, 0)
        out += -0.5 * (gap / TOLERANCE[t.name]) ** 2
    return out


def rerank(
    targets: Sequence[Target], props: np.ndarray, n: int, generator: torch.Generator | None = None
) -> tuple[np.ndarray, float]:
    """Pick n of the pool's molecules toward the target distribution by importance resampling.

    props (N, 4) are the pool's properties (rows valid, unique molecules). Weights w_i = p(x_i) / q(x_i), with p the
    target density and q the pool's own density of the targeted properties (a Gaussian KDE), so the picked set
    follows p where the pool covers it. n indices are drawn without replacement with probability proportional to
    w (Efraimidis & Spirakis 2006: the n largest u_i^(1/w_i)), so no molecule is repeated. Returns (indices (n,),
    Kish effective sample size of the weights)."""
    if n > len(props):
        raise ConfigError(f"cannot pick {n} molecules from a pool of {len(props)}; sample a larger pool")
    cols = [PROPERTY_NAMES.index(t.name) for t in targets]
    x = props[:, cols].T  # (d, N)
    try:
        log_q = gaussian_kde(x).logpdf(x)
    except np.linalg.LinAlgError:  # degenerate pool (e.g. all the same value): fall back to flat q
        log_q = np.zeros(len(props))
    w = importance_weights(torch.from_numpy(_log_target(targets, props)), torch.from_numpy(log_q))
    u = torch.rand(len(props), generator=generator, dtype=torch.float64)
    keys = torch.log(u) / w.clamp_min(1e-300)  # log of u^(1/w): larger is picked first
    return keys.topk(n).indices.numpy(), effective_sample_size(w)
