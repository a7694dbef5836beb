"""Classical multi-asset scenario generators: whole return paths after a forecast origin, the baselines that deep
generators are compared against.

Every model follows the `ScenarioModel` interface: `fit(returns)` on (T, A) daily log returns, then
`simulate(n_paths, horizon, seed, history)` -> (n_paths, horizon, A) daily log returns of the days after the origin.
- "garch-t": CCC-GARCH(1,1) with multivariate Student-t innovations (Bollerslev 1990): per-asset GARCH(1,1)-t fits,
  a constant correlation R of the standardised residuals and one common dof;
- "fhs": filtered historical simulation (Barone-Adesi et al. 1999): per-asset GARCH(1,1) (normal QML) driven by
  standardised residual vectors resampled jointly (whole days), which keeps the cross-asset dependence;
- "bootstrap": stationary bootstrap of whole days (Politis & Romano 1994), unconditional;
- "hs": historical simulation, i.i.d. whole days, unconditional.
The GARCH models filter their volatility through `history` (the real returns up to the origin) with the fitted
parameters. As in baselines.py, `arch` fits percent returns (100 * r); the paths are divided by 100 at the end.
"""

from __future__ import annotations

import numbers
import warnings
from abc import ABC, abstractmethod

import numpy as np
import torch

from apps.markets.arrays import finite_array
from apps.markets.data import MIN_ROWS
from shared.errors import ConfigError, DataError
from shared.kernels.garch import garch_paths  # the recursion: Triton on CUDA tensors, else the PyTorch loop

MAX_MEAN_ABS_RETURN = 0.25  # daily log returns average ~0.01-0.03 in size; above this they are percent or prices
BACKCAST_DAYS, BACKCAST_DECAY = 75, 0.94  # arch's GARCH backcast: EWMA of the first 75 squared residuals

# ------------------------------------------------------------------------------------------------ kernels


def garch_filter(returns: np.ndarray, mu, omega, alpha, beta) -> np.ndarray:
    """GARCH(1,1) conditional variances of `returns` (T, A) with fixed per-asset parameters (A,), all in percent.

    Returns sigma2 (T + 1, A): row t is the variance of day t given days < t, row T the one-step-ahead forecast.
    Started like arch (so the two agree to rounding): sigma2_0 = omega + (alpha + beta) * backcast, the backcast an
    EWMA (decay 0.94) of the first 75 squared returns demeaned by their sample mean. arch also clips sigma2 to very
    wide data-based bounds (1e-6..1e6 x an EWMA variance); they never bind for a fitted model and are left out.
    """
    r = np.asarray(returns, dtype=np.float64)
    eps = r - mu  # (T, A)
    tau = min(BACKCAST_DAYS, len(r))
    w = BACKCAST_DECAY ** np.arange(tau)
    backcast = (w / w.sum()) @ (r[:tau] - r.mean(0)) ** 2  # (A,)
    sigma2 = np.empty((len(r) + 1, r.shape[1]))
    sigma2[0] = omega + (alpha + beta) * backcast
    for t in range(len(r)):
        sigma2[t + 1] = omega + alpha * eps[t] ** 2 + beta * sigma2[t]
    return sigma2


def multivariate_t_innovations(rng: np.random.Generator, n_paths: int, horizon: int, chol: np.ndarray, nu: float):
    """Standardised multivariate Student-t draws (P, L, A) with correlation chol @ chol.T and unit variances:
    z = sqrt((nu - 2) / nu) * (chol @ n) / sqrt(chi2_nu / nu), one chi2 draw per (path, day) shared by the assets."""
    n = torch.from_numpy(rng.standard_normal((n_paths, horizon, len(chol))))  # (P, L, A)
    # the product in torch: numpy's stacked matmul loops over the P paths and took ~5x longer here
    x = (n @ torch.from_numpy(np.ascontiguousarray(chol.T))).numpy()  # rows ~ N(0, R)
    w = rng.chisquare(nu, (n_paths, horizon, 1)) / nu  # (P, L, 1)
    x *= np.sqrt((nu - 2.0) / nu) / np.sqrt(w)
    return x


def stationary_bootstrap_indices(rng: np.random.Generator, n_days: int, n_paths: int, horizon: int, block_length):
    """Row indices (P, L) of a stationary bootstrap (Politis & Romano 1994) of n_days rows: each day starts a new
    block at a uniform row with probability 1 / block_length, else takes the row after the previous one (wrapping)."""
    starts = rng.integers(0, n_days, (n_paths, horizon))
    new_block = rng.random((n_paths, horizon)) < 1.0 / block_length
    new_block[:, 0] = True
    day = np.arange(horizon)
    last_start = np.maximum.accumulate(np.where(new_block, day, 0), axis=1)  # (P, L) day of the current block's start
    return (np.take_along_axis(starts, last_start, axis=1) + day - last_start) % n_days


def cholesky_psd(corr: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a correlation matrix, adding jitter to the diagonal until it is positive definite."""
    for jitter in (0.0, 1e-10, 1e-8, 1e-6, 1e-4):
        try:
            return np.linalg.cholesky(corr + jitter * np.eye(len(corr)))
        except np.linalg.LinAlgError:
            continue
    raise DataError("the residual correlation matrix is not positive definite; drop duplicate or constant assets")


# ------------------------------------------------------------------------------------------------- checks


def check_returns(returns) -> np.ndarray:
    """(T, A) daily log returns as float64, finite, with at least MIN_ROWS days."""
    r = finite_array(returns, "returns", ndims=(2,))
    if len(r) < MIN_ROWS:
        raise DataError(f"returns have {len(r)} days; fitting needs at least {MIN_ROWS} (about one trading year)")
    if np.abs(r).mean() > MAX_MEAN_ABS_RETURN:
        raise DataError("returns are too large for daily log returns (percent or prices?); pass log_returns(prices)")
    return r


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------------------- models


class ScenarioModel(ABC):
    """A scenario generator: `fit` on (T, A) daily log returns, `simulate` paths after a forecast origin.

    Subclasses implement `_fit`, `_simulate` and `fitted_summary`; the public methods validate inputs first.
    """

    name: str = "base"

    def __init__(self):
        self.n_assets: int | None = None  # set by fit

    def fit(self, returns: np.ndarray) -> ScenarioModel:
        """Fit on returns (T, A): daily log returns of the training period, finite, T >= MIN_ROWS."""
        r = check_returns(returns)
        self._fit(r)
        self.n_assets = r.shape[1]
        return self

    def simulate(self, n_paths: int, horizon: int, seed: int = 0, history: np.ndarray | None = None) -> np.ndarray:
        """(n_paths, horizon, A) float64 daily log returns of the days after the origin.

        history: (T', A) real returns up to and including the origin (it may extend past the fit data); None puts
        the origin at the end of the fit data. Unconditional models ignore it.
        """
        if self.n_assets is None:
            raise RuntimeError(f"{self.name}: call fit(returns) before simulate()")
        n_paths, horizon = _check_count(n_paths, "n_paths"), _check_count(horizon, "horizon")
        if history is not None:
            history = finite_array(history, "history", ndims=(2,))
            if history.shape[1] != self.n_assets:
                raise DataError(
                    f"history has {history.shape[1]} assets but the model was fitted on {self.n_assets}; "
                    "pass the same columns in the same order"
                )
        return self._simulate(n_paths, horizon, np.random.default_rng(seed), history)

    @abstractmethod
    def fitted_summary(self) -> dict:
        """A small dict of the fitted parameters, for a report."""

    @abstractmethod
    def _fit(self, returns: np.ndarray) -> None: ...

    @abstractmethod
    def _simulate(self, n_paths: int, horizon: int, rng: np.random.Generator, history) -> np.ndarray: ...


def fit_garch(r100: np.ndarray, dist: str) -> dict[str, np.ndarray]:
    """Per-asset GARCH(1,1) fits of percent returns (T, A) with arch ("normal" or "t"): arrays (A,) of mu, omega,
    alpha, beta (and nu for "t")."""
    from arch import arch_model

    if np.any(r100.std(0) == 0):
        raise DataError("an asset has constant returns; GARCH cannot be fitted to it: drop that column")
    fits = []
    for series in r100.T:
        am = arch_model(series, mean="Constant", vol="GARCH", p=1, q=1, dist=dist)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on a few series; the fit is still usable
            fits.append(am.fit(disp="off", show_warning=False).params.to_numpy())
    params = np.array(fits)  # (A, 4 or 5): mu, omega, alpha[1], beta[1], (nu)
    names = ("mu", "omega", "alpha", "beta", "nu")[: params.shape[1]]
    return {k: params[:, i] for i, k in enumerate(names)}


class _Garch(ScenarioModel):
    """Per-asset GARCH(1,1) paths; subclasses choose the innovation distribution (`dist`, `draw_innovations`)."""

    dist = "normal"

    def _fit(self, returns):
        r100 = 100 * returns
        self.params = fit_garch(r100, self.dist)  # percent units
        self.sigma2 = garch_filter(r100, *self._garch_params())  # (T + 1, A)
        self.resid = (r100 - self.params["mu"]) / np.sqrt(self.sigma2[:-1])  # (T, A) standardised residuals

    def _garch_params(self):
        return self.params["mu"], self.params["omega"], self.params["alpha"], self.params["beta"]

    def next_variance(self, history: np.ndarray | None = None) -> np.ndarray:
        """(A,) conditional variance of the first day after the origin (log-return units): the fitted filter run
        through `history` (T', A), or the end of the fit data when None."""
        if history is None:
            return self.sigma2[-1] / 1e4
        return garch_filter(100 * np.asarray(history, dtype=np.float64), *self._garch_params())[-1] / 1e4

    @abstractmethod
    def draw_innovations(self, rng: np.random.Generator, n_paths: int, horizon: int) -> np.ndarray:
        """Standardised innovations (P, L, A)."""

    def innovation_inputs(self, rng: np.random.Generator, n_paths: int, horizon: int) -> dict:
        """The innovations as `garch_paths` takes them, from the same draws as `draw_innovations`: {"z": (P, L, A)}
        here; a resampling model passes a pool and an index instead, so the (P, L, A) gather is never built."""
        return {"z": self.draw_innovations(rng, n_paths, horizon)}

    def _simulate(self, n_paths, horizon, rng, history):
        innovations = self.innovation_inputs(rng, n_paths, horizon)
        sigma2_0 = 1e4 * self.next_variance(history)
        paths = garch_paths(*self._garch_params(), sigma2_0, **innovations).numpy()  # (P, L, A) percent
        paths /= 100
        return paths

    def fitted_summary(self) -> dict:
        p = self.params
        return {
            "model": self.name,
            "n_assets": self.n_assets,
            "n_days": len(self.resid),
            "mu_mean_pct": float(p["mu"].mean()),
            "omega_mean": float(p["omega"].mean()),
            "alpha_mean": float(p["alpha"].mean()),
            "beta_mean": float(p["beta"].mean()),
            "persistence_mean": float((p["alpha"] + p["beta"]).mean()),
        }


class GarchT(_Garch):
    """CCC-GARCH(1,1) with multivariate Student-t innovations (Bollerslev 1990): per-asset GARCH(1,1)-t fits, the
    correlation R of their standardised residuals, and one common dof nu = median of the per-asset nu (>= 2.5)."""

    name, dist = "garch-t", "t"

    def _fit(self, returns):
        super()._fit(returns)
        self.nu = max(float(np.median(self.params["nu"])), 2.5)
        self.corr = np.atleast_2d(np.corrcoef(self.resid, rowvar=False))  # (A, A)
        self.chol = cholesky_psd(self.corr)

    def draw_innovations(self, rng, n_paths, horizon):
        return multivariate_t_innovations(rng, n_paths, horizon, self.chol, self.nu)

    def fitted_summary(self) -> dict:
        a = len(self.corr)
        off_diag = self.corr[~np.eye(a, dtype=bool)]
        return super().fitted_summary() | {
            "nu": self.nu,
            "nu_asset_min": float(self.params["nu"].min()),
            "nu_asset_max": float(self.params["nu"].max()),
            "corr_mean": float(off_diag.mean()) if a > 1 else 1.0,
        }


class FilteredHS(_Garch):
    """Filtered historical simulation (Barone-Adesi et al. 1999): per-asset GARCH(1,1) with normal QML, driven by
    standardised residual vectors of whole fit days resampled with replacement (the same day for all assets)."""

    name, dist = "fhs", "normal"

    def draw_days(self, rng: np.random.Generator, n_paths: int, horizon: int) -> np.ndarray:
        """(P, L) rows of `resid` (fit days), uniform with replacement."""
        return rng.integers(0, len(self.resid), (n_paths, horizon))

    def draw_innovations(self, rng, n_paths, horizon):
        return self.resid[self.draw_days(rng, n_paths, horizon)]  # (P, L, A)

    def innovation_inputs(self, rng, n_paths, horizon):
        return {"pool": self.resid, "index": self.draw_days(rng, n_paths, horizon)}  # (T, A) and (P, L)


class StationaryBootstrap(ScenarioModel):
    """Stationary bootstrap (Politis & Romano 1994) of whole days of the training returns; unconditional.

    block_length: mean block length in days; None uses arch's `optimal_block_length` (mean over assets of its
    "stationary" column, Politis & White 2004 with Patton et al. 2009), clipped to [2, 100].
    """

    name = "bootstrap"

    def __init__(self, block_length: float | None = None):
        super().__init__()
        numeric = isinstance(block_length, numbers.Real) and not isinstance(block_length, bool)
        if block_length is not None and not (numeric and block_length >= 1):
            raise ConfigError(f"block_length must be a number >= 1 (days) or None for automatic; got {block_length!r}")
        self.requested_block_length = None if block_length is None else float(block_length)

    def _fit(self, returns):
        self.returns = returns.copy()  # (T, A), rows resampled whole
        self.block_length = self.requested_block_length
        if self.block_length is None:
            from arch.bootstrap import optimal_block_length

            self.block_length = float(np.clip(optimal_block_length(returns)["stationary"].mean(), 2.0, 100.0))

    def _simulate(self, n_paths, horizon, rng, history):
        idx = stationary_bootstrap_indices(rng, len(self.returns), n_paths, horizon, self.block_length)
        return self.returns[idx]  # (P, L, A)

    def fitted_summary(self) -> dict:
        return {
            "model": self.name,
            "n_assets": self.n_assets,
            "n_days": len(self.returns),
            "block_length": float(self.block_length),
        }


class HistoricalSimulation(ScenarioModel):
    """Historical simulation: whole days of the training returns drawn i.i.d. with replacement; unconditional."""

    name = "hs"

    def _fit(self, returns):
        self.returns = returns.copy()  # (T, A), rows resampled whole

    def _simulate(self, n_paths, horizon, rng, history):
        return self.returns[rng.integers(0, len(self.returns), (n_paths, horizon))]  # (P, L, A)

    def fitted_summary(self) -> dict:
        return {"model": self.name, "n_assets": self.n_assets, "n_days": len(self.returns)}


CLASSICAL: dict[str, type[ScenarioModel]] = {
    "garch-t": GarchT,
    "fhs": FilteredHS,
    "bootstrap": StationaryBootstrap,
    "hs": HistoricalSimulation,
}


def make_classical(name: str, **kwargs) -> ScenarioModel:
    """A new unfitted classical model by registry name."""
    if name not in CLASSICAL:
        raise ConfigError(f"unknown classical model {name!r}; choose from {', '.join(CLASSICAL)}")
    return CLASSICAL[name](**kwargs)
