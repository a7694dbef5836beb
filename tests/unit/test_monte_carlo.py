"""Unit tests for Monte Carlo helpers: stratification structure, allocation, importance weights, ESS, systematic
resampling and the estimators against closed forms."""

import math

import pytest
import torch

from shared.errors import ConfigError
from shared.sampling.monte_carlo import (
    Estimate,
    effective_sample_size,
    importance_estimate,
    importance_weights,
    proportional_allocation,
    sample_mean,
    simple_random_estimate,
    stratified_estimate,
    stratified_normal,
    stratified_uniform,
    systematic_resample,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("n,dim", [(1, 1), (7, 1), (50, 3)])
def test_stratified_uniform_has_one_point_per_stratum_per_dimension(n, dim):
    u = stratified_uniform(n, dim, _gen())
    assert u.shape == (n, dim) and u.dtype == torch.float64
    assert ((u >= 0) & (u < 1)).all()
    for d in range(dim):
        assert torch.equal(torch.sort(torch.floor(u[:, d] * n)).values, torch.arange(n, dtype=torch.float64))
    assert torch.equal(u, stratified_uniform(n, dim, _gen()))


def test_stratified_normal_covers_the_quantiles():
    z = stratified_normal(1000, 2, _gen(1))
    assert z.shape == (1000, 2) and torch.isfinite(z).all()
    assert z.mean().abs() < 0.01 and (z.std() - 1).abs() < 0.02  # far tighter than i.i.d. (~0.03)
    # Coordinate d has exactly one point in each of the 1000 equal-probability normal bins.
    p = torch.special.ndtr(z)
    assert torch.equal(torch.sort(torch.floor(p[:, 0] * 1000)).values, torch.arange(1000, dtype=torch.float64))


def test_estimators_agree_with_closed_forms():
    f = torch.exp  # E[exp(U)] = e - 1
    srs = simple_random_estimate(f, lambda n, g: torch.rand(n, generator=g, dtype=torch.float64), 4000, _gen(2))
    strat = stratified_estimate(f, 2000, per_stratum=2, generator=_gen(2))
    for est in (srs, strat):
        assert isinstance(est, Estimate) and est.n == 4000
        assert abs(est.mean - (math.e - 1)) < 4 * est.stderr
    assert strat.stderr < srs.stderr / 100  # smooth f: stratification removes almost all the variance
    m = sample_mean(torch.tensor([1.0, 2.0, 3.0]))
    assert m.mean == pytest.approx(2.0) and m.stderr == pytest.approx(1 / math.sqrt(3)) and m.ess is None


def test_proportional_allocation_largest_remainder():
    assert proportional_allocation(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert proportional_allocation(7, torch.tensor([0.5, 0.25, 0.25])).tolist() == [3, 2, 2]  # 3.5, 1.75, 1.75
    assert proportional_allocation(5, [0, 2, 0]).tolist() == [0, 5, 0]
    counts = proportional_allocation(1001, torch.rand(17, generator=_gen(3)))
    assert counts.dtype == torch.int64 and counts.sum() == 1001
    with pytest.raises(ConfigError):
        proportional_allocation(3, [0, 0])
    with pytest.raises(ConfigError):
        proportional_allocation(3, [1, -1])


def test_importance_weights_are_stable_and_ess_bounds():
    log_p = torch.tensor([1000.0, 1000.0, 999.0])  # huge values: exp would overflow
    w = importance_weights(log_p, torch.zeros(3))
    assert torch.isfinite(w).all() and w.sum().item() == pytest.approx(1.0)
    assert w[0].item() == pytest.approx(1 / (2 + math.exp(-1)))
    assert effective_sample_size(torch.ones(10)) == pytest.approx(10.0)
    assert effective_sample_size(torch.tensor([0.0, 1.0, 0.0])) == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        importance_weights(torch.zeros(3), torch.zeros(4))


def test_systematic_resample_counts_are_floor_or_ceil():
    w = torch.tensor([0.1, 0.25, 0.0, 0.65])
    idx = systematic_resample(w, 40, _gen(4))
    assert idx.dtype == torch.int64 and idx.shape == (40,)
    counts = torch.bincount(idx, minlength=4).tolist()
    assert counts == [4, 10, 0, 26]
    idx = systematic_resample(torch.tensor([2.0, 1.0, 1.0]), 7, _gen(5))  # unnormalised weights
    counts = torch.bincount(idx, minlength=3)
    assert ((counts - torch.tensor([3.5, 1.75, 1.75])).abs() < 1).all()
    assert torch.equal(systematic_resample(w, 9, _gen(6)), systematic_resample(w, 9, _gen(6)))


def test_importance_estimate_of_a_gaussian_mean():
    # E_p[X] = 1 for p = N(1, 1), with draws from q = N(0, 2^2).
    g = _gen(7)
    x = 2.0 * torch.randn(20000, generator=g, dtype=torch.float64)
    log_q = -0.5 * (x / 2) ** 2 - math.log(2 * math.sqrt(2 * math.pi))
    log_p = -0.5 * (x - 1) ** 2 - 0.5 * math.log(2 * math.pi)
    for self_normalised, lp in ((True, log_p + 123.0), (False, log_p)):  # the SNIS constant cancels
        est = importance_estimate(x, lp, log_q, self_normalised=self_normalised)
        assert abs(est.mean - 1.0) < 4 * est.stderr and est.stderr < 0.05
        assert 0.3 * 20000 < est.ess < 20000
