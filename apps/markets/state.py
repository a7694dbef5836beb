"""The market state that deep generators condition on, and the recursion that carries it along a generated path.

A deep generator here is autoregressive on a volatility state (not on raw return windows), so paths of any length
are contiguous and the state can be set to the market at any chosen date (stress scenarios). Per asset a:

    v_fast_t = k V + l_f v_fast_{t-1} + (1 - l_f - k) r_t^2   fast variance, l_f = 0.84, k = 0.10, V the asset's
                                                               variance over the fit data (a GARCH(1,1)-shaped
                                                               filter with fixed weights: mean-reverting, with
                                                               level k V / (1 - l_f - 0.06 E x^2) = V at E x^2 = 1
                                                               and stationary while E x^2 < 2.67; the slower
                                                               dynamics are the network's to learn)
    v_slow_t = l_s v_slow_{t-1} + (1 - l_s) r_t^2            slow EWMA variance, l_s = 0.99 (half-life ~69 d)
    v_down_t = l_f v_down_{t-1} + (1 - l_f) 2 min(r_t, 0)^2  downside EWMA variance (leverage effect)
    x_t      = r_t / sqrt(max(v_fast_{t-1}, floor))          the normalised return a generator produces

The floor (FLOOR_FRACTION of the asset's variance over the fit data) keeps x finite after stretches of stale,
unchanged prices (early illiquid data has months of zero returns, which would send v_fast towards 0).

The generator models p(x_t | features(state_{t-1})) jointly over assets; a path is rolled forward with
r_t = x_t sqrt(v_fast_{t-1}) and the recursion above. The fast EWMA carries volatility clustering, so the network
only has to learn the (heavy-tailed, correlated, asymmetric) distribution of x around it, including how its scale
mean-reverts when the fast and slow variances disagree.

Features (per asset, then their cross-asset means as a market block), standardised with training moments and
clipped to +-5 so a rolled-out path never feeds the network far outside what it was trained on:
    log(v_fast / v_slow), log v_slow - its training mean, log(v_down / v_fast), x_t (clipped to +-6).
Shapes: returns (T, A); a batch of states holds (B, A) tensors; features are (B, 4 A + 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shared.errors import DataError

LAMBDA_FAST, LAMBDA_SLOW = 0.84, 0.99
# KAPPA: pull of v_fast towards the long-run variance per day (persistence 1 - KAPPA = 0.90). A rolled-out path
# feeds the network's own draws back into v_fast, and the network's E x^2 at the states it visits is never exactly
# the data's; the level then moves by 0.06 / KAPPA per unit of that error. With KAPPA = 0.04 (persistence 0.96)
# the cvae's paths on the 20-stock universe drifted to a median v_fast of 1.7 V by day 2000 (a tenth of them
# above 30 V); with 0.10 the median stays at 0.8 V and the 90% quantile at 1.0 V (2026-11-24).
KAPPA = 0.10
WARMUP = 60  # days used to initialise the EWMA variances, never used as training targets
X_CLIP = 6.0  # |x| in a feature beyond this is clipped (a 6-sigma day is information enough)
FEATURE_CLIP = 5.0
N_PER_ASSET = 4
FLOOR_FRACTION = 0.1  # v_fast is floored at this fraction of the asset's variance over the fit data
# The recursion's constants, stored with every saved generator: a network trained on another recursion's x and
# features would load without complaint and produce wrong paths.
RECURSION = f"kappa={KAPPA},fast={LAMBDA_FAST},slow={LAMBDA_SLOW},floor={FLOOR_FRACTION},features={N_PER_ASSET}"


@dataclass
class State:
    """EWMA variances (B, A), the last normalised return (B, A), the variance floor and long-run variance (1, A)."""

    v_fast: torch.Tensor
    v_slow: torch.Tensor
    v_down: torch.Tensor
    x_last: torch.Tensor
    floor: torch.Tensor
    long_run: torch.Tensor
    cap: torch.Tensor  # (1, A) the largest v_fast a generated path may reach (inf for real data)

    def expand(self, n: int) -> State:
        """A single state (1, A) repeated for n paths."""
        v = (t.expand(n, -1).clone() for t in (self.v_fast, self.v_slow, self.v_down, self.x_last))
        return State(*v, self.floor, self.long_run, self.cap)

    def scale(self) -> torch.Tensor:
        """sqrt(max(v_fast, floor)): the volatility that turns the next x into a return, (B, A)."""
        return torch.maximum(self.v_fast, self.floor).sqrt()

    def step(self, r: torch.Tensor, x: torch.Tensor) -> State:
        """The state after a day with returns r (B, A) whose normalised value was x."""
        r2 = r * r
        return State(
            torch.minimum(KAPPA * self.long_run + LAMBDA_FAST * self.v_fast + (1 - LAMBDA_FAST - KAPPA) * r2, self.cap),
            torch.minimum(LAMBDA_SLOW * self.v_slow + (1 - LAMBDA_SLOW) * r2, self.cap),
            torch.minimum(LAMBDA_FAST * self.v_down + (1 - LAMBDA_FAST) * 2 * torch.clamp(r, max=0.0) ** 2, self.cap),
            x,
            self.floor,
            self.long_run,
            self.cap,
        )

    def with_cap(self, cap: torch.Tensor) -> State:
        """The same state, with generated paths kept at or below variance `cap` (1, A)."""
        return State(self.v_fast, self.v_slow, self.v_down, self.x_last, self.floor, self.long_run, cap)


def long_run_variance(returns: np.ndarray) -> torch.Tensor:
    """The per-asset variance (1, A) of the fit data (T, A): the anchor of v_fast and, times FLOOR_FRACTION, its
    floor."""
    return torch.as_tensor(np.maximum(np.var(np.asarray(returns, dtype=np.float64), axis=0), 1e-12))[None, :]


def initial_state(returns: np.ndarray, long_run: torch.Tensor) -> State:
    """The state before day WARMUP of `returns` (T, A): all variances at the warm-up sample variance (floored)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or len(r) <= WARMUP:
        raise DataError(f"need more than {WARMUP} days of (T, A) returns to start the state, got shape {r.shape}")
    floor = FLOOR_FRACTION * long_run
    v0 = torch.maximum(torch.as_tensor(r[:WARMUP].var(axis=0))[None, :], floor)  # (1, A)
    cap = torch.full_like(v0, float("inf"))
    return State(v0.clone(), v0.clone(), v0.clone(), torch.zeros_like(v0), floor, long_run, cap)


@dataclass
class Filtered:
    """The recursion run over real returns (T, A) from day WARMUP on; rows are the days WARMUP..T-1."""

    raw: torch.Tensor  # (T - WARMUP, 4 A + 4) raw features of the state BEFORE each day
    x: torch.Tensor  # (T - WARMUP, A) normalised returns of those days
    scale: torch.Tensor  # (T - WARMUP, A) the volatility each day's x was normalised by
    v_max: torch.Tensor  # (1, A) the largest v_fast / v_slow / v_down reached
    last: State  # the state after the last day (1, A): the origin of a forecast


def filter_states(returns: np.ndarray, long_run: torch.Tensor | None = None) -> Filtered:
    """Run the state recursion over real returns (T, A); `long_run` from the fit data (default: from `returns`)."""
    r = torch.as_tensor(np.array(returns, dtype=np.float64))
    long_run = long_run_variance(r.numpy()) if long_run is None else long_run
    s = initial_state(r.numpy(), long_run)
    feats, xs, scales = [], [], []
    v_max = torch.zeros_like(long_run)
    for t in range(WARMUP, len(r)):
        feats.append(raw_features(s))
        rt = r[t : t + 1]
        scales.append(s.scale())
        xs.append(rt / scales[-1])
        s = s.step(rt, xs[-1])
        v_max = torch.maximum(v_max, torch.maximum(torch.maximum(s.v_fast, s.v_slow), s.v_down))
    return Filtered(torch.cat(feats), torch.cat(xs), torch.cat(scales), v_max, s)


def raw_features(s: State) -> torch.Tensor:
    """Unstandardised features (B, 4 A + 4) of a state."""
    v_fast = torch.maximum(s.v_fast, s.floor)
    per_asset = torch.stack(
        [
            torch.log(v_fast / s.v_slow.clamp_min(1e-12)),
            torch.log(s.v_slow.clamp_min(1e-12)),
            torch.log(s.v_down.clamp_min(1e-12) / v_fast),
            s.x_last.clamp(-X_CLIP, X_CLIP),
        ],
        dim=-1,
    )  # (B, A, 4)
    market = per_asset.mean(dim=1)  # (B, 4)
    return torch.cat([per_asset.flatten(1), market], dim=1)


class FeatureScaler:
    """Standardisation of raw features with training moments, then clipping to +-FEATURE_CLIP."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, raw: torch.Tensor) -> FeatureScaler:
        return cls(raw.mean(0), raw.std(0).clamp_min(1e-6))

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        return ((raw - self.mean.to(raw)) / self.std.to(raw)).clamp(-FEATURE_CLIP, FEATURE_CLIP)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "std": self.std}
