"""Unit tests for apps/markets/stylized.py: stylized facts against closed forms and the real-vs-generated scores."""

import numpy as np
import pytest

from apps.markets import stylized as sf
from shared.errors import ConfigError, DataError


def _ar1(phi, n, rng):
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0]
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def _garch(n, rng, omega=0.05, alpha=0.1, beta=0.85, paths=1):
    """GARCH(1,1) with Gaussian shocks, (paths, n): clustered volatility, ACF of |r| positive."""
    z = rng.standard_normal((paths, n))
    r = np.empty((paths, n))
    s2 = np.full(paths, omega / (1 - alpha - beta))
    for t in range(n):
        r[:, t] = np.sqrt(s2) * z[:, t]
        s2 = omega + alpha * r[:, t] ** 2 + beta * s2
    return r


def test_acf_ar1_matches_phi_power():
    x = _ar1(0.6, 20000, np.random.default_rng(0))
    np.testing.assert_allclose(sf.acf(x, 5), 0.6 ** np.arange(1, 6), atol=0.03)


def test_acf_paths_is_mean_of_per_path_acfs():
    x = np.random.default_rng(1).standard_normal((4, 100))
    np.testing.assert_allclose(sf.acf(x, 3), np.mean([sf.acf(p, 3) for p in x], axis=0))


def test_acf_score_self_zero_and_clustering_detected():
    rng = np.random.default_rng(2)
    real = _garch(10000, rng)[0]
    assert sf.acf_score(real, real[None, :], f="abs") < 1e-12
    clustered = _garch(1000, rng, paths=20)
    iid = rng.standard_normal((20, 1000))
    assert sf.acf_score(real, iid, f="abs", max_lag=20) > 2 * sf.acf_score(real, clustered, f="abs", max_lag=20)


def test_leverage_negative_when_returns_drive_future_vol_down():
    rng = np.random.default_rng(3)
    z = rng.standard_normal(20001)
    r = np.exp(-0.5 * z[:-1]) * z[1:]  # r_t = sigma_t z_t, sigma_t = exp(-z_{t-1} / 2): a fall raises future vol
    lev = sf.leverage(r, 3)
    assert lev[0] < -0.1
    assert sf.leverage_score(r, r[None, :], max_lag=10) < 1e-12


def test_excess_kurtosis_normal_and_t5():
    rng = np.random.default_rng(4)
    assert abs(sf.excess_kurtosis(rng.standard_normal(200000))) < 0.05
    assert 4.0 < sf.excess_kurtosis(rng.standard_t(5, 2_000_000)) < 8.5  # 6 / (nu - 4) = 6


def test_hill_tail_index_t3():
    alpha = sf.hill_tail_index(np.random.default_rng(5).standard_t(3, 100000), tail_fraction=0.02)
    assert 2.0 <= alpha <= 4.5


def test_emd_identical_and_shift():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((10, 200))
    real = x.ravel()
    assert sf.emd(real, x, horizon=1) == pytest.approx(0.0, abs=1e-12)
    assert sf.emd(real, x + 0.3, horizon=1) == pytest.approx(0.3, abs=1e-9)
    assert sf.emd(real, x + 0.3, horizon=5) == pytest.approx(1.5, abs=0.1)  # 5-day shift 5 * 0.3


def test_aggregational_gaussianity_decreasing_for_t4():
    x = np.random.default_rng(7).standard_t(4, 300000)
    k = sf.aggregational_gaussianity(x, horizons=(1, 5, 20, 60))
    assert np.all(np.diff(k) < 0), k
    assert k[-1] < 1.0


def test_cross_correlation_l1_and_high_vol():
    rng = np.random.default_rng(8)
    cov = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])
    real = rng.multivariate_normal(np.zeros(3), cov, 3000)
    assert sf.cross_correlation_l1(real, real[None]) == pytest.approx(0.0, abs=1e-12)
    indep = rng.standard_normal((5, 600, 3))
    assert sf.cross_correlation_l1(real, indep) == pytest.approx(1.0, abs=0.15)
    high, rest = sf.high_vol_correlation(real, 0.9)
    assert -1 <= rest <= high <= 1


def test_discriminative_score_same_vs_different():
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((400, 30)), rng.standard_normal((400, 30))
    assert sf.discriminative_score(a, b, seed=0) < 0.1
    assert sf.discriminative_score(a, 2.0 * rng.standard_normal((400, 30)), seed=0) > 0.3


def test_stylized_facts_table_rows():
    rng = np.random.default_rng(10)
    real = rng.standard_normal((2000, 2))
    gen = {"iid": rng.standard_normal((30, 100, 2)), "scaled": 3 * rng.standard_normal((30, 100, 2))}
    rows = sf.stylized_facts_table(real, gen)
    assert [r["name"] for r in rows] == ["iid", "scaled"]
    assert {
        "acf_id",
        "acf_abs",
        "acf_sq",
        "leverage",
        "emd_1",
        "emd_100",
        "excess_kurtosis",
        "hill_tail_index",
        "cross_corr_l1",
        "discriminative",
    } <= set(rows[0])
    assert rows[0]["emd_1"] < rows[1]["emd_1"]
    assert rows[0]["discriminative"] < rows[1]["discriminative"]


def test_bad_input_raises():
    x = np.random.default_rng(11).standard_normal(100)
    bad = x.copy()
    bad[5] = np.nan
    with pytest.raises(DataError):
        sf.acf(bad, 5)
    with pytest.raises(DataError):
        sf.acf(x[:2], 1)
    with pytest.raises(ConfigError):
        sf.acf(x, 100)
    with pytest.raises(ConfigError):
        sf.acf_score(x, x[None], f="log")
    with pytest.raises(DataError):
        sf.emd(x, x[None, :, None])  # (T,) real with (P, L, A) paths
    with pytest.raises(DataError):
        sf.hill_tail_index(x[:50])
    with pytest.raises(DataError):
        sf.discriminative_score(x.reshape(10, 10), x.reshape(10, 10))
