"""Unit tests of the GAN family and DiffAugment: loss shapes, the WGAN-GP penalty in closed form, which
parameters each player's step moves, projection conditioning, and the augmentation's contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shared.errors import ConfigError
from shared.generative.diffaugment import diff_augment
from shared.generative.gan import GAN

Z, D, F_DIM = 4, 2, 8  # latent, data and feature widths of the toy models


def _gan(cond_width: int = 0, **kw) -> GAN:
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(Z + cond_width, 16), nn.ReLU(), nn.Linear(16, D))
    disc = nn.Sequential(nn.Linear(D, F_DIM), nn.LeakyReLU(0.2))
    return GAN(gen, disc, Z, F_DIM, **kw)


def _image_gan(**kw) -> GAN:
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(Z, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)))
    disc = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(256, F_DIM))
    return GAN(gen, disc, Z, F_DIM, **kw)


@pytest.mark.parametrize("loss", ["nonsaturating", "wgan-gp"])
def test_losses_are_finite_scalars(loss):
    gan = _gan(loss=loss, drift=1e-3)
    x = torch.randn(16, D)
    for name in ("d", "g"):
        out = gan((x,), name)
        assert out.dim() == 0 and torch.isfinite(out)
        assert all(v.dim() == 0 and not v.requires_grad for v in gan.stats.values())
    gan((x,), "d")
    assert ("gp" in gan.stats) == (loss == "wgan-gp")
    assert gan.objectives == {"d": 1, "g": 1}
    assert _gan(n_critic=5).objectives == {"d": 5, "g": 1}
    assert list(_gan().objectives) == ["d", "g"]  # D first: the loop runs them in order


def test_gradient_penalty_closed_form_for_linear_critic():
    # D(x) = w . x + b (identity features and the family's linear head): grad_x D = w everywhere, so the
    # penalty is (||w|| - 1)^2 whatever the interpolates are.
    gan = GAN(nn.Linear(Z, 3), nn.Identity(), Z, 3, loss="wgan-gp")
    for w in ([[0.3, -0.4, 1.2]], [[0.6, 0.0, 0.8]], [[2.0, 1.0, -2.0]]):
        with torch.no_grad():
            gan.head.weight.copy_(torch.tensor(w))
        expected = (torch.tensor(w).norm() - 1) ** 2
        gp = gan.gradient_penalty(torch.randn(32, 3), torch.randn(32, 3))
        torch.testing.assert_close(gp, expected)
    gp.backward()  # the penalty is differentiable in D's parameters
    assert gan.head.weight.grad is not None and gan.head.weight.grad.abs().sum() > 0


def test_r1_penalty_closed_form_for_linear_critic():
    gan = GAN(nn.Linear(Z, 3), nn.Identity(), Z, 3, r1_weight=2.0)
    base = GAN(nn.Linear(Z, 3), nn.Identity(), Z, 3)
    base.load_state_dict(gan.state_dict())
    x = torch.randn(8, 3)
    torch.manual_seed(0)
    with_r1 = gan((x,), "d")
    torch.manual_seed(0)
    without = base((x,), "d")
    # R1 = gamma / 2 * ||w||^2 for a linear critic.
    torch.testing.assert_close(with_r1 - without, gan.head.weight.pow(2).sum().detach())


@pytest.mark.parametrize("loss", ["nonsaturating", "wgan-gp"])
def test_each_step_moves_only_its_players_parameters(loss):
    gan = _gan(loss=loss)
    d_params, g_params = gan.objective_parameters("d"), gan.objective_parameters("g")
    assert {id(p) for p in d_params}.isdisjoint({id(p) for p in g_params})
    assert len(d_params) + len(g_params) == len(list(gan.parameters()))
    opts = {name: torch.optim.SGD(gan.objective_parameters(name), lr=0.1) for name in gan.objectives}
    x = torch.randn(16, D)

    def snapshot(params):
        return [p.detach().clone() for p in params]

    def changed(before, params):
        return any(not torch.equal(a, p) for a, p in zip(before, params))

    g0, d0 = snapshot(g_params), snapshot(d_params)
    opts["d"].zero_grad()
    gan((x,), "d").backward()
    assert all(p.grad is None for p in g_params)  # fakes were detached in the d-step
    opts["d"].step()
    assert changed(d0, d_params) and not changed(g0, g_params)
    g0, d0 = snapshot(g_params), snapshot(d_params)
    opts["g"].zero_grad()
    gan((x,), "g").backward()
    opts["g"].step()
    assert changed(g0, g_params) and not changed(d0, d_params)
    with pytest.raises(ConfigError):
        gan.objective_parameters("loss")
    with pytest.raises(ConfigError):
        gan((x,), "loss")


def test_projection_conditioning_on_labels_and_vectors():
    gan = _gan(cond_width=3, num_classes=3)
    x, y = torch.randn(6, D), torch.tensor([0, 1, 2, 0, 1, 2])
    phi = gan.discriminator(x)
    # D(x, y) = w . phi + b + <embed_y, phi> (Miyato & Koyama 2018, eq. 3).
    expected = gan.head(phi).squeeze(1) + (gan.embed.weight.T[y] * phi).sum(1)
    torch.testing.assert_close(gan.critic(x, y), expected)
    assert not torch.allclose(gan.critic(x, y), gan.critic(x, (y + 1) % 3))
    assert any(p is gan.embed.weight for p in gan.objective_parameters("d"))
    assert torch.isfinite(gan((x, y), "d")) and torch.isfinite(gan((x, y), "g"))
    assert gan.sample(5, cond=1).shape == (5, D)
    with pytest.raises(ConfigError):
        gan((x,), "d")  # labels required
    with pytest.raises(ConfigError):
        gan.sample(2, cond=3)  # out of range
    props = _gan(cond_width=2, cond_dim=2, loss="wgan-gp")
    c = torch.randn(6, 2)
    expected = props.head(props.discriminator(x)).squeeze(1) + (props.embed(c) * props.discriminator(x)).sum(1)
    torch.testing.assert_close(props.critic(x, c), expected)
    assert torch.isfinite(props((x, c), "d"))
    assert props.gradient_penalty(x, torch.randn(6, D), c).dim() == 0


def test_sampling_is_deterministic_with_a_generator_and_accepts_z():
    gan = _gan()
    a = gan.sample(10, generator=torch.Generator().manual_seed(3))
    b = gan.sample(10, generator=torch.Generator().manual_seed(3))
    assert a.shape == (10, D) and torch.equal(a, b)
    z = torch.randn(10, Z, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(gan.sample(10, z=z), a)
    with pytest.raises(ConfigError):
        gan.sample(4, z=z)


def test_diff_augment_keeps_shape_and_is_differentiable():
    torch.manual_seed(0)
    x = torch.rand(5, 3, 8, 8, requires_grad=True)
    for policy in ("color", "translation", "cutout", "color,translation,cutout", " color , cutout "):
        out = diff_augment(x, policy)
        assert out.shape == x.shape and torch.isfinite(out).all()
        (grad,) = torch.autograd.grad((out * torch.randn_like(out)).sum(), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert diff_augment(x, None) is x and diff_augment(x, "") is x


def test_translation_and_cutout_move_or_zero_pixels_only():
    torch.manual_seed(1)
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(16, 3, 1, 1) + 1  # distinct positive pixel values
    shifted = diff_augment(x, "translation")
    # Every output pixel is an input pixel or zero padding, and the shift is at most 1/8 of the size.
    assert torch.all((shifted == 0) | torch.isin(shifted, x))
    assert (shifted == 0).flatten(1).sum(1).max() <= 3 * (8 + 8 - 1)
    cut = diff_augment(x, "cutout")
    zeros = (cut == 0).flatten(1).sum(1) / 3
    assert torch.all((cut == x) | (cut == 0)) and zeros.max() <= 16 and zeros.min() >= 4
    ones = torch.ones(64, 1, 8, 8)
    assert diff_augment(ones, "translation").mean() < 1  # some images did move


def test_diff_augment_rejects_unknown_policies_and_non_images():
    with pytest.raises(ConfigError):
        diff_augment(torch.rand(2, 1, 8, 8), "colour")
    with pytest.raises(ConfigError):
        diff_augment(torch.rand(2, 2), "color")
    with pytest.raises(ConfigError):
        _image_gan(augment="color,flip")


def test_gan_with_augmentation_on_images():
    gan = _image_gan(augment="color,translation,cutout")
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    for name in ("d", "g"):
        loss = gan((x,), name)
        loss.backward()
        assert torch.isfinite(loss)
    assert any(p.grad is not None for p in gan.objective_parameters("g"))  # G's gradient flows through D(aug)
    assert gan.sample(3).shape == (3, 3, 8, 8)


def test_bad_gan_arguments_raise_config_error():
    with pytest.raises(ConfigError):
        _gan(loss="hinge")
    with pytest.raises(ConfigError):
        _gan(n_critic=0)
    with pytest.raises(ConfigError):
        _gan(gp_weight=-1.0)
