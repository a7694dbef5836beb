"""EnsembleMLP (batched members) and the GaussianEnsemble family: member-by-member equivalence, the Gaussian NLL
and the PETS log-variance bounds against hand formulas, sampling and disagreement."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from shared.errors import ConfigError
from shared.generative.ensemble import GaussianEnsemble
from shared.nets.ensemble import EnsembleMLP


def test_ensemble_mlp_matches_a_loop_over_members():
    torch.manual_seed(0)
    net = EnsembleMLP(3, 5, 2, hidden=(7, 4), act="tanh")
    x = torch.randn(3, 11, 5)
    out = net(x)
    assert out.shape == (3, 11, 2)
    for e in range(3):
        h = x[e]
        for i, layer in enumerate(net.layers):
            h = h @ layer.weight[e] + layer.bias[e, 0]
            if i < len(net.layers) - 1:
                h = torch.tanh(h)
        torch.testing.assert_close(out[e], h)
    # a (B, in) input is shared by every member
    torch.testing.assert_close(net(x[0]), net(x[0].expand(3, -1, -1)))
    with pytest.raises(ValueError, match="last dimension 5"):
        net(torch.randn(3, 11, 4))
    with pytest.raises(ConfigError):
        EnsembleMLP(0, 5, 2)


def test_gaussian_nll_and_bounds_by_hand():
    torch.manual_seed(1)
    net = EnsembleMLP(2, 3, 2 * 2, hidden=(8,))
    fam = GaussianEnsemble(net, 3, 2, bound_penalty=0.01)
    x, y = torch.randn(6, 3), torch.randn(6, 2)
    fam.set_normalizer(x, y)
    batch_x, batch_y = x.expand(2, -1, -1), y.expand(2, -1, -1)
    loss = fam((batch_x, batch_y))
    out = net((batch_x - x.mean(0)) / x.std(0))
    mu, raw = out[..., :2], out[..., 2:]
    logvar = fam.max_logvar - F.softplus(fam.max_logvar - raw)
    logvar = fam.min_logvar + F.softplus(logvar - fam.min_logvar)
    z = (batch_y - y.mean(0)) / y.std(0)
    nll = 0.5 * (logvar + (z - mu) ** 2 * torch.exp(-logvar))
    want = nll.mean() + 0.01 * (fam.max_logvar.sum() - fam.min_logvar.sum()) / 2
    torch.testing.assert_close(loss, want)
    # the bounds hold for any raw output
    fam.net.layers[-1].bias.data[:, :, 2:] = 1e4
    _, var, _ = fam.predict(x)
    assert torch.all(var <= torch.exp(fam.max_logvar) * y.std(0) ** 2 * 1.001)


def test_sampling_member_choice_temperature_and_disagreement():
    torch.manual_seed(2)
    fam = GaussianEnsemble(EnsembleMLP(4, 2, 2, hidden=(8,)), 2, 1)
    x = torch.randn(5, 2)
    mean, _, _ = fam.predict(x)  # (4, 5, 1)
    members = torch.tensor([0, 1, 2, 3, 0])
    y, _, spread = fam.sample(x, temperature=0.0, members=members)
    torch.testing.assert_close(y, mean[members, torch.arange(5)])
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    torch.testing.assert_close(fam.sample(x, generator=g1)[0], fam.sample(x, generator=g2)[0])
    assert spread.shape == (5,) and torch.all(spread > 0)
    one = GaussianEnsemble(EnsembleMLP(1, 2, 2, hidden=(8,)), 2, 1)
    assert torch.all(one.sample(x)[2] == 0)
    with pytest.raises(ConfigError, match="needs 2 -> 3"):
        GaussianEnsemble(EnsembleMLP(2, 2, 4), 2, 1, b_dim=1)
