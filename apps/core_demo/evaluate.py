"""Evaluation of each family against a known answer, returning flat metrics plus artefacts for the report.

- vae: held-out ELBO and the IWAE bound (k=100) in nats on binarised digits; class-conditional samples judged by
  a logistic-regression digit classifier trained on the real digits (its own held-out accuracy is reported too).
- diffusion: class-conditional samples, 50 DDIM steps with classifier-free guidance, judged by the same classifier.
- gan: ring of 8 Gaussians: share of 10k samples within 3 sd of each mode, and of any mode.
- rbm: exact log-likelihood of bars-and-stripes by enumeration, exact log Z against annealed importance sampling.
- ar: class-conditional pixel sequences sampled at temperature 1 (and top-k), judged by the classifier.
- sampling: a rare-event probability by simple random vs importance sampling, and stratified vs simple random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from apps.core_demo.data import bars_and_stripes, ring_modes
from apps.core_demo.recipes import ImageData, tokens_to_images
from shared.sampling.monte_carlo import importance_estimate, stratified_normal, stratified_uniform

DDIM_STEPS = 50
GUIDANCE = 2.0


@dataclass
class Evaluation:
    metrics: dict[str, float] = field(default_factory=dict)
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    """Name -> (N, 1, S, S) in [0, 1] for image grids."""
    points: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class DigitClassifier:
    """Multinomial logistic regression on raw pixels of the real training images (~96% held-out on digits)."""

    def __init__(self, data: ImageData):
        from sklearn.linear_model import LogisticRegression

        self.clf = LogisticRegression(max_iter=3000)
        self.clf.fit(self._features(data.x_train), data.y_train.numpy())
        self.real_accuracy = float(self.clf.score(self._features(data.x_test), data.y_test.numpy()))

    @staticmethod
    def _features(x: torch.Tensor) -> np.ndarray:
        return (x.detach().float().cpu().clamp(0, 1) * 16).flatten(1).numpy()

    def agreement(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """Share of images x (N,1,S,S) in [0,1] that the classifier labels as `labels`."""
        return float((self.clf.predict(self._features(x)) == labels.cpu().numpy()).mean())


def _labels(n: int, num_classes: int, device) -> torch.Tensor:
    return torch.arange(n, device=device) % num_classes  # equal share of every class


def _gen(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate_vae(model, data: ImageData, clf: DigitClassifier, n: int, seed: int) -> Evaluation:
    dev = _device(model)
    g = _gen(seed, dev)
    x_test = torch.bernoulli(data.x_test.to(dev), generator=g)  # one fixed binarisation of the held-out set
    y_test = data.y_test.to(dev)
    elbo = model.elbo(x_test, y_test).mean().item()
    iwae = model.iwae_bound(x_test, y_test, k=100).mean().item()
    labels = _labels(n, data.num_classes, dev)
    samples = model.sample(n, cond=labels, generator=g)
    ev = Evaluation(
        metrics={
            "vae_elbo_test": elbo,
            "vae_iwae100_test": iwae,
            "vae_iwae_gain": iwae - elbo,
            "vae_label_agreement": clf.agreement(samples, labels),
        }
    )
    ev.images["vae_samples"] = samples[: 10 * data.num_classes]
    # Stratified latent sweep: 10 latent quantile strata along one axis, every class; shows what a latent axis does.
    z = torch.zeros(10, model.latent_dim, device=dev)
    z[:, 0] = stratified_normal(10, 1, generator=g).to(dev).sort(dim=0).values[:, 0]
    rows = [model.decode(z, torch.full((10,), c, device=dev)) for c in range(min(data.num_classes, 10))]
    ev.images["vae_latent_sweep"] = torch.cat(rows)
    a, b = data.x_test[:1].to(dev), data.x_test[1:2].to(dev)
    path = model.interpolate(a, b, steps=10, cond=data.y_test[:1].to(dev), method="slerp")  # (10, 1, 1, S, S)
    ev.images["vae_interpolation"] = path[:, 0]
    return ev


@torch.no_grad()
def evaluate_diffusion(model, data: ImageData, clf: DigitClassifier, n: int, seed: int) -> Evaluation:
    dev = _device(model)
    labels = _labels(n, data.num_classes, dev)
    x = model.sample(n, cond=labels, steps=DDIM_STEPS, sampler="ddim", guidance=GUIDANCE, generator=_gen(seed, dev))
    x = ((x + 1) / 2).clamp(0, 1)
    ev = Evaluation(
        metrics={
            "diffusion_label_agreement": clf.agreement(x, labels),
            "diffusion_ddim_steps": DDIM_STEPS,
            "diffusion_guidance": GUIDANCE,
        }
    )
    ev.images["diffusion_samples"] = x[: 10 * data.num_classes]
    return ev


@torch.no_grad()
def evaluate_gan(model, n: int, seed: int, std: float = 0.02) -> Evaluation:
    dev = _device(model)
    x = model.sample(max(n, 10_000), generator=_gen(seed, dev)).cpu()
    centres = ring_modes()
    dist = torch.cdist(x, centres)  # (N, 8)
    nearest, which = dist.min(dim=1)
    good = nearest <= 3 * std
    share = torch.bincount(which[good], minlength=len(centres)).float() / len(x)
    ev = Evaluation(
        metrics={
            "gan_high_quality": good.float().mean().item(),
            "gan_modes_covered": int((share >= 0.05).sum()),
            "gan_min_mode_share": share.min().item(),
        }
    )
    ev.points["gan_samples"] = x[:3000].numpy()
    ev.points["gan_modes"] = centres.numpy()
    return ev


@torch.no_grad()
def evaluate_rbm(model, seed: int) -> Evaluation:
    dev = _device(model)
    patterns = bars_and_stripes(3).to(dev)
    log_z = float(model.log_partition_exact())
    ll = model.log_likelihood_exact(patterns).mean().item()
    ais, ais_se = model.ais_log_partition(n_chains=1000, n_betas=2000, generator=_gen(seed, dev))
    samples = model.sample(100, steps=1000, generator=_gen(seed + 1, dev))
    valid = (torch.cdist(samples.float(), patterns) == 0).any(dim=1).float().mean().item()
    ev = Evaluation(
        metrics={
            "rbm_loglik_exact": ll,
            "rbm_loglik_optimum": -math.log(len(patterns)),
            "rbm_logz_exact": log_z,
            "rbm_logz_ais": ais,
            "rbm_logz_ais_stderr": ais_se,
            "rbm_logz_ais_error": abs(ais - log_z),
            "rbm_sample_valid": valid,
        }
    )
    ev.images["rbm_samples"] = samples[:60].view(-1, 1, 3, 3).cpu()
    return ev


@torch.no_grad()
def evaluate_ar(model, data: ImageData, clf: DigitClassifier, n: int, seed: int) -> Evaluation:
    dev = _device(model)
    labels = _labels(n, data.num_classes, dev)
    g = _gen(seed, dev)
    tokens = model.sample(n, cond=labels, temperature=1.0, generator=g)
    x = tokens_to_images(tokens.cpu(), data.size)
    topk = tokens_to_images(model.sample(n, cond=labels, temperature=1.0, top_k=3, generator=g).cpu(), data.size)
    ev = Evaluation(
        metrics={"ar_label_agreement": clf.agreement(x, labels), "ar_label_agreement_top3": clf.agreement(topk, labels)}
    )
    ev.images["ar_samples"] = x[: 10 * data.num_classes]
    return ev


def evaluate_sampling(seed: int, n: int = 100_000) -> Evaluation:
    """P(X > 4), X ~ N(0,1), by simple random vs importance sampling (proposal N(4,1)); and E[exp(U)] by simple
    random vs stratified sampling, over 100 repeats at equal draws."""
    g = torch.Generator().manual_seed(seed)
    exact = 0.5 * math.erfc(4 / math.sqrt(2))
    srs = (torch.randn(n, generator=g, dtype=torch.float64) > 4).double().mean().item()
    y = torch.randn(n, generator=g, dtype=torch.float64) + 4  # proposal q = N(4, 1)
    log_p, log_q = -0.5 * y**2, -0.5 * (y - 4) ** 2  # the common normalising constant cancels in p/q
    is_est = importance_estimate((y > 4).double(), log_p, log_q, self_normalised=False).mean
    reps, m = 100, 1000
    srs_means = [torch.rand(m, generator=g, dtype=torch.float64).exp().mean().item() for _ in range(reps)]
    strat_means = [stratified_uniform(m, generator=g).double().exp().mean().item() for _ in range(reps)]
    return Evaluation(
        metrics={
            "sampling_tail_exact": exact,
            "sampling_tail_srs": srs,
            "sampling_tail_is": is_est,
            "sampling_tail_srs_rel_error": abs(srs - exact) / exact,
            "sampling_tail_is_rel_error": abs(is_est - exact) / exact,
            "sampling_stratified_variance_ratio": float(np.var(srs_means) / max(np.var(strat_means), 1e-300)),
        }
    )
