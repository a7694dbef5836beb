"""Deep scenario generators: the state recursion by hand, contiguous rollouts, save/load, memorisation check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apps.markets import evaluate as ev
from apps.markets.config import DeepConfig
from apps.markets.deep import DeepEnsemble, DeepGenerator
from apps.markets.memorisation import memorisation, nn_distances, windows
from apps.markets.state import KAPPA, LAMBDA_FAST, LAMBDA_SLOW, WARMUP, filter_states, raw_features
from shared.errors import CheckpointError, ConfigError, DataError
from shared.training import TrainConfig


def _returns(n=700, a=3, seed=0):
    rng = np.random.default_rng(seed)
    common = rng.standard_t(5, size=(n, 1)) * 0.01
    return common + rng.standard_t(5, size=(n, a)) * 0.01


def test_state_recursion_by_hand():
    r = _returns(n=WARMUP + 3, a=2)
    f = filter_states(r)
    v_long = r.var(axis=0)
    v0 = np.maximum(r[:WARMUP].var(axis=0), 0.1 * v_long)
    # day WARMUP is normalised by the warm-up variance; the next by the updated fast variance
    np.testing.assert_allclose(f.x[0].numpy(), r[WARMUP] / np.sqrt(v0))
    v1 = KAPPA * v_long + LAMBDA_FAST * v0 + (1 - LAMBDA_FAST - KAPPA) * r[WARMUP] ** 2
    np.testing.assert_allclose(f.scale[1].numpy(), np.sqrt(np.maximum(v1, 0.1 * v_long)))
    slow1 = LAMBDA_SLOW * v0 + (1 - LAMBDA_SLOW) * r[WARMUP] ** 2
    np.testing.assert_allclose(f.raw[1, 0].item(), np.log(max(v1[0], 0.1 * v_long[0]) / slow1[0]))
    assert f.raw.shape == (3, 4 * 2 + 4)  # 4 per asset + 4 market-level means
    np.testing.assert_allclose(raw_features(f.last).shape, (1, 12))


def test_filter_rejects_short_history():
    with pytest.raises(DataError, match="more than 60 days"):
        filter_states(_returns(n=30))


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    train = TrainConfig(steps=60, batch_size=64, lr=1e-3, progress=False, checkpoint_every=1000)
    return DeepGenerator("cvae", DeepConfig(hidden=(32, 32), latent_dim=4), train).fit(_returns())


def test_fitting_is_reproducible_whatever_ran_before(fitted):
    """The same data and seed give the same generator even after other code has drawn from the global RNG (the
    initial weights once came from whatever state it was left in, so `make markets` differed run to run)."""
    torch.rand(17)
    train = TrainConfig(steps=60, batch_size=64, lr=1e-3, progress=False, checkpoint_every=1000)
    again = DeepGenerator("cvae", DeepConfig(hidden=(32, 32), latent_dim=4), train).fit(_returns())
    np.testing.assert_array_equal(again.simulate(4, 50, seed=2), fitted.simulate(4, 50, seed=2))


def test_rollout_shapes_determinism_and_stress_origin(fitted):
    a = fitted.simulate(8, 300, seed=3)
    assert a.shape == (8, 300, 3) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, fitted.simulate(8, 300, seed=3))
    assert not np.array_equal(a, fitted.simulate(8, 300, seed=4))
    # a wild history (10x the volatility) starts the paths at a higher volatility than the calm fit data. The ratio
    # of this 60-step toy fit varies with the CPU's float reductions (7x to 12x here, 2.9x on a CI machine), so the
    # bound asks only for clearly higher
    calm = fitted.simulate(200, 5, seed=0)
    wild = fitted.simulate(200, 5, seed=0, history=10 * _returns(seed=1))
    assert wild.std() > 2 * calm.std()
    with pytest.raises(DataError, match="history"):
        fitted.simulate(2, 5, history=_returns(a=2))


def test_one_day_draws_follow_the_real_state(fitted):
    r = _returns(seed=2)
    d = fitted.one_day(r, 600, n_samples=50, seed=0)
    assert d.shape == (100, 50, 3) and np.isfinite(d).all()
    with pytest.raises(DataError, match="start"):
        fitted.one_day(r, 10)
    # forecast_mean="constant" (the default): each day's draws, in units of that day's volatility, average to the
    # training mean of x; "model" leaves the network's conditional mean, which moves from day to day
    scale = filter_states(r, fitted.long_run).scale[600 - WARMUP :].numpy()  # (100, 3)
    day_means = (d / scale[:, None, :]).mean(axis=1)  # (100, 3)
    np.testing.assert_allclose(day_means, np.broadcast_to(fitted.x_mean.numpy(), day_means.shape), atol=1e-9)
    fitted.cfg.forecast_mean = "model"
    try:
        raw = fitted.one_day(r, 600, n_samples=50, seed=0) / scale[:, None, :]
    finally:
        fitted.cfg.forecast_mean = "constant"
    assert raw.mean(axis=1).std(axis=0).min() > 1e-3


def test_ensemble_pools_its_members_draws(fitted):
    """One member is the single generator, draw for draw; K members split the draws (member i with seed
    seed * K + i) and their pool is the concatenation; the members are trained from seeds seed, seed + 1."""
    r = _returns(seed=2)
    np.testing.assert_array_equal(
        DeepEnsemble([fitted]).one_day(r, 600, n_samples=40, seed=3), fitted.one_day(r, 600, n_samples=40, seed=3)
    )
    train = TrainConfig(steps=20, batch_size=64, lr=1e-3, progress=False, checkpoint_every=1000)
    ens = DeepEnsemble.fit("cvae", DeepConfig(hidden=(16,), latent_dim=2), train, _returns(), size=2)
    assert [m.train_cfg.seed for m in ens.members] == [0, 1]
    pooled = ens.one_day(r, 650, n_samples=7, seed=1)
    assert pooled.shape == (50, 7, 3)
    np.testing.assert_array_equal(pooled[:, :4], ens.members[0].one_day(r, 650, n_samples=4, seed=2))
    np.testing.assert_array_equal(pooled[:, 4:], ens.members[1].one_day(r, 650, n_samples=3, seed=3))
    with pytest.raises(ConfigError, match="ensemble"):
        DeepEnsemble.fit("cvae", DeepConfig(), train, _returns(), size=0)


def test_save_load_round_trip(fitted, tmp_path):
    path = tmp_path / "cvae.safetensors"
    fitted.save(path)
    again = DeepGenerator.load(path, "cvae", DeepConfig(hidden=(32, 32), latent_dim=4), 3)
    np.testing.assert_array_equal(again.simulate(4, 20, seed=1), fitted.simulate(4, 20, seed=1))
    with pytest.raises(CheckpointError, match="cgan"):
        DeepGenerator.load(path, "cgan", DeepConfig(), 3)
    # the same weights from another state recursion (an older genlab) must not load silently
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(path), metadata={"family": "cvae", "assets": "3", "recursion": "kappa=0.04"})
    with pytest.raises(CheckpointError, match="another state recursion"):
        DeepGenerator.load(path, "cvae", DeepConfig(hidden=(32, 32), latent_dim=4), 3)
    path.write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="not a readable"):
        DeepGenerator.load(path, "cvae", DeepConfig(), 3)


def test_memorisation_flags_copies_not_fresh_draws():
    train, held_out = _returns(n=2000, seed=0), _returns(n=400, seed=1)
    copies = np.stack([train[s : s + 100] for s in range(0, 1000, 100)])  # (10, 100, 3) replayed history
    fresh = np.stack([_returns(n=100, seed=10 + i) for i in range(10)])
    m_copy = memorisation(train, held_out, copies, length=20)
    m_fresh = memorisation(train, held_out, fresh, length=20)
    assert m_copy["ratio"] < 1e-6 and m_copy["copy_rate"] == 1.0
    assert 0.9 < m_fresh["ratio"] < 1.1 and m_fresh["copy_rate"] < 0.05


def test_nn_distance_by_hand():
    ref = np.array([[[1.0], [0.0]], [[0.0], [1.0]]])  # two windows, RMS 1/sqrt(2)
    q = np.array([[[2.0], [0.0]]])  # same shape as the first reference window after RMS scaling
    assert nn_distances(q, ref)[0] == pytest.approx(0.0, abs=1e-12)
    assert windows(np.zeros((10, 2)), 4).shape == (2, 4, 2)


def test_portfolio_log_return_by_hand():
    r = np.log(np.array([[1.10, 0.90], [1.0, 1.0]]))
    np.testing.assert_allclose(ev.portfolio(r, np.array([0.5, 0.5])), [0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(ev.portfolio(r, np.array([0.75, 0.25])), [np.log(1.05), 0.0])
    with pytest.raises(DataError, match="loses everything"):
        ev.portfolio(np.log(np.array([[3.0, 1.0]])), np.array([-1.0, 2.0]))


def test_wins_against_counts_headline_scores():
    rows = [
        {"name": "garch-t", **{k: 1.0 for k in ev.HEADLINE}},
        {"name": "cvae", **{k: (0.5 if i < 5 else 2.0) for i, k in enumerate(ev.HEADLINE)}},
        {"name": "real (held-out)", "excess_kurtosis": 3.0},
    ]
    assert ev.wins_against(rows, "garch-t") == {"cvae": 5}


def test_conditional_tail_shape_cvae_fits_saves_and_varies_its_tail_with_the_state(tmp_path):
    """The backtest's cvae (skew-t, dof and skew set per day by the net): 4 decoder outputs per asset, a tail shape
    that differs between days, the same draws after save/load; the wrong settings for a file or a Gaussian
    decoder with a conditional shape are one-line errors."""
    cfg = DeepConfig(hidden=(16, 16), latent_dim=2, decoder="skew-t", tail_shape="conditional")
    train = TrainConfig(steps=40, batch_size=64, lr=1e-3, progress=False, checkpoint_every=1000)
    g = DeepGenerator("cvae", cfg, train).fit(_returns())
    dec = g.model.decoder
    assert dec.outputs == 4 * 3 and dec.shape_heads == 2
    f = filter_states(_returns(seed=2), g.long_run)
    zc = torch.cat([torch.zeros(len(f.raw), 2), g.scaler(f.raw).float()], dim=1)  # z = 0 at each real day's state
    with torch.no_grad():
        _, _, shape = dec._heads(zc)
    assert float(dec._dof(shape).std(dim=0).min()) > 0 and float(dec._log_skew(shape).std(dim=0).min()) > 0
    path = tmp_path / "cvae.safetensors"
    g.save(path)
    back = DeepGenerator.load(path, "cvae", cfg, 3)
    np.testing.assert_array_equal(back.one_day(_returns(seed=2), 650, 16), g.one_day(_returns(seed=2), 650, 16))
    with pytest.raises(CheckpointError, match="do not fit --deep settings"):
        DeepGenerator.load(path, "cvae", DeepConfig(hidden=(16, 16), latent_dim=2, decoder="skew-t"), 3)
    with pytest.raises(ConfigError, match="tail-shape conditional needs"):
        DeepConfig(tail_shape="conditional")
