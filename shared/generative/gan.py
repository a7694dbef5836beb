"""The GAN family: a generator and a discriminator passed in, the two-player losses, and sampling.

The generator net maps (B, latent_dim + C) -> x, where C is the condition width (one-hot labels or a float
vector, appended to z). The discriminator net maps x -> (B, feature_dim) features; this family owns the output
head, so the critic value is D(x, c) = w . phi(x) + b + <embed(c), phi(x)>, the last term being the projection
discriminator of Miyato & Koyama 2018 ("cGANs with Projection Discriminator", eq. 3), present only when the model
is conditional. Two losses: "nonsaturating" (Goodfellow et al. 2014, section 3: D minimises softplus(-D(real)) +
softplus(D(fake)), G minimises softplus(-D(fake))) and "wgan-gp" (Gulrajani et al. 2017, Algorithm 1: the critic
minimises D(fake) - D(real) + lambda (||grad D(x_hat)|| - 1)^2 on random interpolates x_hat, G minimises
-D(fake); an optional drift term eps * D(real)^2 from Karras et al. 2018 keeps the critic near zero). Either loss
can add the R1 penalty gamma/2 ||grad D(real)||^2 (Mescheder et al. 2018), which stabilises small-data training.
Objectives are {"d": n_critic, "g": 1}; fakes are detached in the d-step. With `augment` set, DiffAugment
(shared.generative.diffaugment) is applied to real and fake images before D in both steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import ConfigError
from shared.generative.conditioning import condition_vector, condition_width, split_batch, with_condition
from shared.generative.diffaugment import diff_augment, parse_policy

LOSSES = ("nonsaturating", "wgan-gp")


class GAN(nn.Module):
    """Generative adversarial network over a generator net and a discriminator feature net."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        latent_dim: int,
        feature_dim: int,
        loss: str = "nonsaturating",
        gp_weight: float = 10.0,
        n_critic: int = 1,
        augment: str | None = None,
        num_classes: int = 0,
        cond_dim: int = 0,
        drift: float = 0.0,
        r1_weight: float = 0.0,
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"unknown GAN loss {loss!r}; choose one of {LOSSES}")
        if latent_dim < 1 or feature_dim < 1:
            raise ConfigError(f"latent_dim={latent_dim} and feature_dim={feature_dim} must be >= 1")
        if n_critic < 1:
            raise ConfigError(f"n_critic={n_critic} must be >= 1 (discriminator updates per generator update)")
        if gp_weight < 0 or drift < 0 or r1_weight < 0:
            raise ConfigError(f"gp_weight={gp_weight}, drift={drift}, r1_weight={r1_weight} must be >= 0")
        self.cond_width = condition_width(num_classes, cond_dim)
        parse_policy(augment)  # fail at construction, not at the first step
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim, self.feature_dim = int(latent_dim), int(feature_dim)
        self.loss, self.gp_weight, self.drift, self.r1_weight = loss, float(gp_weight), float(drift), float(r1_weight)
        self.augment = augment or None
        self.num_classes, self.cond_dim = int(num_classes), int(cond_dim)
        self.head = nn.Linear(feature_dim, 1)  # w . phi(x) + b
        # Projection embedding of the condition vector (one-hot labels or floats): (B, C) -> (B, feature_dim).
        self.embed: nn.Linear | None = None
        if self.cond_width > 0:
            self.embed = nn.Linear(self.cond_width, feature_dim, bias=False)
            nn.init.normal_(self.embed.weight, std=0.02)  # start near the unconditional critic
        self.objectives: dict[str, int] = {"d": int(n_critic), "g": 1}
        self.stats: dict[str, torch.Tensor] = {}

    # -- groups ------------------------------------------------------------------------------------------

    def objective_parameters(self, name: str) -> list[nn.Parameter]:
        """'d': discriminator net, head and projection embedding; 'g': generator net."""
        if name == "d":
            mods = [self.discriminator, self.head] + ([self.embed] if self.embed is not None else [])
            return [p for m in mods for p in m.parameters()]
        if name == "g":
            return list(self.generator.parameters())
        raise ConfigError(f"GAN objectives are 'd' and 'g', got {name!r}")

    # -- networks ----------------------------------------------------------------------------------------

    def _cond(self, cond, n: int, device: torch.device, check_range: bool = False) -> torch.Tensor | None:
        return condition_vector(cond, self.num_classes, self.cond_dim, n, device, check_range=check_range)

    def generate(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim), c (B, C) float or None -> x."""
        return self.generator(with_condition(z, c))

    def critic(self, x: torch.Tensor, cond=None) -> torch.Tensor:
        """Critic values (B,) for x; cond as in `sample` (labels or floats), required iff the model is
        conditional."""
        return self._critic(x, self._cond(cond, x.shape[0], x.device))

    def _critic(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        phi = self.discriminator(x)  # (B, feature_dim)
        out = self.head(phi).squeeze(1)  # (B,)
        if self.embed is None:
            return out
        # Projection term <embed(y), phi(x)> (Miyato & Koyama 2018, eq. 3); for labels c is one-hot, so
        # embed(c) is the class embedding row.
        return out + (self.embed(c.to(phi.dtype)) * phi).sum(dim=1)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.augment) if self.augment else x

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, cond=None) -> torch.Tensor:
        """Scalar mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2, x_hat = eps real + (1 - eps) fake,
        eps ~ U(0, 1) per example (Gulrajani et al. 2017, eq. 3). Graph kept so the penalty trains D."""
        return self._gradient_penalty(real, fake, self._cond(cond, real.shape[0], real.device))

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
        x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
        d = self._critic(x_hat, c)
        (grad,) = torch.autograd.grad(d.sum(), x_hat, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    # -- losses ------------------------------------------------------------------------------------------

    def forward(self, batch, objective: str = "d") -> torch.Tensor:
        """batch (x,) or (x, y) -> scalar loss of the `objective` player ('d' or 'g')."""
        if objective not in self.objectives:
            raise ConfigError(f"GAN objectives are 'd' and 'g', got {objective!r}")
        real, y = split_batch(batch)
        n = real.shape[0]
        c = self._cond(y, n, real.device)
        z = torch.randn(n, self.latent_dim, device=real.device, dtype=real.dtype)  # global RNG: training
        if objective == "d":
            with torch.no_grad():
                fake = self.generate(z, c)  # the d-step never back-propagates into G
            real_a, fake_a = self._augment(real), self._augment(fake)
            if self.r1_weight > 0:
                real_a = real_a.detach().requires_grad_(True)  # R1 differentiates D(real) in the input
            d_real, d_fake = self._critic(real_a, c), self._critic(fake_a, c)
            if self.loss == "nonsaturating":
                loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
                gp = None
            else:
                gp = self._gradient_penalty(real_a, fake_a, c)
                loss = d_fake.mean() - d_real.mean() + self.gp_weight * gp
                if self.drift > 0:
                    loss = loss + self.drift * (d_real**2).mean()
            self.stats = {"d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}
            if gp is not None:
                self.stats["gp"] = gp.detach()
            if self.r1_weight > 0:
                # R1 = gamma / 2 E ||grad_x D(x_real)||^2 (Mescheder et al. 2018, eq. 9).
                (grad,) = torch.autograd.grad(d_real.sum(), real_a, create_graph=True)
                r1 = grad.pow(2).flatten(1).sum(dim=1).mean()
                loss = loss + 0.5 * self.r1_weight * r1
                self.stats["r1"] = r1.detach()
            return loss
        fake = self.generate(z, c)
        d_fake = self._critic(self._augment(fake), c)
        loss = F.softplus(-d_fake).mean() if self.loss == "nonsaturating" else -d_fake.mean()
        self.stats = {"g_d_fake": d_fake.detach().mean()}
        return loss

    # -- sampling ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, *, cond=None, generator: torch.Generator | None = None, z=None) -> torch.Tensor:
        """n samples x; z (n, latent_dim) given, or drawn from N(0, I) with `generator` (on the model's device)."""
        param = next(self.generator.parameters())
        device = param.device
        if z is None:
            if n < 1:
                raise ConfigError(f"n={n} must be >= 1 samples")
            z = torch.randn(n, self.latent_dim, device=device, dtype=param.dtype, generator=generator)
        elif z.shape != (n, self.latent_dim):
            raise ConfigError(f"z has shape {tuple(z.shape)}, expected ({n}, {self.latent_dim})")
        c = self._cond(cond, n, device, check_range=True)
        return self.generate(z.to(device), c)
