"""Unit tests for apps/markets/backtest.py: coverage LR tests against hand-computed values, Z2 under a known
normal model, and empirical VaR/ES against the closed-form normal VaR/ES."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from apps.markets.backtest import (
    acerbi_szekely_z2,
    backtest_summary,
    christoffersen_independence,
    conditional_coverage,
    exceedances,
    kupiec_pof,
    var_es_from_samples,
    z2_critical_value,
)
from shared.errors import ConfigError, DataError

ALPHA = 0.025
Z = stats.norm.ppf(1 - ALPHA)  # normal VaR at 97.5%, 1.95996
ES_NORMAL = stats.norm.pdf(Z) / ALPHA  # normal ES at 97.5%, 2.33780


def _hits(n: int, ones) -> np.ndarray:
    h = np.zeros(n, dtype=int)
    h[list(ones)] = 1
    return h


def test_kupiec_hand_computed():
    # n=250, x=10, a=0.01 -> p = 0.04
    # LR = -2 [240 ln 0.99 + 10 ln 0.01 - 240 ln 0.96 - 10 ln 0.04] = 12.95526...
    lr = -2 * (240 * math.log(0.99) + 10 * math.log(0.01) - 240 * math.log(0.96) - 10 * math.log(0.04))
    p = math.erfc(math.sqrt(lr / 2))  # chi2(1) survival function
    res = kupiec_pof(_hits(250, range(0, 250, 25)), 0.01)
    assert res.hits == 10 and res.n == 250 and res.df == 1
    assert res.expected == pytest.approx(2.5)
    assert res.statistic == pytest.approx(lr, abs=1e-6)
    assert res.p_value == pytest.approx(p, abs=1e-6)
    assert res.p_value < 0.001  # 10 hits for 2.5 expected is rejected


def test_kupiec_zero_and_all_hits():
    res = kupiec_pof(np.zeros(250, dtype=bool), 0.01)  # 0 ln 0 = 0: LR = -2 * 250 ln 0.99
    assert res.statistic == pytest.approx(-2 * 250 * math.log(0.99), abs=1e-9)
    assert res.p_value == pytest.approx(math.erfc(math.sqrt(res.statistic / 2)), abs=1e-9)
    res = kupiec_pof(np.ones(20), 0.5)  # x = n: LR = -2 * 20 ln 0.5
    assert res.statistic == pytest.approx(-40 * math.log(0.5), abs=1e-9)


def test_christoffersen_hand_computed():
    # transitions of 0 0 1 1 0 0 0 1: 00 01 11 10 00 00 01 -> n00=3, n01=2, n10=1, n11=1
    h = [0, 0, 1, 1, 0, 0, 0, 1]
    pi, pi0, pi1 = 3 / 7, 2 / 5, 1 / 2
    ll0 = 3 * math.log(pi) + 4 * math.log(1 - pi)
    ll1 = 3 * math.log(1 - pi0) + 2 * math.log(pi0) + 1 * math.log(1 - pi1) + 1 * math.log(pi1)
    res = christoffersen_independence(h)
    assert res.statistic == pytest.approx(-2 * (ll0 - ll1), abs=1e-9)
    assert res.expected is None and res.hits == 3 and res.n == 8


def test_christoffersen_clustered_rejects_spread_passes():
    clustered = _hits(250, [s + i for s in (20, 80, 140, 200, 230) for i in range(4)])  # 5 runs of 4 hits
    spread = _hits(250, range(5, 250, 25))  # 10 isolated hits, never two in a row (n11 = 0)
    iid = np.random.default_rng(0).random(1000) < 0.05
    assert christoffersen_independence(clustered).p_value < 1e-4
    assert christoffersen_independence(spread).p_value > 0.05
    assert christoffersen_independence(iid).p_value > 0.05
    assert kupiec_pof(clustered, 0.08).p_value > 0.5  # 20 hits for 20 expected: coverage alone cannot see it


def test_conditional_coverage_is_sum():
    h = _hits(250, [s + i for s in (20, 80, 140) for i in range(3)])
    uc, ind, cc = kupiec_pof(h, ALPHA), christoffersen_independence(h), conditional_coverage(h, ALPHA)
    assert cc.statistic == pytest.approx(uc.statistic + ind.statistic, abs=1e-12)
    assert cc.df == 2 and cc.p_value == pytest.approx(stats.chi2.sf(cc.statistic, 2))


def test_z2_right_model_and_underestimated_es():
    r = np.random.default_rng(1).standard_normal(4000)
    z2 = acerbi_szekely_z2(r, Z, ES_NORMAL, ALPHA)
    crit = z2_critical_value(ALPHA, 4000)
    assert abs(z2) < 0.2 and z2 > crit
    z2_bad = acerbi_szekely_z2(r, np.full(4000, Z), np.full(4000, ES_NORMAL / 2), ALPHA)  # = 2 (z2 - 1) + 1
    assert z2_bad == pytest.approx(2 * (z2 - 1) + 1)
    assert z2_bad < -0.7 and z2_bad < crit


def test_z2_critical_values_match_reference():
    # Acerbi & Szekely (2014) / notes: about -0.70 at T=250 and -0.17 at T=4000 for a = 2.5%, 5% level
    assert z2_critical_value(ALPHA, 250) == pytest.approx(-0.70, abs=0.03)
    assert z2_critical_value(ALPHA, 4000) == pytest.approx(-0.17, abs=0.02)
    assert z2_critical_value(ALPHA, 250, seed=3) == z2_critical_value(ALPHA, 250, seed=3)  # deterministic


def test_var_es_from_samples_matches_normal():
    x = np.random.default_rng(2).standard_normal((3, 200_000))
    var, es = var_es_from_samples(x, ALPHA)
    assert var.shape == (3,) and es.shape == (3,)
    np.testing.assert_allclose(var, Z, rtol=0.02)
    np.testing.assert_allclose(es, ES_NORMAL, rtol=0.02)
    # Acerbi-Tasche estimator on 1..10 with a = 0.25: aN = 2.5 worst losses -> (10 + 9 + 0.5 * 8) / 2.5
    _, es_small = var_es_from_samples(-np.arange(1.0, 11.0), 0.25)
    assert es_small == pytest.approx((10 + 9 + 0.5 * 8) / 2.5)


def test_summary_keys_and_pandas_input():
    r = pd.Series(np.random.default_rng(0).standard_normal(1000))
    out = backtest_summary(r, pd.Series(np.full(1000, Z)), ES_NORMAL, ALPHA, n_sim=5000)
    assert set(out) == {
        "hits", "expected_hits", "kupiec_lr", "kupiec_p", "christoffersen_lr", "christoffersen_p", "cc_lr",
        "cc_p", "z2", "z2_crit", "pass_kupiec", "pass_christoffersen", "pass_z2",
    }  # fmt: skip
    assert out["hits"] == int(exceedances(r, Z).sum()) and out["expected_hits"] == pytest.approx(25.0)
    assert out["pass_kupiec"] and out["pass_christoffersen"] and out["pass_z2"]


def test_bad_inputs_raise():
    h = np.zeros(10)
    for a in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="alpha"):
            kupiec_pof(h, a)
    with pytest.raises(DataError, match="empty"):
        kupiec_pof([], 0.01)
    with pytest.raises(DataError, match="0/1"):
        kupiec_pof([0, 2, 1], 0.01)
    with pytest.raises(DataError, match="lengths differ"):
        exceedances(np.zeros(10), np.ones(9))
    with pytest.raises(DataError, match="lengths differ"):
        acerbi_szekely_z2(np.zeros(10), 1.0, np.ones(8), ALPHA)
    with pytest.raises(DataError, match="positive"):
        acerbi_szekely_z2(np.zeros(10), 1.0, -1.0, ALPHA)
    with pytest.raises(DataError, match="NaN"):
        exceedances([0.0, np.nan], 1.0)
    with pytest.raises(DataError, match="at least 2"):
        christoffersen_independence([1])
    with pytest.raises(ConfigError, match="level"):
        z2_critical_value(ALPHA, 250, level=1.2)
    with pytest.raises(DataError, match="N >= 1"):
        var_es_from_samples(np.zeros((3, 0)), ALPHA)


def test_a_model_whose_es_is_a_gain_fails_the_backtest_and_the_metrics_say_so():
    """A generator whose 1-day ES is <= 0 on some day cannot be backtested (Z2 divides by ES): its row carries the
    reason, metrics.json marks it failed, and the other models' statistics are flattened as usual."""
    from apps.markets.evaluate import backtest_metrics, backtest_rows

    rng = np.random.default_rng(0)
    ret = rng.standard_t(5, 500) * 0.01
    frame = pd.DataFrame({"ret": ret, "a_var": 0.025, "a_es": 0.03, "b-x_var": 0.025, "b-x_es": 0.03})
    frame.loc[7, "b-x_es"] = -0.001
    rows = backtest_rows(frame, ["a", "b-x"], 0.025)
    assert rows[1] == {"name": "b-x", "error": "ES <= 0 on 1 days"}
    m = backtest_metrics(rows)
    assert m["b_x_failed"] is True and not any(k.startswith("b_x_") and k != "b_x_failed" for k in m)
    assert m["a_hits"] == float(np.sum(ret < -0.025)) and isinstance(m["a_pass_kupiec"], bool)
