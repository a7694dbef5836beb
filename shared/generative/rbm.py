"""Bernoulli-Bernoulli restricted Boltzmann machine: the family, its training objective and its partition function.

Energy E(v, h) = -v.b - h.c - v W h with binary visible v (V,) and hidden h (H,). The family trains by contrastive
divergence (CD-k, Hinton 2002; chains restart at the data) or persistent CD (PCD, Tieleman 2008; chains kept in a
registered buffer, so a checkpoint resumes them). `forward` returns the surrogate loss mean F(v_data) -
mean F(v_model) whose gradient is the CD gradient of the negative log-likelihood. For evaluation it holds the exact
log partition function by enumerating the smaller layer (the other summed analytically), and annealed importance
sampling (AIS, Salakhutdinov & Murray 2008, "On the quantitative analysis of deep belief networks") from a
base-rate model for layers too big to enumerate. Every Gibbs half-step (training chains, sampling, AIS) is torch's
matrix product followed by `shared.kernels.bernoulli_sigmoid` (bias, sigmoid and Bernoulli draw fused: one Triton
kernel on CUDA, the PyTorch reference elsewhere; `backend` picks).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import ConfigError
from shared.kernels.backend import BACKENDS
from shared.kernels.bernoulli_sigmoid import bernoulli_sigmoid

# Largest layer we enumerate exactly (2**24 = 16.7M states, processed in chunks).
MAX_ENUMERATED_UNITS = 24
_ENUM_CHUNK = 1 << 16


def _log_marginal_unnorm(x: torch.Tensor, weight: torch.Tensor, bias_x: torch.Tensor, bias_y: torch.Tensor):
    """log sum_y exp(-E(x, y)) = x.bias_x + sum_j softplus(bias_y_j + (x W)_j). x (B, X), weight (X, Y) -> (B,).

    With (v, W, b, c) this is -F(v); with (h, W.T, c, b) it is the hidden-side -F(h)."""
    return x @ bias_x + F.softplus(x @ weight + bias_y).sum(-1)


def _binary_states(m: int, start: int, stop: int, like: torch.Tensor) -> torch.Tensor:
    """Rows start..stop-1 of the (2**m, m) table of all binary vectors, in like's dtype and device."""
    idx = torch.arange(start, stop, device=like.device)
    bits = torch.arange(m, device=like.device)
    return ((idx[:, None] >> bits) & 1).to(like.dtype)  # (stop - start, m)


def base_rate_bias(data: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Visible biases of the base-rate model for AIS: logit of the (smoothed) data mean. data (N, V) -> (V,).

    Salakhutdinov & Murray (2008, Sec. 4.2) start AIS from this model; it is much closer to a trained RBM than the
    uniform distribution, so AIS needs fewer intermediate distributions."""
    p = data.reshape(data.shape[0], -1).double().mean(0).clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


class RBM(nn.Module):
    """Bernoulli-Bernoulli RBM trained by CD-k (`persistent=False`) or PCD-k with `n_chains` persistent chains.

    `backend` is the Gibbs half-steps' kernel backend ("auto": the Triton kernel on CUDA, else PyTorch)."""

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        k: int = 1,
        persistent: bool = False,
        n_chains: int = 64,
        backend: str = "auto",
    ):
        super().__init__()
        for name, value in (("n_visible", n_visible), ("n_hidden", n_hidden), ("k", k), ("n_chains", n_chains)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"RBM {name}={value!r} must be a positive int; pass e.g. {name}=1 or more")
        if backend not in BACKENDS:
            raise ConfigError(f"RBM backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
        self.n_visible, self.n_hidden, self.k, self.persistent = n_visible, n_hidden, k, bool(persistent)
        self.backend = backend
        self.objectives = {"loss": 1}
        self.stats: dict[str, torch.Tensor] = {}
        # Small random weights, zero biases (Hinton 2010, "A practical guide to training RBMs", Sec. 8).
        self.W = nn.Parameter(0.01 * torch.randn(n_visible, n_hidden))  # (V, H)
        self.b = nn.Parameter(torch.zeros(n_visible))  # (V,) visible bias
        self.c = nn.Parameter(torch.zeros(n_hidden))  # (H,) hidden bias
        # PCD chains live in a buffer so that they are saved with the state_dict; initialised from the global RNG
        # at construction like the weights, so a seeded run is reproducible.
        chains = torch.bernoulli(torch.full((n_chains, n_visible), 0.5)) if self.persistent else None
        self.register_buffer("chains", chains)

    # ---- conditionals and Gibbs sampling -------------------------------------------------------------------
    def objective_parameters(self, name: str = "loss") -> list[nn.Parameter]:
        if name not in self.objectives:
            raise ConfigError(f"RBM has objectives {list(self.objectives)}, not {name!r}; use 'loss'")
        return list(self.parameters())

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -v.b - sum_j softplus(c_j + (v W)_j), so p(v) = exp(-F(v)) / Z. v (B, V) -> (B,)."""
        return -_log_marginal_unnorm(v, self.W, self.b, self.c)

    def p_h_given_v(self, v: torch.Tensor) -> torch.Tensor:
        """p(h_j = 1 | v) = sigmoid(c + v W). v (B, V) -> (B, H)."""
        return torch.sigmoid(v @ self.W + self.c)

    def p_v_given_h(self, h: torch.Tensor) -> torch.Tensor:
        """p(v_i = 1 | h) = sigmoid(b + h W^T). h (B, H) -> (B, V)."""
        return torch.sigmoid(h @ self.W.T + self.b)

    def sample_h_given_v(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """h ~ Bernoulli(sigmoid(c + v W)): v (B, V) -> binary (B, H), the matmul then one fused kernel."""
        return bernoulli_sigmoid(v @ self.W, self.c, generator=generator, backend=self.backend)

    def sample_v_given_h(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """v ~ Bernoulli(sigmoid(b + h W^T)): h (B, H) -> binary (B, V)."""
        return bernoulli_sigmoid(h @ self.W.T, self.b, generator=generator, backend=self.backend)

    def gibbs_step(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One block-Gibbs sweep v -> h -> v'. v (B, V) -> binary (B, V); randomness from `generator` (or global).
        Samples carry no gradient (the CD loss holds them fixed)."""
        return self.sample_v_given_h(self.sample_h_given_v(v, generator), generator)

    def _visible(self, x: torch.Tensor) -> torch.Tensor:
        """Flatten a batch to (B, V), checking the width, in the parameters' dtype."""
        x = x.reshape(x.shape[0], -1) if x.dim() > 1 else x.reshape(1, -1)
        if x.shape[1] != self.n_visible:
            raise ConfigError(
                f"RBM input has {x.shape[1]} features per example but n_visible={self.n_visible}; "
                "reshape the data or build the RBM with n_visible equal to the data width"
            )
        return x.to(self.W.dtype)

    # ---- training objective --------------------------------------------------------------------------------
    def forward(self, batch, objective: str = "loss") -> torch.Tensor:
        """CD-k / PCD-k surrogate loss (scalar). batch = (x,) or (x, y) with x (B, V) in [0, 1]; y is ignored.

        d/dtheta [mean F(v_data) - mean F(v_model)] with v_model held fixed equals the CD estimate of the
        negative log-likelihood gradient (Hinton 2002, Eq. 5). Sampling uses torch's global RNG."""
        self.objective_parameters(objective)
        v_data = self._visible(batch[0])  # (B, V)
        with torch.no_grad():
            if self.persistent:
                v_model = self.chains.to(v_data.dtype)  # (n_chains, V)
            else:
                v_model = v_data
            for _ in range(self.k):
                v_model = self.gibbs_step(v_model)
            if self.persistent:
                self.chains.copy_(v_model)
            # Mean-field one-step reconstruction error: cheap progress signal that uses no randomness.
            recon = ((v_data - self.p_v_given_h(self.p_h_given_v(v_data))) ** 2).mean()
        loss = self.free_energy(v_data).mean() - self.free_energy(v_model).mean()
        self.stats = {"recon": recon}
        return loss

    # ---- sampling and scores -------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond=None,
        steps: int = 1000,
        generator: torch.Generator | None = None,
        init: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n binary visible vectors (n, V) after `steps` Gibbs sweeps from `init` (n, V) or uniform noise."""
        if cond is not None:
            raise ConfigError("the RBM is unconditional; call sample() without cond")
        if not isinstance(n, int) or n < 1 or not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"RBM.sample needs n >= 1 and steps >= 0 (ints), got n={n!r}, steps={steps!r}")
        if init is None:
            v = torch.bernoulli(
                torch.full((n, self.n_visible), 0.5, dtype=self.W.dtype, device=self.W.device), generator=generator
            )
        else:
            v = self._visible(init)
            if v.shape[0] != n:
                raise ConfigError(f"RBM.sample init has {v.shape[0]} rows but n={n}; pass init of shape (n, V)")
            v = v.clone()
        for _ in range(steps):
            v = self.gibbs_step(v, generator=generator)
        return v

    @torch.no_grad()
    def anomaly_score(self, v: torch.Tensor) -> torch.Tensor:
        """Free energy F(v) (B,): -log p(v) up to the constant log Z, so higher = less likely = more anomalous."""
        return self.free_energy(self._visible(v))

    # ---- partition function --------------------------------------------------------------------------------
    @torch.no_grad()
    def log_partition_exact(self) -> torch.Tensor:
        """Exact log Z (0-d float64) by enumerating the 2**min(V, H) states of the smaller layer.

        The other layer is summed in closed form (the softplus terms), so the cost is 2**min(V, H) rows."""
        W, b, c = self.W.double(), self.b.double(), self.c.double()
        if self.n_visible > self.n_hidden:  # enumerate h: log Z = logsumexp_h [h.c + sum_i softplus(b + W h)_i]
            W, b, c = W.T, c, b
        m = W.shape[0]
        if m > MAX_ENUMERATED_UNITS:
            raise ConfigError(
                f"exact log Z enumerates 2**{m} states (min(n_visible, n_hidden) = {m} > {MAX_ENUMERATED_UNITS}); "
                "use ais_log_partition() instead"
            )
        parts = []
        for start in range(0, 1 << m, _ENUM_CHUNK):
            x = _binary_states(m, start, min(start + _ENUM_CHUNK, 1 << m), W)  # (chunk, m)
            parts.append(torch.logsumexp(_log_marginal_unnorm(x, W, b, c), 0))
        return torch.logsumexp(torch.stack(parts), 0)

    @torch.no_grad()
    def log_likelihood_exact(self, v: torch.Tensor) -> torch.Tensor:
        """Exact log p(v) = -F(v) - log Z, float64 (B,). Feasible while min(V, H) <= 24."""
        v = self._visible(v).double()
        return _log_marginal_unnorm(v, self.W.double(), self.b.double(), self.c.double()) - self.log_partition_exact()

    @torch.no_grad()
    def ais_log_partition(
        self,
        n_chains: int = 1000,
        n_betas: int = 5000,
        *,
        schedule: str = "linear",
        base_bias: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[float, float]:
        """AIS estimate of log Z and its standard error (delta method), both floats.

        Intermediate distributions p_beta(v) ∝ exp((1-beta) v.b_A) * exp(-beta F(v)) (Salakhutdinov & Murray 2008,
        Eq. 14 with the base model's hidden layer dropped), from the base-rate model with visible biases b_A
        (`base_bias` (V,), e.g. `base_rate_bias(data)`; zeros = uniform) at beta=0 to the RBM at beta=1.
        `schedule`: "linear" (evenly spaced betas) or "geometric" (evenly spaced in log beta from 1e-4, denser
        near 0). Computed in float64 on the parameters' device; randomness from `generator`."""
        if not isinstance(n_chains, int) or n_chains < 2 or not isinstance(n_betas, int) or n_betas < 2:
            raise ConfigError(f"AIS needs n_chains >= 2 and n_betas >= 2 (ints), got {n_chains!r}, {n_betas!r}")
        W, b, c = self.W.double(), self.b.double(), self.c.double()
        if base_bias is None:
            b_a = torch.zeros_like(b)
        else:
            b_a = base_bias.to(device=b.device, dtype=b.dtype).reshape(-1)
            if b_a.shape[0] != self.n_visible:
                raise ConfigError(f"AIS base_bias has {b_a.shape[0]} entries; it needs n_visible={self.n_visible}")
        if schedule == "linear":
            betas = torch.linspace(0.0, 1.0, n_betas, dtype=torch.float64)
        elif schedule == "geometric":
            betas = torch.cat(
                [torch.zeros(1, dtype=torch.float64), torch.logspace(-4.0, 0.0, n_betas - 1, dtype=torch.float64)]
            )
        else:
            raise ConfigError(f"AIS schedule {schedule!r} is unknown; use 'linear' or 'geometric'")
        betas = betas.tolist()

        def log_p_star(v: torch.Tensor, beta: float) -> torch.Tensor:  # (N, V) -> (N,), unnormalised log p_beta
            return v @ ((1 - beta) * b_a + beta * b) + F.softplus(beta * (v @ W + c)).sum(-1)

        v = torch.bernoulli(torch.sigmoid(b_a).expand(n_chains, -1).contiguous(), generator=generator)  # v ~ p_0
        log_w = torch.zeros(n_chains, dtype=torch.float64, device=b.device)
        for i in range(1, n_betas):
            log_w += log_p_star(v, betas[i]) - log_p_star(v, betas[i - 1])
            if i < n_betas - 1:  # Gibbs transition leaving p_{beta_i} invariant
                # Tempered conditionals sigmoid(beta * pre + bias) with the bias terms folded in (N,). beta reaches
                # the fused op as float32: a ~1e-7 relative change of the transition's temperature, not of log_w.
                beta = betas[i]
                h = bernoulli_sigmoid(v @ W, beta * c, scale=beta, generator=generator, backend=self.backend)
                v_bias = (1 - beta) * b_a + beta * b  # (V,)
                v = bernoulli_sigmoid(h @ W.T, v_bias, scale=beta, generator=generator, backend=self.backend)
        # p*_0(v) = exp(v.b_A) * 2**H (each softplus(0) = log 2), so Z_0 = 2**H * prod_i (1 + exp(b_A,i)).
        log_z_base = F.softplus(b_a).sum() + self.n_hidden * math.log(2.0)
        log_mean_w = torch.logsumexp(log_w, 0) - math.log(n_chains)
        w = torch.exp(log_w - log_w.max())  # scaled weights for the relative standard error
        stderr = (w.std() / (w.mean() * math.sqrt(n_chains))).item()
        return (log_z_base + log_mean_w).item(), stderr
