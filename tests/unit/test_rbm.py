"""Unit tests for the RBM family: free energy, exact log Z and AIS against brute-force enumeration, the CD/PCD
gradient, sampling determinism and PCD state in the state_dict."""

import itertools
import math

import pytest
import torch

from shared.errors import ConfigError
from shared.generative.rbm import RBM, base_rate_bias


def _random_rbm(n_visible, n_hidden, seed=0, scale=1.0, **kw):
    torch.manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, **kw)
    with torch.no_grad():
        rbm.W.normal_(0.0, scale)
        rbm.b.normal_(0.0, 1.0)
        rbm.c.normal_(0.0, 1.0)
    return rbm.double()


def _all_binary(m):
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=m)), dtype=torch.float64)  # (2**m, m)


def _energy(rbm, v, h):  # E(v, h) for every pair: v (A, V), h (C, H) -> (A, C)
    return -(v @ rbm.b)[:, None] - (h @ rbm.c)[None, :] - v @ rbm.W @ h.T


def test_free_energy_matches_brute_force_marginal():
    rbm = _random_rbm(3, 2)
    v, h = _all_binary(3), _all_binary(2)
    brute = -torch.logsumexp(-_energy(rbm, v, h), dim=1)  # F(v) = -log sum_h exp(-E(v, h))
    torch.testing.assert_close(rbm.free_energy(v).detach(), brute)


def test_exact_log_z_matches_double_enumeration():
    rbm = _random_rbm(4, 3, seed=1)
    brute = torch.logsumexp(-_energy(rbm, _all_binary(4), _all_binary(3)).reshape(-1), 0)
    torch.testing.assert_close(rbm.log_partition_exact(), brute)


def test_enumerating_either_layer_gives_the_same_log_z():
    wide = _random_rbm(5, 3, seed=2)  # V > H: enumerates the hidden layer
    tall = RBM(3, 5).double()  # the same model with the layers swapped: enumerates the visible layer
    with torch.no_grad():
        tall.W.copy_(wide.W.T)
        tall.b.copy_(wide.c)
        tall.c.copy_(wide.b)
    torch.testing.assert_close(wide.log_partition_exact(), tall.log_partition_exact())


def test_exact_likelihood_is_normalised():
    rbm = _random_rbm(6, 4, seed=3)
    total = torch.logsumexp(rbm.log_likelihood_exact(_all_binary(6)), 0)
    assert abs(total.item()) < 1e-10


def test_ais_is_within_0_1_of_exact():
    rbm = _random_rbm(12, 8, seed=4, scale=1.5)
    exact = rbm.log_partition_exact().item()
    est, stderr = rbm.ais_log_partition(n_chains=500, n_betas=1000, generator=torch.Generator().manual_seed(0))
    assert abs(est - exact) < 0.1, (est, exact)
    assert 0 < stderr < 0.1
    data = torch.bernoulli(torch.full((50, 12), 0.3), generator=torch.Generator().manual_seed(1))
    est2, _ = rbm.ais_log_partition(
        500, 1000, base_bias=base_rate_bias(data), schedule="geometric", generator=torch.Generator().manual_seed(0)
    )
    assert abs(est2 - exact) < 0.1, (est2, exact)


def test_ais_of_the_base_model_is_exact():
    rbm = RBM(5, 3)  # W ~ 0.01: tiny weights; with W = 0 AIS weights are all equal
    with torch.no_grad():
        rbm.W.zero_()
        rbm.b.fill_(0.7)
    est, stderr = rbm.ais_log_partition(10, 5, base_bias=torch.full((5,), 0.7))
    assert est == pytest.approx(rbm.log_partition_exact().item(), abs=1e-9)
    assert stderr == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("persistent", [False, True])
def test_cd_gradient_points_towards_the_data(persistent):
    torch.manual_seed(0)
    rbm = RBM(6, 4, k=1, persistent=persistent, n_chains=256)
    data = torch.ones(32, 6)  # model samples are ~half ones, so the visible biases must go up
    rbm((data,)).backward()
    assert (rbm.b.grad < 0).all()  # loss gradient = mean(v_model) - mean(v_data) < 0
    assert set(rbm.stats) == {"recon"} and rbm.stats["recon"].dim() == 0
    # A few SGD steps raise the exact likelihood of the data (uniform model: -6 ln 2 = -4.16 nats).
    data = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 1]], dtype=torch.float32).repeat(8, 1)
    before = rbm.log_likelihood_exact(data).mean()
    opt = torch.optim.SGD(rbm.parameters(), lr=0.1)
    for _ in range(50):
        opt.zero_grad()
        rbm((data,)).backward()
        opt.step()
    assert rbm.log_likelihood_exact(data).mean() > before + 1.0


def test_pcd_chains_are_state_and_resume_bitwise():
    torch.manual_seed(0)
    rbm = RBM(6, 4, k=2, persistent=True, n_chains=16)
    assert "chains" in rbm.state_dict() and rbm.chains.shape == (16, 6)
    assert "chains" not in RBM(6, 4).state_dict()
    data = torch.bernoulli(torch.full((8, 6), 0.5))
    state, rng = {k: v.clone() for k, v in rbm.state_dict().items()}, torch.get_rng_state()
    first = [rbm((data,)).item() for _ in range(3)]
    rbm.load_state_dict(state)
    torch.set_rng_state(rng)
    assert [rbm((data,)).item() for _ in range(3)] == first


def test_sampling_with_a_generator_is_deterministic():
    rbm = _random_rbm(7, 5, seed=5).float()
    s1 = rbm.sample(20, steps=50, generator=torch.Generator().manual_seed(3))
    s2 = rbm.sample(20, steps=50, generator=torch.Generator().manual_seed(3))
    s3 = rbm.sample(20, steps=50, generator=torch.Generator().manual_seed(4))
    assert s1.shape == (20, 7) and torch.equal(s1, s2) and not torch.equal(s1, s3)
    assert set(s1.unique().tolist()) <= {0.0, 1.0}
    init = torch.zeros(20, 7)
    assert torch.equal(rbm.sample(20, steps=0, init=init), init)


def test_anomaly_score_is_free_energy_and_ranks_by_likelihood():
    rbm = _random_rbm(5, 3, seed=6)
    v = _all_binary(5)
    score = rbm.anomaly_score(v)
    torch.testing.assert_close(score, rbm.free_energy(v).detach())
    order_ll = torch.argsort(rbm.log_likelihood_exact(v), descending=True)
    assert torch.equal(order_ll, torch.argsort(score))


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError):
        RBM(0, 3)
    with pytest.raises(ConfigError):
        RBM(4, 3, k=0)
    with pytest.raises(ConfigError, match="ais_log_partition"):
        RBM(25, 30).log_partition_exact()
    rbm = RBM(4, 3)
    with pytest.raises(ConfigError, match="n_visible"):
        rbm((torch.zeros(2, 5),))
    with pytest.raises(ConfigError):
        rbm.ais_log_partition(schedule="cosine")
    with pytest.raises(ConfigError):
        rbm.objective_parameters("g")
    assert math.isfinite(rbm.log_partition_exact().item())


def _needs_backend(backend):
    if backend == "triton":  # Triton's CPU interpreter (TRITON_INTERPRET=1 from tests/conftest.py)
        pytest.importorskip("triton")


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_gibbs_chains_sample_the_exact_distribution(backend):
    """Gibbs half-steps through `bernoulli_sigmoid` (reference or kernel): 2000 chains after 15 sweeps are within
    0.05 total variation of p(v) by enumeration (sampling noise alone is ~0.02 here)."""
    _needs_backend(backend)
    rbm = _random_rbm(4, 3, seed=7).float()
    rbm.backend = backend
    samples = rbm.sample(2000, steps=15, generator=torch.Generator().manual_seed(0))  # (2000, 4)
    states = _all_binary(4)  # (16, 4) in the order of the binary code below
    exact = rbm.log_likelihood_exact(states).exp()
    freq = torch.bincount((samples.long() * torch.tensor([8, 4, 2, 1])).sum(1), minlength=16).double() / 2000
    assert 0.5 * (freq - exact).abs().sum().item() < 0.05


def test_ais_through_the_kernel_matches_exact_log_z():
    """AIS's tempered half-steps (scale = beta, biases folded) on the Triton kernel in the interpreter."""
    _needs_backend("triton")
    rbm = _random_rbm(6, 4, seed=1)
    rbm.backend = "triton"
    est, stderr = rbm.ais_log_partition(n_chains=100, n_betas=50, generator=torch.Generator().manual_seed(0))
    assert abs(est - rbm.log_partition_exact().item()) < 0.1 and 0 < stderr < 0.1


def test_unknown_kernel_backend_raises_config_error():
    with pytest.raises(ConfigError, match="backend"):
        RBM(4, 3, backend="cuda")
