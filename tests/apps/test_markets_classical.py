"""Unit tests for apps/markets/classical.py: shapes and determinism of every scenario model, the GARCH filter against
arch's own recursion and forecast, parameter recovery on simulated GARCH-t data, the path recursion against a plain
loop, joint resampling (FHS, bootstrap, HS) and the CCC-t innovation correlation."""

import numpy as np
import pytest
import torch
from scipy import stats

from apps.markets.classical import (
    CLASSICAL,
    FilteredHS,
    GarchT,
    HistoricalSimulation,
    StationaryBootstrap,
    cholesky_psd,
    garch_filter,
    garch_paths,
    make_classical,
    multivariate_t_innovations,
    stationary_bootstrap_indices,
)
from apps.markets.data import load_bundled, log_returns
from shared.errors import ConfigError, DataError

# GARCH(1,1) in percent: persistence 0.98, unconditional variance omega / (1 - alpha - beta) = 2.5 (sd 1.58 %/day)
MU, OMEGA, ALPHA, BETA, NU = 0.03, 0.05, 0.08, 0.90, 6.0


def simulate_garch_t(n_days: int, corr: np.ndarray, seed: int, burn: int = 500) -> np.ndarray:
    """(n_days, A) daily log returns of a CCC-GARCH(1,1)-t with the parameters above."""
    a = len(corr)
    z = multivariate_t_innovations(np.random.default_rng(seed), 1, n_days + burn, np.linalg.cholesky(corr), NU)
    p = [np.full(a, v) for v in (MU, OMEGA, ALPHA, BETA)]
    r100 = garch_paths(*p, np.full(a, OMEGA / (1 - ALPHA - BETA)), z).numpy()[0, burn:]
    return r100 / 100


CORR3 = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.4], [0.3, 0.4, 1.0]])


@pytest.fixture(scope="module")
def returns3() -> np.ndarray:
    return simulate_garch_t(1000, CORR3, seed=1)  # (1000, 3)


@pytest.fixture(scope="module")
def fitted(returns3) -> dict:
    return {name: cls().fit(returns3) for name, cls in CLASSICAL.items()}


# ------------------------------------------------------------------------------------------ interface


@pytest.mark.parametrize("name", list(CLASSICAL))
def test_shapes_and_determinism(fitted, returns3, name):
    model = fitted[name]
    assert model.name == name and make_classical(name).name == name
    a = model.simulate(7, 11, seed=3)
    assert a.shape == (7, 11, 3) and a.dtype == np.float64 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, model.simulate(7, 11, seed=3))
    assert not np.array_equal(a, model.simulate(7, 11, seed=4))
    b = model.simulate(1, 1, seed=3, history=returns3[:300])
    assert b.shape == (1, 1, 3)
    summary = model.fitted_summary()
    assert summary["model"] == name and summary["n_assets"] == 3


def test_conditional_models_use_history_unconditional_ignore_it(fitted, returns3):
    calm, wild = returns3[:400] * 0.2, returns3[:400] * 3.0
    for name in ("garch-t", "fhs"):
        m = fitted[name]
        assert np.all(m.next_variance(wild) > 5 * m.next_variance(calm))
        for history in (calm, wild):  # day 1 after the origin has the filtered variance
            sd = m.simulate(4000, 1, history=history).std(axis=(0, 1))
            np.testing.assert_allclose(sd, np.sqrt(m.next_variance(history)), rtol=0.1)
    for name in ("bootstrap", "hs"):
        m = fitted[name]
        np.testing.assert_array_equal(m.simulate(5, 20, history=wild), m.simulate(5, 20, history=calm))


# ----------------------------------------------------------------------------------------------- GARCH


def test_filter_matches_arch_recursion_and_forecast():
    from arch import arch_model

    r100 = 100 * log_returns(load_bundled("sp500-index")).to_numpy()[:, 0]  # (T,) real S&P 500 returns, percent
    fit_days, hist_days = 1500, 2500
    am = arch_model(r100[:fit_days], mean="Constant", vol="GARCH", p=1, q=1, dist="normal")
    res = am.fit(disp="off", show_warning=False)
    params = res.params.to_numpy()  # mu, omega, alpha, beta
    sigma2 = garch_filter(r100[:fit_days, None], *params)[:, 0]  # (T + 1,)
    np.testing.assert_allclose(sigma2[:-1], res.conditional_volatility**2, rtol=1e-9)
    np.testing.assert_allclose(sigma2[-1], res.forecast(horizon=1, reindex=False).variance.iloc[-1, 0], rtol=1e-9)
    # a history beyond the fit data, filtered with the fixed parameters
    fixed = arch_model(r100[:hist_days], mean="Constant", vol="GARCH", p=1, q=1, dist="normal").fix(params)
    expected = fixed.forecast(horizon=1, reindex=False).variance.iloc[-1, 0]
    np.testing.assert_allclose(garch_filter(r100[:hist_days, None], *params)[-1, 0], expected, rtol=1e-9)
    model = FilteredHS().fit(r100[:fit_days, None] / 100)
    np.testing.assert_allclose(model.params["omega"][0], params[1], rtol=1e-6)
    np.testing.assert_allclose(model.next_variance(r100[:hist_days, None] / 100)[0], expected / 1e4, rtol=1e-6)


def test_garch_paths_matches_plain_loop():
    rng = np.random.default_rng(0)
    p, n, a = 3, 5, 2
    mu, omega, alpha, beta = rng.uniform(0, 0.1, a), rng.uniform(0.01, 0.1, a), [0.05, 0.1], [0.9, 0.85]
    s0 = rng.uniform(0.5, 2.0, (p, a))  # a different starting variance per path
    z = rng.standard_normal((p, n, a))
    expected = np.empty_like(z)
    for i in range(p):
        for j in range(a):
            s2 = s0[i, j]
            for t in range(n):
                eps = np.sqrt(s2) * z[i, t, j]
                expected[i, t, j] = mu[j] + eps
                s2 = omega[j] + alpha[j] * eps**2 + beta[j] * s2
    np.testing.assert_allclose(garch_paths(mu, omega, alpha, beta, s0, z).numpy(), expected, rtol=1e-12)
    out32 = garch_paths(mu, omega, alpha, beta, s0, torch.from_numpy(z).float())
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_simulate_is_the_recursion_from_the_filtered_state(fitted):
    m = fitted["garch-t"]
    z = m.draw_innovations(np.random.default_rng(5), 4, 3)  # the draws simulate(seed=5) makes
    mu, omega, alpha, beta = (m.params[k] for k in ("mu", "omega", "alpha", "beta"))
    paths = m.simulate(4, 3, seed=5)
    np.testing.assert_allclose(paths[:, 0], (mu + np.sqrt(1e4 * m.next_variance()) * z[:, 0]) / 100, rtol=1e-12)
    s1 = omega + alpha * (100 * paths[:, 0] - mu) ** 2 + beta * 1e4 * m.next_variance()
    np.testing.assert_allclose(paths[:, 1], (mu + np.sqrt(s1) * z[:, 1]) / 100, rtol=1e-10)


def test_fhs_bootstraps_through_the_kernel_op_without_the_gather(fitted):
    """FHS hands the residual pool and the day index to `garch_paths`; the paths are those of the gathered
    innovations resid[idx] exactly (same draws, same arithmetic)."""
    from shared.kernels import garch

    assert garch_paths is garch.garch_paths  # markets runs the shared op (Triton on CUDA, the loop on CPU)
    m = fitted["fhs"]
    rng = np.random.default_rng(5)
    inputs = m.innovation_inputs(rng, 6, 9)
    assert inputs["pool"] is m.resid and inputs["index"].shape == (6, 9)
    z = m.draw_innovations(np.random.default_rng(5), 6, 9)  # the same draws, materialised (P, L, A)
    np.testing.assert_array_equal(z, m.resid[inputs["index"]])
    mu, omega, alpha, beta = (m.params[k] for k in ("mu", "omega", "alpha", "beta"))
    expected = garch_paths(mu, omega, alpha, beta, 1e4 * m.next_variance(), z).numpy() / 100
    np.testing.assert_array_equal(m.simulate(6, 9, seed=5), expected)


def test_garch_t_recovers_known_parameters():
    corr = np.array([[1.0, 0.5], [0.5, 1.0]])
    model = GarchT().fit(simulate_garch_t(4000, corr, seed=2))
    p = model.params
    np.testing.assert_allclose(p["alpha"] + p["beta"], ALPHA + BETA, atol=0.05)
    np.testing.assert_allclose(p["alpha"], ALPHA, atol=0.03)
    np.testing.assert_allclose(p["mu"], MU, atol=0.08)  # sd 1.6 %/day over 4000 days: s.e. 0.025
    assert 4.0 < model.nu < 9.0
    np.testing.assert_allclose(model.corr, corr, atol=0.05)


def test_ccc_innovations_have_correlation_r_and_unit_variance(fitted):
    m = fitted["garch-t"]
    np.testing.assert_allclose(m.corr, CORR3, atol=0.1)  # 1000 days of data: a loose check of the fit
    z = m.draw_innovations(np.random.default_rng(0), 20_000, 5).reshape(-1, 3)  # (100000, 3)
    np.testing.assert_allclose(np.corrcoef(z, rowvar=False), m.corr, atol=0.01)
    np.testing.assert_allclose(z.var(0), 1.0, atol=0.05)
    assert np.all(stats.kurtosis(z, axis=0) > 0.5)  # Student-t tails (nu ~ 6: excess kurtosis 3)


def test_cholesky_psd_adds_jitter_for_a_singular_correlation():
    corr = np.ones((2, 2))  # two identical assets
    chol = cholesky_psd(corr)
    np.testing.assert_allclose(chol @ chol.T, corr, atol=1e-6)


# ------------------------------------------------------------------------------------------- resampling


def test_fhs_resamples_whole_days_jointly():
    x = simulate_garch_t(1000, np.eye(1), seed=3)
    model = FilteredHS().fit(np.hstack([x, 2 * x]))  # perfectly correlated assets
    assert np.corrcoef(model.resid, rowvar=False)[0, 1] > 0.9999
    z = model.draw_innovations(np.random.default_rng(0), 50, 40)
    assert np.corrcoef(z.reshape(-1, 2), rowvar=False)[0, 1] > 0.9999  # the same day for both assets
    paths = model.simulate(50, 40, seed=0)
    assert np.corrcoef(paths.reshape(-1, 2), rowvar=False)[0, 1] > 0.999


def _row_indices(data: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """Index of the data row each simulated day is, asserting it is a whole historical row."""
    order = np.argsort(data[:, 0])
    idx = order[np.searchsorted(data[order, 0], paths[..., 0])]
    np.testing.assert_array_equal(data[idx], paths)
    return idx


def test_stationary_bootstrap_runs_have_the_block_length(returns3):
    b, n_paths, horizon = 10.0, 200, 500
    model = StationaryBootstrap(block_length=b).fit(returns3)
    idx = _row_indices(returns3, model.simulate(n_paths, horizon, seed=0))  # (P, L)
    continues = np.diff(idx, axis=1) % len(returns3) == 1
    mean_run = idx.size / (n_paths + (~continues).sum())
    expected = horizon / (1 + (horizon - 1) / b)  # runs are cut at the path end
    assert mean_run == pytest.approx(expected, rel=0.05)
    assert np.any(idx[:, 1:][continues] == 0)  # blocks wrap around the end of the data


def test_stationary_bootstrap_indices_wrap_and_default_block_length(returns3):
    idx = stationary_bootstrap_indices(np.random.default_rng(0), 5, 2, 50, block_length=1e9)  # one block per path
    np.testing.assert_array_equal(np.diff(idx, axis=1) % 5, 1)
    auto = StationaryBootstrap().fit(returns3)
    assert 2.0 <= auto.block_length <= 100.0
    assert auto.fitted_summary()["block_length"] == auto.block_length


def test_hs_draws_whole_days_with_the_data_marginals(fitted, returns3):
    paths = fitted["hs"].simulate(100, 100, seed=0)
    _row_indices(returns3, paths)
    for j in range(3):
        assert stats.ks_2samp(paths[..., j].ravel(), returns3[:, j]).pvalue > 0.05


# ------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "returns, match",
    [
        (np.zeros(500), "dimension"),
        (np.full((500, 2), np.nan), "NaN"),
        (np.full((100, 2), 0.01), "at least 250"),
        (np.full((500, 2), 100.0), "percent or prices"),
    ],
)
def test_bad_returns_raise_data_error(returns, match):
    with pytest.raises(DataError, match=match):
        HistoricalSimulation().fit(returns)


def test_bad_simulate_arguments(fitted, returns3):
    m = fitted["garch-t"]
    for kwargs in ({"n_paths": 0, "horizon": 5}, {"n_paths": 5, "horizon": -1}, {"n_paths": 2.5, "horizon": 5}):
        with pytest.raises(ConfigError, match="positive integer"):
            m.simulate(**kwargs)
    with pytest.raises(DataError, match="fitted on 3"):
        m.simulate(2, 2, history=returns3[:, :2])
    with pytest.raises(DataError, match="NaN"):
        m.simulate(2, 2, history=np.full((10, 3), np.nan))
    with pytest.raises(RuntimeError, match="fit"):
        GarchT().simulate(2, 2)


def test_bad_model_options():
    with pytest.raises(ConfigError, match="block_length"):
        StationaryBootstrap(block_length=0.5)
    with pytest.raises(ConfigError, match="unknown classical model"):
        make_classical("garch-x")
    with pytest.raises(DataError, match="constant"):
        GarchT().fit(np.column_stack([np.full(300, 0.01), np.random.default_rng(0).normal(0, 0.01, 300)]))
