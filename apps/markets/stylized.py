"""Stylized facts of daily log returns and the scores that compare real data with generated scenario paths.

Facts follow Cont (2001, "Empirical properties of asset returns: stylized facts and statistical issues",
Quantitative Finance 1): heavy tails (excess kurtosis, Hill tail index), no linear autocorrelation, volatility
clustering (ACF of |r| and r^2), the leverage effect, aggregational Gaussianity and correlations rising in stress.
Scores follow Wiese et al. (2020, "Quant GANs: deep generation of financial time series", Quantitative Finance 20):
ACF and leverage scores (Euclidean distance between the real statistic and its mean over generated paths), EMD of
t-day returns, the multi-asset cross-correlation l1 distance, and the TimeGAN-style discriminative score
(Yoon et al. 2019) |accuracy - 0.5| of a post-hoc classifier.

Shapes: real returns (T,) or (T, A) for A assets; generated paths (P, L) or (P, L, A). Multi-asset scores are the
mean of the per-asset scores. All computation is vectorised numpy/scipy; inputs must be finite.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from apps.markets.arrays import finite_array
from shared.errors import ConfigError, DataError

EMD_HORIZONS = (1, 5, 20, 100)
MIN_LENGTH = 3  # fewer observations give no autocorrelation at lag 1


# ---------------------------------------------------------------- validation


def _pair(real, generated) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (real, generated) pair and return them as (T, A) and (P, L, A)."""
    r = finite_array(real, "real", (1, 2))
    g = finite_array(generated, "generated", (2, 3))
    if g.ndim != r.ndim + 1:
        raise DataError(
            f"real {r.shape} and generated {g.shape} do not match; use real (T,) with generated (P, L), "
            "or real (T, A) with generated (P, L, A)"
        )
    r = r[:, None] if r.ndim == 1 else r  # (T, A)
    g = g[..., None] if g.ndim == 2 else g  # (P, L, A)
    if r.shape[1] != g.shape[2]:
        raise DataError(f"real has {r.shape[1]} assets but generated has {g.shape[2]}; pass the same assets in both")
    if r.shape[0] < MIN_LENGTH or g.shape[1] < MIN_LENGTH:
        raise DataError(f"series too short (real T={r.shape[0]}, path length L={g.shape[1]}); need >= {MIN_LENGTH}")
    return r, g


def _rows(x, name: str) -> np.ndarray:
    """(T,) or (P, L) -> (P, L) with P = 1 for a single series, validated."""
    arr = finite_array(x, name, (1, 2))
    arr = arr[None, :] if arr.ndim == 1 else arr
    if arr.shape[1] < MIN_LENGTH:
        raise DataError(f"{name} has length {arr.shape[1]}; need at least {MIN_LENGTH} returns")
    return arr


def _check_lag(max_lag: int, length: int) -> int:
    if not isinstance(max_lag, (int, np.integer)) or max_lag < 1:
        raise ConfigError(f"max_lag must be a positive integer, got {max_lag!r}")
    if max_lag > length - 1:
        raise ConfigError(f"max_lag={max_lag} exceeds series length - 1 = {length - 1}; use a smaller max_lag")
    return int(max_lag)


_TRANSFORMS = {"id": lambda x: x, "abs": np.abs, "sq": np.square}


def _transform(f: str):
    if f not in _TRANSFORMS:
        raise ConfigError(f"f must be one of {sorted(_TRANSFORMS)}, got {f!r}")
    return _TRANSFORMS[f]


# ---------------------------------------------------------------- autocorrelation and leverage


def _cross_cov(a: np.ndarray, b: np.ndarray, max_lag: int) -> np.ndarray:
    """Biased lagged cross-covariance c(k) = (1/L) sum_{t=0}^{L-1-k} a_t b_{t+k}, k = 0..max_lag, per row.

    a, b: (P, L), already demeaned. Linear (not circular) correlation via FFT with zero padding to >= 2L.
    Returns (P, max_lag + 1).
    """
    length = a.shape[1]
    n = 1 << int(np.ceil(np.log2(2 * length)))
    fa = np.fft.rfft(a, n=n, axis=1)
    fb = np.fft.rfft(b, n=n, axis=1)
    return np.fft.irfft(np.conj(fa) * fb, n=n, axis=1)[:, : max_lag + 1] / length


def _acf_rows(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Per-row biased ACF rho(k) = gamma(k) / gamma(0), k = 1..max_lag, of (P, L) -> (P, max_lag).

    A constant row (gamma(0) = 0) has ACF 0 at every lag, so a collapsed generator scores badly instead of failing.
    """
    d = x - x.mean(axis=1, keepdims=True)
    c = _cross_cov(d, d, max_lag)  # (P, max_lag + 1)
    var = c[:, :1]
    return np.divide(c[:, 1:], var, out=np.zeros_like(c[:, 1:]), where=var > 1e-300)


def acf(x, max_lag: int) -> np.ndarray:
    """Autocorrelation at lags 1..max_lag, biased estimator with the mean removed (Cont 2001, eq. 1).

    rho(k) = sum_{t=1}^{L-k} (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2.
    x: (T,) one series, or (P, L) paths, for which the mean over paths of the per-path ACFs is returned.
    Returns (max_lag,).
    """
    rows = _rows(x, "x")
    return _acf_rows(rows, _check_lag(max_lag, rows.shape[1])).mean(axis=0)


def _leverage_rows(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Per-row L(k) = Corr(r_t, r_{t+k}^2), k = 1..max_lag, biased like the ACF, (P, L) -> (P, max_lag)."""
    a = x - x.mean(axis=1, keepdims=True)
    b = x**2 - (x**2).mean(axis=1, keepdims=True)
    c = _cross_cov(a, b, max_lag)[:, 1:]
    scale = np.sqrt((a**2).mean(axis=1) * (b**2).mean(axis=1))[:, None]
    return np.divide(c, scale, out=np.zeros_like(c), where=scale > 1e-300)


def leverage(x, max_lag: int) -> np.ndarray:
    """Leverage effect L(k) = Corr(r_t, r_{t+k}^2), k = 1..max_lag (Cont 2001, sec. 3; Wiese et al. 2020, sec. 2).

    Negative for small k on equity indices: falls in price raise future volatility.
    x: (T,) or (P, L) (mean over paths). Returns (max_lag,).
    """
    rows = _rows(x, "x")
    return _leverage_rows(rows, _check_lag(max_lag, rows.shape[1])).mean(axis=0)


def _per_asset_score(real, generated, max_lag: int, stat) -> float:
    """|| stat(real) - mean_p stat(generated_p) ||_2 over lags 1..min(max_lag, L-1, T-1), mean over assets."""
    r, g = _pair(real, generated)
    if not isinstance(max_lag, (int, np.integer)) or max_lag < 1:
        raise ConfigError(f"max_lag must be a positive integer, got {max_lag!r}")
    lag = int(min(max_lag, g.shape[1] - 1, r.shape[0] - 1))
    scores = [
        np.linalg.norm(stat(r[None, :, a], lag)[0] - stat(g[:, :, a], lag).mean(axis=0)) for a in range(r.shape[1])
    ]
    return float(np.mean(scores))


def acf_score(real, generated, f: str = "id", max_lag: int = 250) -> float:
    """ACF score of Wiese et al. (2020, eq. 12): || ACF(f(real)) - mean_p ACF(f(generated_p)) ||_2.

    f: "id", "abs" or "sq" (linear autocorrelation; volatility clustering via |r| or r^2). Lags 1..max_lag, capped
    at path length - 1. real (T,) / (T, A); generated (P, L) / (P, L, A). Lower is better.
    """
    fn = _transform(f)
    return _per_asset_score(
        fn(np.asarray(real, dtype=np.float64)), fn(np.asarray(generated, dtype=np.float64)), max_lag, _acf_rows
    )


def leverage_score(real, generated, max_lag: int = 250) -> float:
    """Leverage score: || L(real) - mean_p L(generated_p) ||_2 over lags 1..max_lag (capped at L - 1)."""
    return _per_asset_score(real, generated, max_lag, _leverage_rows)


# ---------------------------------------------------------------- distributions at several horizons


def _aggregate(rows: np.ndarray, horizon: int) -> np.ndarray:
    """Non-overlapping `horizon`-day sums of log returns within each row of (P, L), pooled -> (P * (L // h),)."""
    blocks = rows.shape[1] // horizon
    return rows[:, : blocks * horizon].reshape(rows.shape[0], blocks, horizon).sum(axis=2).ravel()


def _overlapping(x: np.ndarray, horizon: int) -> np.ndarray:
    """Overlapping `horizon`-day sums r_t + ... + r_{t+h-1} of (T,) -> (T - h + 1,) via a cumulative sum."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    return c[horizon:] - c[:-horizon]


def _check_horizon(horizon: int, length: int, name: str) -> int:
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"horizon must be a positive integer, got {horizon!r}")
    if horizon > length:
        raise ConfigError(f"horizon={horizon} exceeds the {name} length {length}; use a shorter horizon")
    return int(horizon)


def emd(real, generated, horizon: int = 1) -> float:
    """EMD(t) of Wiese et al. (2020): Wasserstein-1 between real and generated `horizon`-day log returns.

    Generated: non-overlapping sums within each path, pooled over paths (independent blocks, as a path would be
    used). Real: OVERLAPPING sums r_t + ... + r_{t+h-1}; they have the same marginal law as non-overlapping ones
    but T - h + 1 instead of T // h samples, which matters at h = 100 on a few thousand days.
    real (T,) / (T, A); generated (P, L) / (P, L, A); multi-asset: mean over assets.
    """
    r, g = _pair(real, generated)
    h = _check_horizon(horizon, min(r.shape[0], g.shape[1]), "real or path")
    out = [stats.wasserstein_distance(_overlapping(r[:, a], h), _aggregate(g[:, :, a], h)) for a in range(r.shape[1])]
    return float(np.mean(out))


def excess_kurtosis(x) -> float | np.ndarray:
    """Sample excess kurtosis m4 / m2^2 - 3 (0 for a Gaussian, 6 / (nu - 4) for Student-t(nu), nu > 4).

    x: (T,) -> float; (T, A) -> (A,) per asset.
    """
    arr = finite_array(x, "x", (1, 2))
    if arr.shape[0] < 4:
        raise DataError(f"x has {arr.shape[0]} observations; kurtosis needs at least 4")
    d = arr - arr.mean(axis=0)
    m2 = (d**2).mean(axis=0)
    if np.any(m2 <= 0):
        raise DataError("x is constant; kurtosis is undefined for a series with zero variance")
    k = (d**4).mean(axis=0) / m2**2 - 3.0
    return float(k) if arr.ndim == 1 else k


def hill_tail_index(x, tail_fraction: float = 0.05) -> float:
    """Hill (1975) estimator of the tail index alpha of |x| (P(|X| > u) ~ u^-alpha).

    With |x|_(1) >= |x|_(2) >= ... and k = floor(tail_fraction * n) upper order statistics:
    1 / alpha = (1/k) sum_{i=1}^k ln |x|_(i) - ln |x|_(k+1). Daily returns give alpha ~ 2-5 (Cont 2001, sec. 4);
    Student-t(nu) has alpha = nu. x of any shape is pooled.
    """
    arr = finite_array(x, "x", (1, 2, 3)).ravel()
    if not 0.0 < tail_fraction < 0.5:
        raise ConfigError(f"tail_fraction must be in (0, 0.5), got {tail_fraction}")
    k = int(np.floor(tail_fraction * arr.size))
    if k < 10:
        raise DataError(f"only {k} tail points ({arr.size} x {tail_fraction}); pass more data or raise tail_fraction")
    top = -np.sort(-np.abs(arr))[: k + 1]  # descending, (k + 1,)
    if top[k] <= 0:
        raise DataError("the (k+1)-th largest |x| is 0; too many zero returns for the Hill estimator")
    return float(1.0 / (np.log(top[:k]).mean() - np.log(top[k])))


def aggregational_gaussianity(x, horizons: tuple[int, ...] = (1, 5, 20, 60)) -> np.ndarray:
    """Excess kurtosis of non-overlapping `h`-day log returns for each h (Cont 2001, sec. 3, fact 5).

    It falls towards 0 as h grows when returns have a finite variance. x: (T,) or (P, L) paths (blocks within each
    path, pooled). Returns (len(horizons),).
    """
    rows = _rows(x, "x")
    out = []
    for h in horizons:
        h = _check_horizon(h, rows.shape[1], "series")
        agg = _aggregate(rows, h)
        if agg.size < 20:
            raise DataError(f"only {agg.size} non-overlapping {h}-day returns; pass more data or shorter horizons")
        out.append(excess_kurtosis(agg))
    return np.asarray(out)


# ---------------------------------------------------------------- cross-sectional dependence


def _corr(x: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix of (N, A) columns; (A, A)."""
    if np.any(x.std(axis=0) <= 0):
        raise DataError("an asset has zero variance; correlations are undefined, drop constant series")
    return np.corrcoef(x, rowvar=False)


def cross_correlation_l1(real, generated) -> float:
    """Cross-correlation l1 score (Wiese et al. 2020 multi-asset): sum_{i<j} |rho_ij(real) - rho_ij(generated)|.

    Each asset pair counts once (upper triangle). real (T, A); generated (P, L, A), its correlation pooled over
    all P * L days (demeaned with the pooled mean).
    """
    r, g = _pair(real, generated)
    if r.shape[1] < 2:
        raise DataError("cross-correlation needs >= 2 assets; pass real (T, A) and generated (P, L, A) with A >= 2")
    iu = np.triu_indices(r.shape[1], k=1)
    return float(np.abs(_corr(r)[iu] - _corr(g.reshape(-1, g.shape[2]))[iu]).sum())


def high_vol_correlation(x, quantile: float = 0.9) -> tuple[float, float]:
    """Mean off-diagonal correlation on stress days vs the other days (correlations rise in stress, Cont 2001).

    Stress day: cross-sectional mean |r_t| above its `quantile`. x: (T, A), or (P, L, A) pooled over paths.
    Returns (corr_high, corr_rest). Conditioning on large moves biases correlations up even for a constant-
    correlation Gaussian (Forbes & Rigobon 2002): compare real and generated, not the two numbers alone.
    """
    arr = finite_array(x, "x", (2, 3))
    arr = arr.reshape(-1, arr.shape[-1])  # (N, A)
    if arr.shape[1] < 2:
        raise DataError("high_vol_correlation needs at least 2 assets; pass x with shape (T, A), A >= 2")
    if not 0.0 < quantile < 1.0:
        raise ConfigError(f"quantile must be in (0, 1), got {quantile}")
    stress = np.abs(arr).mean(axis=1)
    high = stress > np.quantile(stress, quantile)
    if high.sum() < 3 or (~high).sum() < 3:
        raise DataError(f"too few days on one side of the {quantile} quantile; pass more days or change quantile")
    iu = np.triu_indices(arr.shape[1], k=1)
    return float(_corr(arr[high])[iu].mean()), float(_corr(arr[~high])[iu].mean())


# ---------------------------------------------------------------- discriminative score


def _window_features(w: np.ndarray) -> np.ndarray:
    """Features of (N, L, A) windows -> (N, F): per asset 20 quantiles of the sorted returns, realised vol, mean,
    ACF of |r| at lags 1..5 (vol clustering); plus pairwise correlations when A > 1."""
    n, length, assets = w.shape
    q = np.linspace(0.0, 1.0, min(20, length))
    feats = []
    for a in range(assets):
        x = w[:, :, a]
        feats.append(np.quantile(x, q, axis=1).T)  # sorted returns, (N, Q)
        feats.append(np.sqrt((x**2).mean(axis=1, keepdims=True)))  # realised vol
        feats.append(x.mean(axis=1, keepdims=True))
        feats.append(_acf_rows(np.abs(x), min(5, length - 1)))
    if assets > 1:
        d = w - w.mean(axis=1, keepdims=True)
        cov = np.einsum("nla,nlb->nab", d, d)
        sd = np.sqrt(np.einsum("naa->na", cov))
        corr = cov / np.maximum(sd[:, :, None] * sd[:, None, :], 1e-300)
        iu = np.triu_indices(assets, k=1)
        feats.append(corr[:, iu[0], iu[1]])
    return np.concatenate(feats, axis=1)


def discriminative_score(real_windows, fake_windows, seed: int = 0, test_fraction: float = 0.3) -> float:
    """Discriminative score (Yoon et al. 2019, TimeGAN): |test accuracy - 0.5| of a post-hoc classifier.

    Standardised logistic regression on window features (quantiles of sorted returns, realised vol, mean, |r| ACF
    lags 1-5, pairwise correlations). Both classes are subsampled to the same size so chance accuracy is 0.5;
    stratified train/test split. 0 = indistinguishable, 0.5 = perfectly separated.
    real_windows (N, L) / (N, L, A); fake_windows (M, L) / (M, L, A).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    r = finite_array(real_windows, "real_windows", (2, 3))
    f = finite_array(fake_windows, "fake_windows", (2, 3))
    r = r[..., None] if r.ndim == 2 else r
    f = f[..., None] if f.ndim == 2 else f
    if r.shape[1:] != f.shape[1:]:
        raise DataError(f"real windows {r.shape[1:]} and fake windows {f.shape[1:]} differ; cut both to one (L, A)")
    if r.shape[1] < MIN_LENGTH:
        raise DataError(f"window length {r.shape[1]} is too short; use windows of at least {MIN_LENGTH} days")
    n = min(len(r), len(f))
    if n < 20:
        raise DataError(f"only {n} windows in the smaller set; pass at least 20 real and 20 fake windows")
    rng = np.random.default_rng(seed)
    r = r[rng.choice(len(r), n, replace=False)]
    f = f[rng.choice(len(f), n, replace=False)]
    feats = _window_features(np.concatenate([r, f]))
    labels = np.concatenate([np.zeros(n), np.ones(n)])
    x_tr, x_te, y_tr, y_te = train_test_split(
        feats, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    clf.fit(x_tr, y_tr)
    return float(abs(clf.score(x_te, y_te) - 0.5))


# ---------------------------------------------------------------- summary table


def stylized_facts_table(
    real, generated_by_name: dict, max_lag: int = 250, horizons: tuple[int, ...] = EMD_HORIZONS, seed: int = 0
) -> list[dict]:
    """One flat row per generator: scores against `real` and facts of the generated returns.

    real (T,) / (T, A); each generated (P, L) / (P, L, A). Keys: name, acf_id, acf_abs, acf_sq, leverage,
    emd_<h> for each horizon h <= L, excess_kurtosis and hill_tail_index (generated returns pooled, mean over
    assets), cross_corr_l1 (A > 1 only) and discriminative (real cut into non-overlapping length-L windows; NaN
    when fewer than 20 real windows fit or there are fewer than 20 paths).
    """
    if not generated_by_name:
        raise ConfigError("generated_by_name is empty; pass {name: paths} for at least one generator")
    rows = []
    for name, gen in generated_by_name.items():
        r, g = _pair(real, gen)
        row = {"name": str(name)}
        for f in ("id", "abs", "sq"):
            row[f"acf_{f}"] = acf_score(r, g, f=f, max_lag=max_lag)
        row["leverage"] = leverage_score(r, g, max_lag=max_lag)
        for h in horizons:
            if h <= min(g.shape[1], r.shape[0]):
                row[f"emd_{h}"] = emd(r, g, horizon=h)
        pooled = g.reshape(-1, g.shape[2])
        row["excess_kurtosis"] = float(np.mean(excess_kurtosis(pooled)))
        row["hill_tail_index"] = float(np.mean([hill_tail_index(pooled[:, a]) for a in range(g.shape[2])]))
        if r.shape[1] > 1:
            row["cross_corr_l1"] = cross_correlation_l1(r, g)
        length = g.shape[1]
        n_win = r.shape[0] // length
        if n_win >= 20 and g.shape[0] >= 20:
            windows = r[: n_win * length].reshape(n_win, length, r.shape[1])
            row["discriminative"] = discriminative_score(windows, g, seed=seed)
        else:
            row["discriminative"] = float("nan")
        rows.append(row)
    return rows
