"""VaR and Expected Shortfall backtests for daily risk forecasts, on plain arrays.

Conventions: returns r_t (negative = loss), VaR_t and ES_t positive loss levels, tail probability `alpha`
(0.025 for a 97.5% VaR). A hit (exceedance) is I_t = 1{-r_t > VaR_t}. The module holds the coverage tests of
Kupiec (1995) and Christoffersen (1998), the Z2 ES test of Acerbi & Szekely (2014, "Backtesting Expected
Shortfall", Risk) with its critical value simulated under the null, a flat `backtest_summary`, and
`var_es_from_samples`, which turns simulated scenario returns into VaR/ES forecasts. Inputs may be numpy
arrays, pandas Series or CPU tensors; all computation is numpy/scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from apps.markets.arrays import finite_array
from shared.errors import ConfigError, DataError


@dataclass(frozen=True)
class TestResult:
    """Outcome of a likelihood-ratio backtest.

    statistic: the LR statistic; p_value: its chi-square tail probability with `df` degrees of freedom;
    hits: number of exceedances x; n: number of days; expected: alpha * n (None for the independence test,
    which does not involve alpha).
    """

    __test__ = False  # not a pytest test class despite the name

    statistic: float
    p_value: float
    df: int
    hits: int
    n: int
    expected: float | None = None


# ---------------------------------------------------------------- validation


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"tail probability alpha={alpha} must lie in (0, 1), e.g. 0.025 for a 97.5% VaR")
    return alpha


def _as_hits(hits) -> np.ndarray:
    """A 1-D int array of 0/1 exceedance indicators, (T,)."""
    arr = finite_array(hits, "hits")
    if not np.all((arr == 0) | (arr == 1)):
        raise DataError("hits must contain only 0/1 (or booleans); compute them with exceedances(returns, var)")
    return arr.astype(np.int64)


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"series lengths differ ({lengths}); align returns and forecasts on the same days")


def _loglik_bernoulli(k: float, n: float, p: float) -> float:
    """k ln p + (n - k) ln(1 - p), with 0 ln 0 = 0 (scipy xlogy)."""
    return float(special.xlogy(k, p) + special.xlogy(n - k, 1.0 - p))


# ---------------------------------------------------------------- coverage tests


def exceedances(returns, var) -> np.ndarray:
    """Hit sequence I_t = 1{-r_t > VaR_t}: returns (T,), var (T,) or scalar -> (T,) int 0/1."""
    r = finite_array(returns, "returns")
    v = np.broadcast_to(np.asarray(var, dtype=float), r.shape) if np.ndim(var) == 0 else finite_array(var, "var")
    _same_length(returns=r, var=v)
    return (-r > v).astype(np.int64)


def kupiec_pof(hits, alpha: float) -> TestResult:
    """Kupiec (1995) proportion-of-failures test of unconditional coverage. hits: (T,) 0/1.

    LR_uc = -2 ln[(1-a)^(n-x) a^x / ((1-p)^(n-x) p^x)], p = x/n, ~ chi2(1) under H0: P(hit) = a.
    With 0 ln 0 = 0 the cases x = 0 and x = n stay finite (e.g. x = 0 gives -2 n ln(1-a)).
    """
    alpha = _check_alpha(alpha)
    h = _as_hits(hits)
    n, x = len(h), int(h.sum())
    lr = -2.0 * (_loglik_bernoulli(x, n, alpha) - _loglik_bernoulli(x, n, x / n))
    lr = lr if lr > 0 else 0.0  # guard -1e-16 (and -0.0) from rounding when p == a
    return TestResult(lr, float(stats.chi2.sf(lr, 1)), 1, x, n, alpha * n)


def christoffersen_independence(hits) -> TestResult:
    """Christoffersen (1998) test that hits form an iid (first-order Markov-free) sequence. hits: (T,) 0/1, T >= 2.

    n_ij = #{t: I_{t-1} = i, I_t = j}; pi_0 = n01/(n00+n01), pi_1 = n11/(n10+n11), pi = (n01+n11)/(T-1).
    LR_ind = -2 ln[L(pi) / L(pi_0, pi_1)] ~ chi2(1), with 0 ln 0 = 0 (an empty row contributes nothing).
    """
    h = _as_hits(hits)
    if len(h) < 2:
        raise DataError(f"independence test needs at least 2 days of hits, got {len(h)}; pass a longer series")
    prev, cur = h[:-1], h[1:]
    n01 = int(np.sum((prev == 0) & (cur == 1)))
    n00 = int(np.sum((prev == 0) & (cur == 0)))
    n11 = int(np.sum((prev == 1) & (cur == 1)))
    n10 = int(np.sum((prev == 1) & (cur == 0)))
    row0, row1, total = n00 + n01, n10 + n11, len(h) - 1
    pi = (n01 + n11) / total
    ll_null = _loglik_bernoulli(n01 + n11, total, pi)
    ll_alt = (_loglik_bernoulli(n01, row0, n01 / row0) if row0 else 0.0) + (
        _loglik_bernoulli(n11, row1, n11 / row1) if row1 else 0.0
    )
    lr = -2.0 * (ll_null - ll_alt)
    lr = lr if lr > 0 else 0.0  # guard rounding below zero
    return TestResult(lr, float(stats.chi2.sf(lr, 1)), 1, int(h.sum()), len(h), None)


def conditional_coverage(hits, alpha: float) -> TestResult:
    """Christoffersen (1998) conditional coverage: LR_cc = LR_uc + LR_ind ~ chi2(2). hits: (T,) 0/1."""
    uc = kupiec_pof(hits, alpha)
    ind = christoffersen_independence(hits)
    lr = uc.statistic + ind.statistic
    return TestResult(lr, float(stats.chi2.sf(lr, 2)), 2, uc.hits, uc.n, uc.expected)


# ---------------------------------------------------------------- Acerbi-Szekely Z2


def acerbi_szekely_z2(returns, var, es, alpha: float) -> float:
    """Acerbi & Szekely (2014) test 2: Z2 = sum_t r_t I_t / (T a ES_t) + 1. returns, var, es: (T,) or scalar var/es.

    r_t is the return (negative on a loss), so E[Z2] = 0 when ES is right and Z2 < 0 when ES is underestimated;
    reject at the lower tail (compare with `z2_critical_value`).
    """
    alpha = _check_alpha(alpha)
    r = finite_array(returns, "returns")
    hits = exceedances(r, var)
    e = np.broadcast_to(np.asarray(es, dtype=float), r.shape) if np.ndim(es) == 0 else finite_array(es, "es")
    _same_length(returns=r, es=e)
    if np.any(e <= 0):
        raise DataError("es must be positive loss levels (ES_t > 0); pass ES as a positive number, not a return")
    return float(np.sum(r * hits / e) / (len(r) * alpha) + 1.0)


def z2_critical_value(
    alpha: float, T: int, n_sim: int = 20000, level: float = 0.05, seed: int = 0, nu: float | None = None
) -> float:
    """The `level` quantile of Z2 under the null, by Monte Carlo with n_sim backtests of T days.

    Null model: iid returns from a standard normal (nu=None) or a Student-t with nu degrees of freedom, forecast
    with their exact VaR/ES. Z2 is scale-free, so the scale does not matter. Sampling is exact and cheap: the hit
    count per backtest is Binomial(T, a), and each hit's return is F^-1(U), U ~ Uniform(0, a) (the left tail).
    With a = 2.5% this gives about -0.70 at T = 250 and -0.17 at T = 4000 (Acerbi & Szekely 2014, Table 2).
    """
    alpha = _check_alpha(alpha)
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level={level} must lie in (0, 1), e.g. 0.05 for a 5% test")
    if int(T) < 1 or int(n_sim) < 1:
        raise ConfigError(f"T={T} and n_sim={n_sim} must be positive integers")
    if nu is not None and nu <= 1:
        raise ConfigError(f"Student-t nu={nu} must exceed 1 for ES to exist; use nu > 2, e.g. 5")
    dist = stats.norm if nu is None else stats.t(nu)
    q = float(dist.ppf(alpha))  # = -VaR
    # ES_a = -E[r | r < q]: normal phi(q)/a; Student-t f_nu(q)/a * (nu + q^2)/(nu - 1) (McNeil et al. 2015, 2.2.3)
    es = float(dist.pdf(q)) / alpha * (1.0 if nu is None else (nu + q * q) / (nu - 1.0))
    rng = np.random.default_rng(seed)
    counts = rng.binomial(int(T), alpha, size=int(n_sim))  # (n_sim,) hits per backtest
    tail = dist.ppf(rng.uniform(0.0, alpha, size=int(counts.sum())))  # (sum counts,) returns on hit days
    sums = np.bincount(np.repeat(np.arange(int(n_sim)), counts), weights=tail, minlength=int(n_sim))
    z2 = sums / (int(T) * alpha * es) + 1.0  # (n_sim,)
    return float(np.quantile(z2, level))


# ---------------------------------------------------------------- summary and scenario VaR/ES


def backtest_summary(returns, var, es, alpha: float, level: float = 0.05, n_sim: int = 20000, seed: int = 0) -> dict:
    """All backtests at significance `level` as a flat dict. returns, var, es: (T,) (var/es may be scalars).

    Keys: hits, expected_hits, kupiec_lr, kupiec_p, christoffersen_lr, christoffersen_p, cc_lr, cc_p, z2, z2_crit,
    pass_kupiec, pass_christoffersen, pass_z2 (Z2 critical value simulated under the normal null).
    """
    alpha = _check_alpha(alpha)
    hits = exceedances(returns, var)
    uc, ind = kupiec_pof(hits, alpha), christoffersen_independence(hits)
    cc = conditional_coverage(hits, alpha)
    z2 = acerbi_szekely_z2(returns, var, es, alpha)
    z2_crit = z2_critical_value(alpha, len(hits), n_sim=n_sim, level=level, seed=seed)
    return {
        "hits": uc.hits,
        "expected_hits": uc.expected,
        "kupiec_lr": uc.statistic,
        "kupiec_p": uc.p_value,
        "christoffersen_lr": ind.statistic,
        "christoffersen_p": ind.p_value,
        "cc_lr": cc.statistic,
        "cc_p": cc.p_value,
        "z2": z2,
        "z2_crit": z2_crit,
        "pass_kupiec": bool(uc.p_value >= level),
        "pass_christoffersen": bool(ind.p_value >= level),
        "pass_z2": bool(z2 >= z2_crit),
    }


def var_es_from_samples(samples, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Empirical VaR/ES of simulated returns. samples: (..., N) returns -> var (...), es (...), positive losses.

    VaR is the (1-a) quantile of the loss L = -r (numpy linear interpolation). ES is the discrete
    Acerbi-Tasche (2002) estimator, the mean of the worst a*N losses with a fractional weight on the last:
    ES = [sum_{i<=k} L_(i) + (aN - k) L_(k+1)] / (aN), k = floor(aN), L_(1) >= L_(2) >= ... .
    """
    alpha = _check_alpha(alpha)
    x = np.asarray(samples, dtype=float)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise DataError(f"samples must have shape (..., N) with N >= 1 scenarios, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise DataError("samples contain NaN or inf; check the scenario generator output")
    n = x.shape[-1]
    losses = -np.sort(x, axis=-1)  # (..., N), largest loss first
    var = np.quantile(-x, 1.0 - alpha, axis=-1)
    m = alpha * n
    k = int(np.floor(m))
    es = losses[..., :k].sum(axis=-1)
    if k < n:
        es = es + (m - k) * losses[..., k]
    return var, es / m
