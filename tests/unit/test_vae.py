"""Unit tests of the VAE family: the analytic KL against Monte Carlo, the ELBO / IWAE bounds, conditioning,
the "module" likelihood path, and deterministic sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from shared.errors import ConfigError
from shared.generative.vae import VAE

D, F_DIM, L = 6, 16, 3  # data, feature and latent widths of the toy models


def _encoder() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(D, F_DIM), nn.Tanh())


def _decoder(cond_width: int = 0) -> nn.Module:
    return nn.Sequential(nn.Linear(L + cond_width, 16), nn.Tanh(), nn.Linear(16, D))


def _vae(**kw) -> VAE:
    torch.manual_seed(0)
    width = kw.get("num_classes", 0) + kw.get("cond_dim", 0)
    return VAE(_encoder(), _decoder(width), F_DIM, L, **kw)


def _binary_data(n: int = 8) -> torch.Tensor:
    return (torch.rand(n, D, generator=torch.Generator().manual_seed(1)) > 0.5).float()


class ToyGaussianDecoder(nn.Module):
    """A decoder that is its own distribution (the "module" protocol): x ~ N(W zc + b, I)."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.mean = nn.Linear(in_dim, D)

    def log_prob(self, x: torch.Tensor, zc: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(self.mean(zc), 1.0).log_prob(x).sum(dim=1)  # (B,)

    def sample(self, zc: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mu = self.mean(zc)
        return mu + torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)


def test_analytic_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, L, generator=g), torch.randn(4, L, generator=g) * 0.5
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(L), torch.ones(L))
    z = q.sample((200_000,))  # (S, 4, L)
    kl_mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)  # (4,)
    kl = VAE.kl(mu, logvar)
    assert kl.shape == (4,)
    torch.testing.assert_close(kl, kl_mc, atol=0.02, rtol=0.01)
    assert torch.allclose(VAE.kl(torch.zeros(2, L), torch.zeros(2, L)), torch.zeros(2))


def test_iwae_k1_matches_elbo_in_expectation():
    vae = _vae()
    x = _binary_data(4)
    reps = 3000
    xs = x.repeat(reps, 1)  # (reps * 4, D): many independent single-sample draws per example
    with torch.no_grad():
        torch.manual_seed(1)
        elbo = vae.elbo(xs).view(reps, 4)
        torch.manual_seed(2)
        iwae1 = vae.iwae_bound(xs, k=1).view(reps, 4)
        # The same expectation through the analytic KL: E_q log p(x|z) - KL.
        torch.manual_seed(3)
        vae((xs,))
        mu, logvar = vae.encode(x)
    se = (elbo.std(0) / math.sqrt(reps)).max().item()
    torch.testing.assert_close(elbo.mean(0), iwae1.mean(0), atol=5 * se, rtol=0)
    assert elbo.shape == (reps, 4) and torch.isfinite(elbo).all()
    # stats["elbo"] is the batch mean with the analytic KL; it agrees with the single-sample form on average.
    assert abs(vae.stats["elbo"].item() - elbo.mean().item()) < 5 * se + 0.05
    assert torch.all(VAE.kl(mu, logvar) >= 0)


def test_iwae_is_tighter_than_elbo_and_chunking_is_transparent():
    vae = _vae()
    x = _binary_data(16)
    with torch.no_grad():
        torch.manual_seed(0)
        elbo = torch.stack([vae.elbo(x) for _ in range(20)]).mean(0)  # (16,)
        iwae = vae.iwae_bound(x, k=100)
        iwae_chunked = vae.iwae_bound(x, k=100, chunk=7)
    assert iwae.shape == (16,)
    assert iwae.mean() > elbo.mean()
    # Chunks draw different noise, but both are estimates of the same bound.
    assert abs(iwae.mean() - iwae_chunked.mean()) < 0.1 * abs(iwae.mean() - elbo.mean()) + 0.05
    with pytest.raises(ConfigError):
        vae.iwae_bound(x, k=0)


def test_forward_loss_stats_and_beta():
    x = _binary_data(8)
    losses = {}
    for beta in (0.0, 1.0, 4.0):
        vae = _vae(beta=beta)
        torch.manual_seed(0)
        losses[beta] = vae((x,))
        assert losses[beta].dim() == 0 and torch.isfinite(losses[beta])
        assert set(vae.stats) == {"recon", "kl", "elbo"}
        assert not any(v.requires_grad for v in vae.stats.values())
    kl = vae.stats["kl"]
    # Same seed and weights: the loss is recon + beta * kl exactly.
    torch.testing.assert_close(losses[4.0] - losses[1.0], 3 * kl)
    torch.testing.assert_close(losses[1.0] - losses[0.0], kl)
    losses[1.0].backward()
    assert vae.objectives == {"loss": 1} and len(vae.objective_parameters("loss")) == len(list(vae.parameters()))


def test_gaussian_likelihood_fixed_and_learned_std():
    x = torch.randn(8, D)
    fixed = _vae(likelihood="gaussian", gaussian_std=0.5)
    learned = _vae(likelihood="gaussian")  # gaussian_std=None: a learned scalar log-sd
    assert fixed.log_std is None and learned.log_std is not None
    loss = learned((x,))
    loss.backward()
    assert learned.log_std.grad is not None
    assert torch.isfinite(fixed((x,)))
    assert fixed.sample(5, mean=False, generator=torch.Generator().manual_seed(0)).shape == (5, D)


def test_conditional_vae_shapes_and_errors():
    x = _binary_data(8)
    y = torch.arange(8) % 3
    vae = _vae(num_classes=3)
    assert vae.head.in_features == F_DIM + 3
    mu, logvar = vae.encode(x, y)
    assert mu.shape == logvar.shape == (8, L)
    assert torch.isfinite(vae((x, y)))
    assert vae.elbo(x, y).shape == vae.iwae_bound(x, y, k=5).shape == (8,)
    assert vae.sample(4, cond=2).shape == vae.sample(4, cond=torch.tensor([0, 1, 2, 0])).shape == (4, D)
    assert vae.reconstruct(x, y).shape == (8, D)
    with pytest.raises(ConfigError):
        vae((x,))  # a conditional model needs labels
    with pytest.raises(ConfigError):
        vae.sample(2, cond=3)  # out of range
    props = _vae(cond_dim=2)
    c = torch.randn(8, 2)
    assert torch.isfinite(props((x, c)))
    assert props.sample(3, cond=torch.tensor([0.5, -1.0])).shape == (3, D)
    with pytest.raises(ConfigError):
        _vae(num_classes=3, cond_dim=2)
    with pytest.raises(ConfigError):
        _vae().encode(x, y)  # unconditional model given a condition


def test_module_likelihood_matches_gaussian_decoder():
    # A "module" decoder computing N(mean(zc), I) must give the same bound as likelihood="gaussian" with sd 1.
    torch.manual_seed(0)
    enc, dec = _encoder(), ToyGaussianDecoder(L)
    as_module = VAE(enc, dec, F_DIM, L, likelihood="module")
    as_gauss = VAE(enc, dec.mean, F_DIM, L, likelihood="gaussian", gaussian_std=1.0)
    as_gauss.head.load_state_dict(as_module.head.state_dict())
    x = torch.randn(5, D)
    torch.manual_seed(1)
    a = as_module.elbo(x)
    torch.manual_seed(1)
    b = as_gauss.elbo(x)
    torch.testing.assert_close(a, b)
    loss = as_module((x,))
    loss.backward()
    assert dec.mean.weight.grad is not None
    assert as_module.iwae_bound(x, k=10).shape == (5,)
    g = torch.Generator().manual_seed(3)
    assert as_module.sample(4, generator=g).shape == (4, D)
    assert as_module.interpolate(x[:2], x[2:4], steps=3).shape == (3, 2, D)
    with pytest.raises(ConfigError):
        VAE(_encoder(), _decoder(), F_DIM, L, likelihood="module")  # a plain net has no log_prob


def test_fixed_generator_gives_identical_samples():
    vae = _vae()
    for mean in (True, False):
        a = vae.sample(6, generator=torch.Generator().manual_seed(7), mean=mean)
        b = vae.sample(6, generator=torch.Generator().manual_seed(7), mean=mean)
        assert torch.equal(a, b)
    c = vae.sample(6, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(a, c)
    assert torch.all((vae.sample(6) >= 0) & (vae.sample(6) <= 1))  # Bernoulli means are probabilities
    assert torch.equal(vae.sample(3, temperature=0.0), vae.decode(torch.zeros(3, L)))


def test_interpolation_endpoints_are_reconstructions():
    vae = _vae()
    x = _binary_data(4)
    for method in ("slerp", "lerp"):
        path = vae.interpolate(x[:2], x[2:], steps=5, method=method)
        assert path.shape == (5, 2, D)
        torch.testing.assert_close(path[0], vae.reconstruct(x[:2]))
        torch.testing.assert_close(path[-1], vae.reconstruct(x[2:]))
    with pytest.raises(ConfigError):
        vae.interpolate(x[:2], x[:3], steps=5)


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError):
        _vae(likelihood="poisson")
    with pytest.raises(ConfigError):
        _vae(beta=-1.0)
    with pytest.raises(ConfigError):
        _vae(likelihood="gaussian", gaussian_std=0.0)
    with pytest.raises(ConfigError):
        _vae()((_binary_data(2),), "d")


def test_gaussian_decoder_log_prob_and_sampling_by_hand():
    from shared.generative.vae import GaussianDecoder

    net = torch.nn.Linear(3, 4)  # zc (B, 3) -> mean and raw log-sd of 2 outputs
    dec = GaussianDecoder(net, dim=2)
    zc = torch.randn(5, 3)
    x = torch.randn(5, 2)
    mu, log_std = dec.params(zc)
    assert ((log_std >= -7) & (log_std <= 3)).all()
    expected = torch.distributions.Normal(mu, log_std.exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(dec.log_prob(x, zc), expected)
    g = torch.Generator().manual_seed(0)
    big = zc[:1].expand(20000, 3)
    s = dec.sample(big, generator=g)
    torch.testing.assert_close(s.mean(0), mu[0].detach(), atol=0.05 * log_std[0].exp().max().item() + 1e-3, rtol=0)
    # a VAE with this decoder trains on heteroscedastic data and samples with the right shapes
    vae = VAE(
        torch.nn.Linear(2, 8), GaussianDecoder(torch.nn.Linear(4 + 1, 4), 2), 8, 4, likelihood="module", cond_dim=1
    )
    loss = vae((x, torch.randn(5, 1)))
    loss.backward()
    assert torch.isfinite(loss) and vae.sample(3, cond=torch.zeros(1)).shape == (3, 2)


def test_student_t_decoder_log_prob_and_samples_match_the_t_distribution():
    """StudentTDecoder: log_prob equals torch.distributions.StudentT's; draws standardised by (mu, s) follow t_nu
    (quantiles), are reproducible from a generator, and the dof starts at init_dof and stays > 2."""
    from scipy import stats

    from shared.generative.vae import StudentTDecoder

    torch.manual_seed(0)
    dec = StudentTDecoder(torch.nn.Linear(3, 4), 2, init_dof=5.0)
    zc, x = torch.randn(9, 3), torch.randn(9, 2) * 3
    mu, log_s = dec.params(zc)
    ref = torch.distributions.StudentT(dec.dof, mu, log_s.exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(dec.log_prob(x, zc), ref, rtol=1e-5, atol=1e-5)
    assert torch.allclose(dec.dof, torch.tensor(5.0)) and float(StudentTDecoder(dec.net, 2, 2.01).dof.min()) > 2
    zc = torch.zeros(100_000, 3)
    draws = dec.sample(zc, torch.Generator().manual_seed(1))
    mu, log_s = dec.params(zc[:1])
    t = ((draws - mu) / log_s.exp()).detach().numpy()
    for q in (0.01, 0.1, 0.5, 0.9, 0.99):
        assert abs(np.quantile(t[:, 0], q) - stats.t.ppf(q, 5)) < 0.05 * max(1.0, abs(stats.t.ppf(q, 5)))
    assert torch.equal(
        dec.sample(zc[:5], torch.Generator().manual_seed(2)), dec.sample(zc[:5], torch.Generator().manual_seed(2))
    )
    with pytest.raises(ConfigError, match="init_dof"):
        StudentTDecoder(dec.net, 2, init_dof=2.0)


def test_skew_t_decoder_is_a_normalised_two_piece_t_that_its_draws_follow():
    """SkewTDecoder: at skew 1 it is the Student-t decoder; otherwise its density integrates to 1, puts mass
    1 / (1 + gamma^2) left of mu, and its draws follow its CDF (numerical quadrature); the skew gets a gradient."""
    from scipy import integrate

    from shared.generative.vae import SkewTDecoder, StudentTDecoder

    torch.manual_seed(0)
    dec = SkewTDecoder(torch.nn.Linear(3, 2), 1, init_dof=5.0).double()
    sym = StudentTDecoder(dec.net, 1, init_dof=5.0).double()
    zc, x = torch.randn(9, 3, dtype=torch.float64), torch.randn(9, 1, dtype=torch.float64) * 3
    torch.testing.assert_close(dec.log_prob(x, zc), sym.log_prob(x, zc))
    with torch.no_grad():
        dec.raw_skew.fill_(math.log(0.7))  # a longer left tail
    one = torch.zeros(1, 3, dtype=torch.float64)
    mu, log_s = (float(t) for t in dec.params(one))

    def pdf(v):
        with torch.no_grad():
            return float(dec.log_prob(torch.tensor([[v]], dtype=torch.float64), one).exp())

    assert integrate.quad(pdf, -np.inf, np.inf)[0] == pytest.approx(1.0, abs=1e-7)
    assert integrate.quad(pdf, -np.inf, mu)[0] == pytest.approx(1 / (1 + 0.7**2), abs=1e-7)
    with torch.no_grad():
        draws = dec.sample(one.expand(200_000, 3), torch.Generator().manual_seed(1))[:, 0].numpy()
    for q in (-4.0, -1.5, 0.0, 0.7, 2.5):
        v = mu + q * math.exp(log_s)
        assert (draws < v).mean() == pytest.approx(integrate.quad(pdf, -np.inf, v)[0], abs=0.004)
    assert torch.equal(
        dec.sample(one.expand(5, 3), torch.Generator().manual_seed(2)),
        dec.sample(one.expand(5, 3), torch.Generator().manual_seed(2)),
    )
    dec.log_prob(x, zc).sum().backward()
    assert torch.isfinite(dec.raw_skew.grad).all() and float(dec.raw_skew.grad.abs()) > 0


def test_conditional_tail_shape_is_the_fixed_shape_moved_per_example():
    """conditional_shape=True: the net's extra blocks move the dof (and the skew) per example around the learned
    baselines. With those blocks at zero it is the fixed-shape decoder; otherwise each row's log_prob is the t (or
    two-piece t) density with that row's dof, its draws follow that row's t, and the shape block gets a gradient."""
    from scipy import stats

    from shared.generative.vae import SkewTDecoder, StudentTDecoder

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 4 * 2)  # (mean, log-scale, dof, skew) x D = 2
    with torch.no_grad():
        net.weight[4:].zero_()
        net.bias[4:].zero_()
    cond = SkewTDecoder(net, 2, init_dof=5.0, conditional_shape=True).double()
    fixed = SkewTDecoder(torch.nn.Linear(3, 4), 2, init_dof=5.0).double()
    with torch.no_grad():
        fixed.net.weight.copy_(net.weight[:4])
        fixed.net.bias.copy_(net.bias[:4])
        fixed.raw_skew.fill_(-0.3)
        cond.raw_skew.fill_(-0.3)
    zc, x = torch.randn(9, 3, dtype=torch.float64), torch.randn(9, 2, dtype=torch.float64) * 3
    torch.testing.assert_close(cond.log_prob(x, zc), fixed.log_prob(x, zc))
    g = torch.Generator().manual_seed(4)
    torch.testing.assert_close(cond.sample(zc, g), fixed.sample(zc, torch.Generator().manual_seed(4)))

    # Student-t with the dof set by the condition: row i's density is StudentT(nu_i)
    net = torch.nn.Linear(1, 3 * 1).double()  # (mean, log-scale, dof) for D = 1
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.0], [0.0], [3.0]]))  # dof offset = 3 c: heavier tails for c < 0
        net.bias.zero_()
    dec = StudentTDecoder(net, 1, init_dof=5.0, conditional_shape=True).double()
    c = torch.tensor([[-1.0], [0.0], [1.0]], dtype=torch.float64)
    nu = 2.0 + torch.nn.functional.softplus(dec.raw_dof + 3.0 * c)  # (3, 1)
    mu, log_s = dec.params(c)
    xs = torch.tensor([[0.3], [-2.5], [4.0]], dtype=torch.float64)
    ref = torch.distributions.StudentT(nu, mu, log_s.exp()).log_prob(xs).sum(-1)
    torch.testing.assert_close(dec.log_prob(xs, c), ref)
    with torch.no_grad():
        for row in (0, 2):
            d = dec.sample(c[row : row + 1].expand(100_000, 1), torch.Generator().manual_seed(row))
            t = ((d - mu[row]) / log_s[row].exp())[:, 0].numpy()
            q = stats.t.ppf(0.01, float(nu[row]))
            assert abs(np.quantile(t, 0.01) - q) < 0.05 * abs(q)
    dec.log_prob(xs, c).sum().backward()
    assert float(net.weight.grad[2].abs()) > 0  # the dof head learns
    with pytest.raises(ConfigError, match="3 \\* dim = 3"):
        StudentTDecoder(torch.nn.Linear(1, 2), 1, conditional_shape=True).double().log_prob(xs, c)


def test_decoders_say_how_wide_their_net_must_be_before_they_are_built():
    from shared.generative.vae import GaussianDecoder, SkewTDecoder, StudentTDecoder

    for cls, extra in ((GaussianDecoder, 0), (StudentTDecoder, 1), (SkewTDecoder, 2)):
        for conditional in (False, True) if extra else (False,):
            shape = {"conditional_shape": True} if conditional else {}
            width = cls.net_outputs(3, **shape)
            assert width == (2 + (extra if conditional else 0)) * 3
            assert cls(torch.nn.Linear(2, width), 3, **shape).outputs == width
