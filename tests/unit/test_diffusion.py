"""Unit tests for the diffusion family and its samplers: schedule properties, q_sample statistics, samplers on
1-D Gaussian data where the optimal noise predictor is known in closed form, classifier-free guidance identities,
determinism under a fixed generator, DDIM inversion, and a loss that falls on a tiny training problem."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from shared.errors import ConfigError
from shared.generative.diffusion import Diffusion, make_schedule
from shared.nets.unet import UNet
from shared.sampling.diffusion import (
    cfg_combine,
    ddim_step,
    ddim_timesteps,
    ddpm_step,
    dpmpp_2m_sde_step,
    dpmpp_2m_step,
    guidance_at,
    sample_loop,
    v_target,
    x0_and_eps,
)

torch.set_num_threads(1)

MU, S = 0.5, 0.5  # the 1-D data distribution N(MU, S^2)


class GaussianEps(nn.Module):
    """The optimal eps predictor for data N(mu_y, S^2): E[eps | x_t] = sqrt(1-a) (x_t - sqrt(a) mu) / (a S^2 + 1 - a),
    a = alpha_bar_t. With labels, mu_y = MU + y / 4 (y = num_classes, the null class, gets MU)."""

    def __init__(self, num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.alphas_cumprod: torch.Tensor | None = None  # set from the family's schedule

    def mean(self, x, y):
        """mu_y broadcast to x's shape."""
        mu = torch.full_like(x, MU)
        if y is not None:
            shift = torch.where(y == self.num_classes, torch.zeros_like(y), y).float() / 4
            mu = mu + shift.view(-1, *([1] * (x.dim() - 1)))
        return mu

    def forward(self, x, t, y):
        a = self.alphas_cumprod[t].view(-1, *([1] * (x.dim() - 1)))
        mu = self.mean(x, y)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * S**2 + 1 - a)


class GaussianV(GaussianEps):
    """The optimal v predictor for the same data: v = sqrt(a) E[eps | x_t] - sqrt(1 - a) E[x0 | x_t], with
    E[x0 | x_t] = mu + sqrt(a) S^2 (x_t - sqrt(a) mu) / (a S^2 + 1 - a) (well conditioned at every a)."""

    def forward(self, x, t, y):
        a = self.alphas_cumprod[t].view(-1, *([1] * (x.dim() - 1)))
        eps, mu = super().forward(x, t, y), self.mean(x, y)
        x0 = mu + a.sqrt() * S**2 * (x - a.sqrt() * mu) / (a * S**2 + 1 - a)
        return a.sqrt() * eps - (1 - a).sqrt() * x0


def _gaussian_family(num_classes: int = 0, schedule: str = "cosine", prediction: str = "eps") -> Diffusion:
    net = GaussianEps(num_classes) if prediction == "eps" else GaussianV(num_classes)
    model = Diffusion(net, (1,), schedule=schedule, timesteps=1000, num_classes=num_classes, prediction=prediction)
    net.alphas_cumprod = model.schedule.alphas_cumprod
    return model


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_schedule_properties(kind):
    s = make_schedule(kind, 1000)
    ab = s.alphas_cumprod
    assert ab.dtype == torch.float32 and ab.shape == (1000,)
    assert bool((ab > 0).all()) and bool((ab < 1).all())
    assert bool((ab[1:] < ab[:-1]).all())  # strictly decreasing
    assert float(s.betas.max()) <= 0.999 + 1e-6
    assert ab[-1] < 1e-3 and ab[0] > 0.999  # from almost clean to almost pure noise


def test_schedule_closed_forms():
    lin = make_schedule("linear", 1000)
    assert math.isclose(float(lin.betas[0]), 1e-4, rel_tol=1e-5)
    assert math.isclose(float(lin.betas[-1]), 0.02, rel_tol=1e-5)
    cos = make_schedule("cosine", 1000)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731  (Nichol & Dhariwal eq. 17)
    for t in (0, 100, 500, 900):  # away from the clipped end, alpha_bar_t = f(t + 1) / f(0)
        assert math.isclose(float(cos.alphas_cumprod[t]), f(t + 1) / f(0), rel_tol=1e-5)
    with pytest.raises(ConfigError, match="cosine"):
        make_schedule("sigmoid")


def test_q_sample_statistics():
    s = make_schedule("cosine", 1000)
    torch.manual_seed(0)
    n, t = 200_000, 300
    x0 = torch.full((n, 1), 0.7)
    xt = s.q_sample(x0, torch.full((n,), t), torch.randn(n, 1))
    a = float(s.alphas_cumprod[t])
    assert abs(float(xt.mean()) - math.sqrt(a) * 0.7) < 0.01
    assert abs(float(xt.var()) - (1 - a)) < 0.01


def test_ddim_timesteps():
    ts = ddim_timesteps(1000, 50)
    assert ts.shape == (50,) and ts.dtype == torch.long
    assert int(ts[0]) == 999 and int(ts[-1]) == 0 and bool((ts[1:] < ts[:-1]).all())
    assert torch.equal(ddim_timesteps(10, 10), torch.arange(9, -1, -1))
    with pytest.raises(ConfigError, match="steps"):
        ddim_timesteps(100, 101)


def test_ddim_eta_one_is_the_ddpm_posterior_step():
    torch.manual_seed(0)
    x, eps, z = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    a_t, a_prev = torch.tensor(0.3), torch.tensor(0.6)
    ddim = ddim_step(x, eps, a_t, a_prev, eta=1.0, noise=z)
    assert torch.allclose(ddim, ddpm_step(x, eps, a_t, a_prev, z), atol=1e-6)


def test_dpmpp_first_order_step_is_ddim_and_second_order_beats_it():
    torch.manual_seed(0)
    x, x0, x0_before = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    a_t, a_prev = torch.tensor(0.3), torch.tensor(0.6)
    eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
    first, h = dpmpp_2m_step(x, x0, None, a_t, a_prev)
    assert torch.allclose(first, ddim_step(x, eps, a_t, a_prev), atol=1e-6)
    assert math.isclose(float(h), 0.5 * math.log(0.6 / 0.4) - 0.5 * math.log(0.3 / 0.7), rel_tol=1e-5)
    assert torch.equal(dpmpp_2m_step(x, x0, x0_before, a_t, torch.tensor(1.0), h)[0], x0)  # last step: x0
    model = _gaussian_family()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    err = {
        s: abs(float(model.sample(20_000, generator=g(), clip_x0=False, sampler=s, steps=10).std()) - S)
        for s in ("ddim", "dpm++2m")
    }
    assert err["dpm++2m"] < err["ddim"] / 2


def test_v_prediction_round_trip_and_equivalence():
    """x0_and_eps inverts v_target exactly, and a DDIM step fed the matching v equals the step fed eps."""
    torch.manual_seed(0)
    x0, eps = torch.randn(6, 3).clamp(-1, 1), torch.randn(6, 3)
    for a in (torch.tensor(2.4e-9), torch.tensor(0.3), torch.tensor(0.9999)):
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        v = v_target(x0, eps, a)
        x0_hat, eps_hat = x0_and_eps(x_t, v, a, "v")
        assert torch.allclose(x0_hat, x0, atol=1e-4) and torch.allclose(eps_hat, eps, atol=1e-4)
        a_prev = torch.tensor(0.95)
        step_v = ddim_step(x_t, v, a, a_prev, prediction="v")
        if a > 1e-6:  # eps -> x0 divides by sqrt(a): at a = 2.4e-9 only v stays exact (the reason for v)
            assert torch.allclose(step_v, ddim_step(x_t, eps, a, a_prev), atol=1e-4)
        else:
            assert torch.allclose(step_v, a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps, atol=1e-3)
    with pytest.raises(ConfigError, match="prediction"):
        Diffusion(GaussianEps(), (1,), prediction="x0")


def test_v_objective_is_zero_for_the_exact_velocity():
    """forward's target is v: a net that is handed the true (x0, eps) through a side channel has zero loss."""

    class Oracle(nn.Module):
        def forward(self, x, t, y):
            return v_target(
                self.x0, (x - a[t].sqrt().view(-1, 1) * self.x0) / (1 - a[t]).sqrt().view(-1, 1), a[t].view(-1, 1)
            )

    net = Oracle()
    model = Diffusion(net, (1,), prediction="v")
    a = model.schedule.alphas_cumprod
    net.x0 = torch.randn(64, 1)
    assert float(model((net.x0,))) < 1e-8


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_min_snr_weighting_is_min_snr_gamma_times_the_x0_error(prediction):
    """Min-SNR-gamma (Hang et al. 2023): the weighted loss on eps or v equals the batch mean of
    min(SNR_t, gamma) ||x0_hat - x0||^2 / D with x0_hat read off the net's output; gamma = 0 is the simple loss."""

    class Fixed(nn.Module):  # an imperfect net: its output does not depend on the input
        def forward(self, x, t, y):
            return torch.linspace(-1, 1, x.shape[0] * 3).view(x.shape) * 0.3

    x0 = torch.randn(256, 3)
    gamma = 5.0
    model = Diffusion(Fixed(), (3,), prediction=prediction, snr_gamma=gamma)
    torch.manual_seed(0)
    loss = model((x0,))
    torch.manual_seed(0)  # the same t and noise as forward drew
    t = torch.randint(0, model.schedule.timesteps, (256,))
    noise = torch.randn_like(x0)
    a = model.schedule.alphas_cumprod[t].view(-1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    x0_hat, _ = x0_and_eps(x_t, Fixed()(x_t, t, None), a, prediction)
    snr = (a / (1 - a)).view(-1)
    expected = (snr.clamp(max=gamma) * (x0_hat - x0).pow(2).mean(dim=1)).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-6)
    plain = Diffusion(Fixed(), (3,), prediction=prediction)
    torch.manual_seed(0)
    simple = plain((x0,))
    torch.manual_seed(0)
    assert torch.equal(simple, Diffusion(Fixed(), (3,), prediction=prediction, snr_gamma=0.0)((x0,)))
    assert not torch.allclose(simple, loss)
    with pytest.raises(ConfigError, match="snr_gamma"):
        Diffusion(Fixed(), (3,), snr_gamma=-1.0)


@pytest.mark.parametrize(
    "kwargs,std_tol",
    [
        ({"sampler": "ddim", "steps": 50, "eta": 0.0}, 0.04),  # first-order ODE error: std ~2.6% low
        ({"sampler": "ddpm", "steps": 1000}, 0.02),  # the full ancestral chain
        ({"sampler": "ddpm", "steps": 50}, 0.08),  # strided chain with beta-tilde variance: ~6% low
        ({"sampler": "dpm++2m", "steps": 20}, 0.01),  # second order: within 0.2% where DDIM-20 is 7% low
        ({"sampler": "dpm++2m-sde", "steps": 50}, 0.03),  # std ~2% high; -0.2% at 200 steps (it converges)
    ],
)
@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_samplers_recover_gaussian_data(kwargs, std_tol, prediction):
    model = _gaussian_family(prediction=prediction)
    g = torch.Generator().manual_seed(0)
    x = model.sample(20_000, generator=g, clip_x0=False, **kwargs)
    assert x.shape == (20_000, 1)
    assert abs(float(x.mean()) - MU) < 0.02 * MU + 0.01
    assert abs(float(x.std()) - S) < std_tol * S


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_ddim_inversion_round_trip(prediction):
    model = _gaussian_family(prediction=prediction)
    x0 = MU + S * torch.randn(2000, 1, generator=torch.Generator().manual_seed(1))
    x_T = model.ddim_invert(x0, steps=100)
    assert abs(float(x_T.std()) - 1.0) < 0.05  # the data are carried to (nearly) standard noise
    back = model.sample(2000, x_T=x_T, steps=100, clip_x0=False)
    assert float((back - x0).abs().mean()) < 0.03


def test_guidance_identities():
    model = _gaussian_family(num_classes=3)
    y = torch.tensor([0, 1, 2, 1])
    x_T = torch.randn(4, 1, generator=torch.Generator().manual_seed(0))
    common = {"x_T": x_T, "steps": 20, "clip_x0": False}
    plain = sample_loop(lambda x, t: model.net(x, t, y), x_T, model.schedule, ddim_timesteps(1000, 20))
    assert torch.allclose(model.sample(4, cond=y, guidance=1.0, **common), plain)
    # w = 0 is the unconditional (null-class) model; w = 1 through the batched two-pass path is conditional.
    assert torch.allclose(model.sample(4, cond=y, guidance=0.0, **common), model.sample(4, cond=None, **common))
    x, t = torch.randn(4, 1), torch.full((4,), 500)
    assert torch.allclose(cfg_combine(model.net(x, t, y), model.net(x, t, None), 1.0), model.net(x, t, y))
    guided = model.guided(x, t, y, 2.5)
    e_c, e_u = model.net(x, t, y), model.net(x, t, torch.full_like(y, 3))
    assert torch.allclose(guided, e_u + 2.5 * (e_c - e_u), atol=1e-6)
    # Guidance pushes samples of class 2 (mean MU + 0.5) further from the null mean MU.
    g = torch.Generator()
    m1 = model.sample(4000, cond=2, guidance=1.0, generator=g.manual_seed(0), clip_x0=False).mean()
    m3 = model.sample(4000, cond=2, guidance=3.0, generator=g.manual_seed(0), clip_x0=False).mean()
    assert abs(float(m1) - (MU + 0.5)) < 0.03 and float(m3) > float(m1) + 0.1


def test_guidance_interval():
    """Guidance only where sigma_t = sqrt((1 - a) / a) is in (lo, hi]: the whole range is plain guided sampling, an
    empty one is w = 1, and a middle band runs the two-pass net call on exactly its steps."""
    assert guidance_at(0.2, 2.5, (1.0, 2.0)) == 2.5  # sigma = 2
    assert guidance_at(0.2, 2.5, (2.0, 3.0)) == 1.0 and guidance_at(0.2, 2.5, None) == 2.5
    model = _gaussian_family(num_classes=3)
    y = torch.tensor([0, 1, 2, 1])
    x_T = torch.randn(4, 1, generator=torch.Generator().manual_seed(0))
    common = {"cond": y, "x_T": x_T, "steps": 20, "clip_x0": False, "sampler": "dpm++2m", "guidance": 2.5}
    guided = model.sample(4, **common)
    assert torch.allclose(model.sample(4, guidance_interval=(0.0, math.inf), **common), guided)
    plain = model.sample(4, **{**common, "guidance": 1.0})
    assert torch.allclose(model.sample(4, guidance_interval=(1e6, 1e7), **common), plain)
    rows = []  # (net batch, timestep) of every net call
    hook = model.net.register_forward_hook(lambda mod, args, out: rows.append((args[0].shape[0], int(args[1][0]))))
    band = model.sample(4, guidance_interval=(0.5, 3.0), **common)
    hook.remove()
    ab = model.schedule.alphas_cumprod
    sigma = {t: math.sqrt((1 - float(ab[t])) / float(ab[t])) for _, t in rows}
    assert [b for b, _ in rows] == [8 if 0.5 < sigma[t] <= 3.0 else 4 for _, t in rows]
    assert 0 < sum(b == 8 for b, _ in rows) < len(rows)
    assert not torch.allclose(band, guided) and not torch.allclose(band, plain)


def test_bad_conditions_raise():
    with pytest.raises(ConfigError, match="0..2"):
        _gaussian_family(num_classes=3).sample(2, cond=5)
    with pytest.raises(ConfigError, match="unconditional"):
        _gaussian_family().sample(2, cond=1)
    with pytest.raises(ConfigError, match="sampler"):
        _gaussian_family().sample(2, sampler="euler")


@pytest.mark.parametrize("kwargs", [{"sampler": "ddpm", "steps": 30}, {"sampler": "ddim", "eta": 0.5, "steps": 30}])
def test_fixed_generator_gives_identical_samples(kwargs):
    torch.manual_seed(0)
    model = Diffusion(UNet(1, base_channels=8, num_classes=10), (1, 8, 8), num_classes=10)
    for p in model.parameters():  # make the net non-trivial (its output layer starts at zero)
        nn.init.normal_(p, std=0.05)

    def draw(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return model.sample(3, cond=[1, 2, 3], guidance=2.0, generator=g, **kwargs)

    a, b, c = draw(7), draw(7), draw(8)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_label_dropout_uses_null_class():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x, t, y):
            seen.append(y.clone())
            return x * self.w

    model = Diffusion(Spy(), (2,), num_classes=4, cond_drop_prob=1.0)
    model((torch.randn(8, 2), torch.arange(8) % 4))
    model((torch.randn(8, 2),))  # no labels: all null
    assert bool((seen[0] == 4).all()) and bool((seen[1] == 4).all())
    model.cond_drop_prob = 0.0
    model((torch.randn(8, 2), torch.arange(8) % 4))
    assert torch.equal(seen[2], torch.arange(8) % 4)
    assert set(model.stats) == {"mse"}


def test_training_loss_decreases_on_tiny_problem():
    from apps.core_demo.data import load_digits

    torch.manual_seed(0)
    x, y = load_digits()[:2]
    x, y = x[:256] * 2 - 1, y[:256]  # (256, 1, 8, 8) in [-1, 1]
    model = Diffusion(UNet(1, base_channels=8, num_classes=10), (1, 8, 8), num_classes=10)
    opt = torch.optim.Adam(model.objective_parameters("loss"), lr=3e-3)

    def eval_loss() -> float:
        state = torch.get_rng_state()
        torch.manual_seed(123)  # the same t and noise before and after training
        with torch.no_grad():
            loss = sum(float(model((x, y))) for _ in range(4)) / 4
        torch.set_rng_state(state)
        return loss

    before = eval_loss()
    for _ in range(60):
        idx = torch.randint(0, len(x), (32,))
        loss = model((x[idx], y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert before > 0.9  # the zero-initialised output predicts eps = 0: loss E[eps^2] = 1
    assert after < 0.5 * before  # ~1.0 -> ~0.3 in 60 steps


def _old_sample_loop(model_fn, x_T, ab, timesteps, sampler, eta, generator, clip_x0, prediction):
    """The reverse chain as sample_loop ran it before the fused step: the readable step functions one by one on a
    model_fn that returns the guided (already combined) output, noise torch.randn(x.shape) per stochastic step."""
    x, x0_before, h_before = x_T, None, None
    for i, t in enumerate(timesteps):
        a_t = ab[t]
        a_prev = ab[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.ones_like(a_t)
        out = model_fn(x, t.expand(x.shape[0]))
        if sampler in ("dpm++2m", "dpm++2m-sde"):
            x0, _ = x0_and_eps(x, out, a_t, prediction, clip_x0)
            before = None if i + 2 >= len(timesteps) else x0_before
            if sampler == "dpm++2m":
                x, h_before = dpmpp_2m_step(x, x0, before, a_t, a_prev, h_before)
            else:
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype) if i + 1 < len(timesteps) else None
                x, h_before = dpmpp_2m_sde_step(x, x0, before, a_t, a_prev, h_before, z)
            x0_before = x0
            continue
        stochastic = i + 1 < len(timesteps) and (sampler == "ddpm" or eta > 0)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) if stochastic else None
        if sampler == "ddim":
            x = ddim_step(x, out, a_t, a_prev, eta, noise, clip_x0, prediction)
        else:
            x = ddpm_step(x, out, a_t, a_prev, noise, clip_x0, prediction)
    return x


@pytest.mark.parametrize(
    "sampler,eta", [("ddim", 0.0), ("ddim", 0.6), ("ddpm", 0.0), ("dpm++2m", 0.0), ("dpm++2m-sde", 0.0)]
)
@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("clip_x0", [False, True])
@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_fused_sample_loop_matches_the_step_functions(sampler, eta, prediction, clip_x0, guidance):
    """sample (its fused steps, PyTorch reference on CPU, CFG combined inside the step) = the old composition of
    cfg_combine and ddim_step / ddpm_step / dpmpp_2m_step / dpmpp_2m_sde_step, same generator stream, up to float
    rounding."""
    model = _gaussian_family(num_classes=3, prediction=prediction)
    y = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1])
    x_T = 2 * torch.randn(8, 1, generator=torch.Generator().manual_seed(0))
    new = model.sample(
        8, cond=y, x_T=x_T, steps=15, sampler=sampler, eta=eta, guidance=guidance, clip_x0=clip_x0,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    old = _old_sample_loop(
        lambda x, t: model.guided(x, t, y, guidance), x_T, model.schedule.alphas_cumprod,
        ddim_timesteps(1000, 15), sampler, eta, torch.Generator().manual_seed(1), clip_x0, prediction,
    )  # fmt: skip
    torch.testing.assert_close(new, old, rtol=2e-5, atol=1e-5)


def test_fused_sample_loop_matches_on_a_unet():
    """The same on images: a random class-conditional UNet, (3, 1, 8, 8), ancestral DDPM with guidance."""
    torch.manual_seed(0)
    model = Diffusion(UNet(1, base_channels=8, num_classes=10), (1, 8, 8), num_classes=10, prediction="v")
    for p in model.parameters():  # a non-trivial net (its output layer starts at zero)
        nn.init.normal_(p, std=0.05)
    model.eval()
    y = torch.tensor([1, 2, 3])
    x_T = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    kw = {"sampler": "ddpm", "eta": 0.0, "clip_x0": True}
    new = model.sample(3, cond=y, x_T=x_T, steps=8, guidance=2.0, generator=torch.Generator().manual_seed(5), **kw)
    with torch.no_grad():
        old = _old_sample_loop(
            lambda x, t: model.guided(x, t, y, 2.0), x_T, model.schedule.alphas_cumprod, ddim_timesteps(1000, 8),
            generator=torch.Generator().manual_seed(5), prediction="v", **kw,
        )  # fmt: skip
    torch.testing.assert_close(new, old, rtol=2e-5, atol=1e-5)
