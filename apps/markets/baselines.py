"""Classical 1-day VaR/ES forecasters, evaluated by a rolling out-of-sample backtest: the bar a generator must clear.

Models (all refitted on a rolling window, every `refit_every` days; between refits the fitted GARCH filter is run
forward with fixed parameters, so the volatility forecast is updated every day):
- "hs": historical simulation, empirical VaR/ES of the last `window` returns;
- "garch-n": GARCH(1,1) with normal innovations, analytic VaR/ES;
- "garch-t": GARCH(1,1) with standardised Student-t innovations, analytic VaR/ES;
- "fhs": filtered historical simulation (Barone-Adesi et al. 1999): the GARCH(1,1) filter (normal QML) scaled by
  the empirical distribution of its standardised residuals in the window.
Returns are scaled by 100 before `arch` fits them (its optimiser is tuned for percent returns).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from apps.markets.backtest import var_es_from_samples
from shared.errors import ConfigError, DataError

MODELS = ("hs", "garch-n", "garch-t", "fhs")


def normal_var_es(mu: np.ndarray, sigma: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """VaR/ES (positive losses) of r ~ N(mu, sigma^2) at tail probability alpha."""
    z = stats.norm.ppf(alpha)
    return -(mu + sigma * z), sigma * stats.norm.pdf(z) / alpha - mu


def std_t_var_es(mu: np.ndarray, sigma: np.ndarray, nu: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """VaR/ES of r = mu + sigma * e, e a Student-t with nu dof scaled to unit variance (arch's "t")."""
    scale = np.sqrt((nu - 2.0) / nu)
    q = stats.t.ppf(alpha, nu)  # lower quantile of the standard t
    es_std = (nu + q**2) / (nu - 1.0) * stats.t.pdf(q, nu) / alpha  # E[-T | T <= q] for the standard t
    return -(mu + sigma * scale * q), sigma * scale * es_std - mu


def _fit_and_filter(r100: np.ndarray, n_fit: int, dist: str):
    """Fit GARCH(1,1) on r100[:n_fit]; one-step forecasts (mu, sigma) for days n_fit..len-1 with fixed parameters,
    plus the fit's standardised residuals and parameters. Inputs/outputs in percent."""
    from arch import arch_model

    am = arch_model(r100, mean="Constant", vol="GARCH", p=1, q=1, dist="normal" if dist == "n" else "t")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on a few windows; the fit is still usable
        res = am.fit(last_obs=n_fit, disp="off", show_warning=False)
    # forecast made at index i is for day i + 1: start at n_fit - 1 to cover days n_fit .. end
    f = res.forecast(horizon=1, start=n_fit - 1, reindex=False)
    sigma = np.sqrt(f.variance.to_numpy()[:, 0])
    mu = f.mean.to_numpy()[:, 0]
    n_out = len(r100) - n_fit
    resid = np.asarray(res.std_resid)[:n_fit]
    return mu[:n_out], sigma[:n_out], resid[np.isfinite(resid)], res.params


def rolling_var_es(
    returns: pd.Series,
    alpha: float = 0.025,
    window: int = 1000,
    refit_every: int = 20,
    models=MODELS,
    progress=None,
) -> pd.DataFrame:
    """Out-of-sample 1-day VaR/ES for every day after the first `window`: a frame indexed by date with the return
    `ret` and columns `<model>_var`, `<model>_es` (positive losses)."""
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown baseline {unknown[0]!r}; choose from {', '.join(MODELS)}")
    if not 0 < alpha < 0.5:
        raise ConfigError(f"alpha (tail probability) must be in (0, 0.5), e.g. 0.025 for 97.5% VaR; got {alpha}")
    r = returns.dropna().to_numpy(dtype=float)
    if len(r) < window + refit_every:
        raise DataError(f"{len(r)} returns are too few for a {window}-day window; use a shorter --window or more data")
    n = len(r)
    out = {f"{m}_{k}": np.full(n - window, np.nan) for m in models for k in ("var", "es")}
    blocks = range(window, n, refit_every)
    for b, t0 in enumerate(blocks):
        t1 = min(t0 + refit_every, n)
        sl = slice(t0 - window, t1)  # fit on [t0 - window, t0), forecast days t0 .. t1 - 1
        o = slice(t0 - window, t1 - window)  # positions in the output
        if "hs" in models:
            # empirical VaR/ES of the trailing window, updated every day
            wins = np.lib.stride_tricks.sliding_window_view(r[t0 - window : t1 - 1], window)  # (t1 - t0, window)
            out["hs_var"][o], out["hs_es"][o] = var_es_from_samples(wins, alpha)
        if {"garch-n", "fhs"} & set(models):
            mu, sigma, z, _ = _fit_and_filter(100 * r[sl], window, "n")
            mu, sigma = mu / 100, sigma / 100
            if "garch-n" in models:
                out["garch-n_var"][o], out["garch-n_es"][o] = normal_var_es(mu, sigma, alpha)
            if "fhs" in models:
                z_var, z_es = var_es_from_samples(z, alpha)  # of the standardised residuals (losses of z)
                out["fhs_var"][o], out["fhs_es"][o] = sigma * z_var - mu, sigma * z_es - mu
        if "garch-t" in models:
            mu, sigma, _, params = _fit_and_filter(100 * r[sl], window, "t")
            out["garch-t_var"][o], out["garch-t_es"][o] = std_t_var_es(mu / 100, sigma / 100, params["nu"], alpha)
        if progress is not None:
            progress(b + 1, len(blocks))
    frame = pd.DataFrame(out, index=returns.dropna().index[window:])
    frame.insert(0, "ret", r[window:])
    return frame
