"""The probabilistic-ensemble family: E networks, each a diagonal Gaussian (plus optional Bernoulli heads) over y | x.

Chua et al. 2018 (PETS), "Deep Reinforcement Learning in a Handful of Trials using Probabilistic Dynamics Models".
Each member e maps a normalised input x to (mu_e, logvar_e) of a Gaussian over the normalised target y and to
logits l_e of independent Bernoulli targets b (e.g. "the episode ended"). The log-variance is squashed between
learned bounds (`max_logvar`, `min_logvar`, PETS appendix A.1) so that no member can claim an arbitrarily small or
large variance on data it has not seen; a small penalty keeps the bounds tight. The spread of the members' means
(epistemic uncertainty) is what a model-based agent uses to notice that it has left the data.

Batches are (x, y) or (x, y, b) with x (E, B, x_dim), y (E, B, y_dim), b (E, B, b_dim) float in {0, 1}: one
bootstrap resample per member (a (B, ...) batch is shared by all members). The loss is the Gaussian negative
log-likelihood per target dimension plus the Bernoulli cross-entropy, averaged over members and batch.
Inputs and targets are standardised with statistics stored as buffers (`set_normalizer`), so the checkpoint holds
everything needed to predict in data units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import ConfigError
from shared.nets.ensemble import EnsembleMLP


class GaussianEnsemble(nn.Module):
    def __init__(self, net: EnsembleMLP, x_dim: int, y_dim: int, b_dim: int = 0, bound_penalty: float = 0.01):
        super().__init__()
        if net.in_dim != x_dim or net.out_dim != 2 * y_dim + b_dim:
            raise ConfigError(
                f"the ensemble net maps {net.in_dim} -> {net.out_dim}; a Gaussian ensemble over y ({y_dim}) and "
                f"Bernoulli b ({b_dim}) given x ({x_dim}) needs {x_dim} -> {2 * y_dim + b_dim}"
            )
        self.net, self.members = net, net.members
        self.x_dim, self.y_dim, self.b_dim = int(x_dim), int(y_dim), int(b_dim)
        self.bound_penalty = float(bound_penalty)
        self.max_logvar = nn.Parameter(torch.full((y_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((y_dim,), -10.0))
        for name, dim in (("x_mean", x_dim), ("y_mean", y_dim)):
            self.register_buffer(name, torch.zeros(dim))
        for name, dim in (("x_std", x_dim), ("y_std", y_dim)):
            self.register_buffer(name, torch.ones(dim))
        self.objectives: dict[str, int] = {"loss": 1}
        self.stats: dict[str, torch.Tensor] = {}

    def objective_parameters(self, name: str) -> list[nn.Parameter]:
        if name != "loss":
            raise ConfigError(f"the Gaussian ensemble has one objective, 'loss'; got {name!r}")
        return list(self.parameters())

    @torch.no_grad()
    def set_normalizer(self, x: torch.Tensor, y: torch.Tensor, min_std: float = 1e-6) -> None:
        """Standardise inputs and targets with the mean and sd of x (N, x_dim) and y (N, y_dim)."""
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(min_std))
        self.y_mean.copy_(y.mean(0))
        self.y_std.copy_(y.std(0).clamp_min(min_std))

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x in data units (B, x_dim) or (E, B, x_dim) -> normalised mu, logvar (E, B, y_dim), logits (E, B, b_dim)."""
        out = self.net((x - self.x_mean) / self.x_std)
        mu, raw, logits = out.split((self.y_dim, self.y_dim, self.b_dim), dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw)  # PETS soft bounds
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mu, logvar, logits

    def forward(self, batch: tuple[torch.Tensor, ...], objective: str = "loss") -> torch.Tensor:
        x, y = batch[0], batch[1]
        mu, logvar, logits = self._heads(x)
        z = (y - self.y_mean) / self.y_std
        nll = 0.5 * (logvar + (z - mu) ** 2 * torch.exp(-logvar))  # (E, B, y_dim), up to the constant log(2 pi)/2
        loss = nll.mean() + self.bound_penalty * (self.max_logvar.sum() - self.min_logvar.sum()) / self.y_dim
        self.stats = {"nll": nll.detach().mean(), "mse": ((z - mu) ** 2).detach().mean()}
        if self.b_dim:
            if len(batch) < 3:
                raise ConfigError(f"this ensemble has {self.b_dim} Bernoulli targets; batches must be (x, y, b)")
            bce = F.binary_cross_entropy_with_logits(logits, batch[2].expand_as(logits))
            loss = loss + bce
            self.stats["bce"] = bce.detach()
        return loss

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every member's prediction in data units: mean, variance (E, B, y_dim) and probabilities (E, B, b_dim)."""
        mu, logvar, logits = self._heads(x)
        return mu * self.y_std + self.y_mean, logvar.exp() * self.y_std**2, torch.sigmoid(logits)

    @torch.no_grad()
    def sample(
        self,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        members: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One draw per row from a random member ("TS-1" of PETS): x (B, x_dim) ->

        y (B, y_dim) = mu_m + temperature * sd_m * eps in data units, p (B, b_dim) the ensemble-mean Bernoulli
        probabilities, and disagreement (B,): the sd across members of the normalised means, averaged over y's
        dimensions (0 when the members agree). `members` (B,) int64 fixes the member per row.
        """
        members, eps = self.draw_noise(x.shape[-2], x.device, generator, members)
        return self.sample_given(x, members, eps, temperature)

    def draw_noise(
        self,
        b: int,
        device: torch.device,
        generator: torch.Generator | None = None,
        members: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The randomness of `sample` for b rows, in its order: a member per row (B,) int64 (unless given), then
        the standard normal noise (B, y_dim)."""
        if members is None:
            members = torch.randint(self.members, (b,), generator=generator, device=device)
        eps = torch.randn((b, self.y_dim), generator=generator, device=device, dtype=self.y_mean.dtype)
        return members, eps

    def sample_given(
        self, x: torch.Tensor, members: torch.Tensor, eps: torch.Tensor, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`sample` with its randomness passed in: members (B,) int64, eps (B, y_dim) standard normal. A pure
        function of tensors, so it can be compiled into one graph (`torch.compile`) with the nets."""
        mu, logvar, logits = self._heads(x)  # (E, B, .)
        rows = torch.arange(x.shape[-2], device=x.device)
        m, lv = mu[members, rows], logvar[members, rows]  # (B, y_dim)
        y = (m + temperature * (0.5 * lv).exp() * eps) * self.y_std + self.y_mean
        spread = mu.std(dim=0, unbiased=False).mean(dim=-1) if self.members > 1 else mu.new_zeros(x.shape[-2])
        return y, torch.sigmoid(logits).mean(dim=0), spread
