"""The VAE family: an encoder and a decoder passed in, the (beta-)ELBO objective, the IWAE bound, and sampling.

Kingma & Welling 2014, "Auto-Encoding Variational Bayes". The encoder net maps x -> (B, feature_dim) features;
this family owns the Gaussian posterior head Linear(feature_dim + C, 2 * latent_dim) -> (mu, logvar), C being
the condition width (one-hot labels or a float vector; Sohn et al. 2015 conditional VAE). The decoder maps
zc = [z, c] (B, latent_dim + C) to the parameters of p(x | z, c): Bernoulli logits ("bernoulli", targets in
[0, 1]), Gaussian means ("gaussian", with a fixed sd, or a learned scalar sd as in Rybkin et al. 2021 when
gaussian_std is None), or, for "module", the decoder is itself a distribution with `log_prob(x, zc) -> (B,)`
and `sample(zc, generator=None) -> x` (e.g. a teacher-forced sequence decoder, where x is a token tensor).
The training loss is -(E_q log p(x|z) - beta KL(q(z|x) || N(0, I))) averaged over the batch (Higgins et al. 2017
for beta); `elbo` and `iwae_bound` (Burda et al. 2016) report per-example bounds on log p(x) in nats.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import ConfigError
from shared.generative.conditioning import condition_vector, condition_width, split_batch, with_condition
from shared.sampling.interpolation import interpolation_path

LIKELIHOODS = ("bernoulli", "gaussian", "module")
_LOG_2PI = math.log(2 * math.pi)


def _normal_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) summed over the last dim: (..., L) -> (...)."""
    return -0.5 * (_LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(dim=-1)


def _std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dim: (..., L) -> (...)."""
    return -0.5 * (_LOG_2PI + z**2).sum(dim=-1)


class VAE(nn.Module):
    """Variational autoencoder over an encoder feature net and a decoder net (or decoder distribution)."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        feature_dim: int,
        latent_dim: int,
        likelihood: str = "bernoulli",
        beta: float = 1.0,
        num_classes: int = 0,
        cond_dim: int = 0,
        gaussian_std: float | None = None,
    ):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"unknown VAE likelihood {likelihood!r}; choose one of {LIKELIHOODS}")
        if feature_dim < 1 or latent_dim < 1:
            raise ConfigError(f"feature_dim={feature_dim} and latent_dim={latent_dim} must be >= 1")
        if beta < 0:
            raise ConfigError(f"beta={beta} must be >= 0 (1 is the ELBO)")
        if likelihood == "module" and not (
            callable(getattr(decoder, "log_prob", None)) and callable(getattr(decoder, "sample", None))
        ):
            raise ConfigError(
                "likelihood='module' needs a decoder with log_prob(x, zc) and sample(zc, generator=None); "
                "use 'bernoulli' or 'gaussian' for a plain decoder net"
            )
        if gaussian_std is not None and gaussian_std <= 0:
            raise ConfigError(f"gaussian_std={gaussian_std} must be > 0, or None to learn it")
        self.cond_width = condition_width(num_classes, cond_dim)
        self.encoder, self.decoder = encoder, decoder
        self.feature_dim, self.latent_dim = int(feature_dim), int(latent_dim)
        self.likelihood, self.beta = likelihood, float(beta)
        self.num_classes, self.cond_dim = int(num_classes), int(cond_dim)
        self.head = nn.Linear(feature_dim + self.cond_width, 2 * latent_dim)  # -> (mu, logvar)
        self.gaussian_std = gaussian_std
        # Learned observation log-sd (a scalar), only for a Gaussian likelihood without a fixed sd.
        self.log_std = nn.Parameter(torch.zeros(())) if likelihood == "gaussian" and gaussian_std is None else None
        self.objectives: dict[str, int] = {"loss": 1}
        self.stats: dict[str, torch.Tensor] = {}

    def objective_parameters(self, name: str) -> list[nn.Parameter]:
        if name != "loss":
            raise ConfigError(f"the VAE has one objective, 'loss'; got {name!r}")
        return list(self.parameters())

    # -- pieces ------------------------------------------------------------------------------------------

    def _device(self) -> torch.device:
        return self.head.weight.device

    def _cond(self, cond, n: int, device: torch.device, check_range: bool = False) -> torch.Tensor | None:
        return condition_vector(
            cond, self.num_classes, self.cond_dim, n, device, self.head.weight.dtype, check_range=check_range
        )

    def _encode(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        h = with_condition(self.encoder(x), c)  # (B, feature_dim + C)
        mu, logvar = self.head(h).chunk(2, dim=1)  # (B, L) each
        return mu, logvar

    def encode(self, x: torch.Tensor, cond=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z | x, c) = N(mu, exp(logvar)): x (B, ...) -> mu, logvar (B, latent_dim)."""
        return self._encode(x, self._cond(cond, x.shape[0], x.device))

    def _obs_std(self, like: torch.Tensor) -> torch.Tensor:
        if self.log_std is not None:
            return self.log_std.exp()
        return torch.as_tensor(self.gaussian_std, dtype=like.dtype, device=like.device)

    def _log_px(self, x: torch.Tensor, zc: torch.Tensor) -> torch.Tensor:
        """log p(x | z, c) summed over all non-batch dims: (B,)."""
        if self.likelihood == "module":
            return self.decoder.log_prob(x, zc)
        params = self.decoder(zc)  # x-shaped
        if params.shape != x.shape:
            raise ConfigError(f"decoder output {tuple(params.shape)} does not match x {tuple(x.shape)}")
        if self.likelihood == "bernoulli":
            # Bernoulli with logits; x in [0, 1] (grey levels are used as soft targets).
            ll = -F.binary_cross_entropy_with_logits(params, x, reduction="none")
        else:
            std = self._obs_std(params)
            ll = -0.5 * (((x - params) / std) ** 2 + _LOG_2PI) - torch.log(std)
        return ll.flatten(1).sum(dim=1)

    def _mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params) if self.likelihood == "bernoulli" else params

    def decode(self, z: torch.Tensor, cond=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> the mean of p(x | z, c) (probabilities for Bernoulli, means for Gaussian); for
        a "module" decoder, a sample from it (with `generator`)."""
        zc = with_condition(z, self._cond(cond, z.shape[0], z.device))
        if self.likelihood == "module":
            return self.decoder.sample(zc, generator=generator)
        return self._mean(self.decoder(zc))

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, exp(logvar)) || N(0, I)) in closed form (Kingma & Welling 2014, appendix B): (B, L) -> (B,)."""
        return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=1)

    # -- objectives and bounds ---------------------------------------------------------------------------

    def forward(self, batch, objective: str = "loss") -> torch.Tensor:
        """batch (x,) or (x, y) -> scalar -(mean over the batch of log p(x|z) - beta KL), one z per example."""
        if objective != "loss":
            raise ConfigError(f"the VAE has one objective, 'loss'; got {objective!r}")
        x, y = split_batch(batch)
        c = self._cond(y, x.shape[0], x.device)
        mu, logvar = self._encode(x, c)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation; global RNG
        rec = self._log_px(x, with_condition(z, c))  # (B,)
        kl = self.kl(mu, logvar)  # (B,)
        self.stats = {"recon": -rec.detach().mean(), "kl": kl.detach().mean(), "elbo": (rec - kl).detach().mean()}
        return -(rec - self.beta * kl).mean()

    def elbo(self, x: torch.Tensor, cond=None) -> torch.Tensor:
        """Single-sample ELBO (B,) in nats: log p(x|z) + log p(z) - log q(z|x) with z ~ q(z|x) (global RNG)."""
        return self.iwae_bound(x, cond, k=1)

    def iwae_bound(self, x: torch.Tensor, cond=None, k: int = 100, chunk: int | None = None) -> torch.Tensor:
        """Importance-weighted bound (B,) in nats (Burda et al. 2016, eq. 8): log (1/k) sum_i p(x, z_i) / q(z_i|x),
        z_i ~ q(z|x) from the global RNG. Tightens towards log p(x) as k grows; k=1 is the ELBO. The k samples
        are processed `chunk` at a time (default: about 8192 decoder rows per chunk) to bound memory; wrap
        the call in torch.no_grad() for evaluation."""
        if k < 1:
            raise ConfigError(f"k={k} importance samples must be >= 1")
        b = x.shape[0]
        chunk = chunk or max(1, 8192 // max(b, 1))
        c = self._cond(cond, b, x.device)
        mu, logvar = self._encode(x, c)  # (B, L)
        std = torch.exp(0.5 * logvar)
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            z = mu + torch.randn(m, *mu.shape, device=mu.device, dtype=mu.dtype) * std  # (m, B, L)
            xs = x.unsqueeze(0).expand(m, *x.shape).reshape(m * b, *x.shape[1:])  # (m*B, ...)
            cs = None if c is None else c.unsqueeze(0).expand(m, *c.shape).reshape(m * b, -1)
            log_px = self._log_px(xs, with_condition(z.reshape(m * b, -1), cs)).view(m, b)
            log_w.append(log_px + _std_normal_log_prob(z) - _normal_log_prob(z, mu, logvar))  # (m, B)
        return torch.logsumexp(torch.cat(log_w, dim=0), dim=0) - math.log(k)

    # -- sampling and latent-space tools -----------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond=None,
        generator: torch.Generator | None = None,
        mean: bool = True,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """n samples x from z ~ N(0, temperature^2 I) (temperature 1 is the prior), all noise from `generator`.

        mean=True returns the decoder mean (probabilities / means); mean=False draws x ~ p(x | z). A "module"
        decoder always samples (with `generator`)."""
        if n < 1:
            raise ConfigError(f"n={n} must be >= 1 samples")
        if temperature < 0:
            raise ConfigError(f"temperature={temperature} must be >= 0")
        device = self._device()
        c = self._cond(cond, n, device, check_range=True)
        z = temperature * torch.randn(n, self.latent_dim, device=device, generator=generator)
        zc = with_condition(z.to(self.head.weight.dtype), c)
        if self.likelihood == "module":
            return self.decoder.sample(zc, generator=generator)
        params = self.decoder(zc)
        x = self._mean(params)
        if mean:
            return x
        if self.likelihood == "bernoulli":
            return torch.bernoulli(x, generator=generator)
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return x + self._obs_std(x) * noise

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, cond=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode the posterior mean: x (B, ...) -> decoder mean (B, ...) (a sample for a "module" decoder)."""
        mu, _ = self.encode(x, cond)
        return self.decode(mu, cond, generator=generator)

    @torch.no_grad()
    def interpolate(
        self,
        x_a: torch.Tensor,
        x_b: torch.Tensor,
        steps: int,
        cond=None,
        method: str = "slerp",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode a path between the posterior means of x_a and x_b (both (B, ...)): -> (steps, B, ...).

        method: "slerp" (spherical; suits a Gaussian prior, White 2016) or "lerp". `cond` applies at every step.
        """
        if x_a.shape != x_b.shape:
            raise ConfigError(f"x_a {tuple(x_a.shape)} and x_b {tuple(x_b.shape)} must have the same shape")
        b = x_a.shape[0]
        mu_a, _ = self.encode(x_a, cond)
        mu_b, _ = self.encode(x_b, cond)
        path = interpolation_path(mu_a, mu_b, steps, method)  # (steps, B, L)
        steps = path.shape[0]
        c = self._cond(cond, b, x_a.device)
        cs = None if c is None else c.unsqueeze(0).expand(steps, *c.shape).reshape(steps * b, -1)
        zc = with_condition(path.reshape(steps * b, -1), cs)
        out = (
            self.decoder.sample(zc, generator=generator)
            if self.likelihood == "module"
            else self._mean(self.decoder(zc))
        )
        return out.reshape(steps, b, *out.shape[1:])


class GaussianDecoder(nn.Module):
    """A decoder distribution for likelihood="module": p(x | zc) = N(mu(zc), diag sigma(zc)^2), both from one net.

    net maps zc (B, latent + C) -> (B, 2 D): means and log-sds of D = `dim` outputs. A per-example, per-output
    scale (heteroscedastic, as in Nix & Weigend 1994) lets the condition set the spread of x by maximum likelihood,
    which a single learned scale cannot; log-sds are soft-clamped to [min_log_std, max_log_std] for stability.
    """

    SHAPE_PARAMS = 0  # per-output shape parameters (a subclass's: dof, skew) the net can set per example
    shape_heads = 0  # per-output values the net gives beyond (mean, log-sd): SHAPE_PARAMS with conditional_shape

    @classmethod
    def net_outputs(cls, dim: int, conditional_shape: bool = False) -> int:
        """How many values (per example) the net of a decoder of `dim` outputs must give, before building it."""
        return (2 + (cls.SHAPE_PARAMS if conditional_shape else 0)) * int(dim)

    def __init__(self, net: nn.Module, dim: int, min_log_std: float = -7.0, max_log_std: float = 3.0):
        super().__init__()
        self.net, self.dim = net, int(dim)
        self.min_log_std, self.max_log_std = float(min_log_std), float(max_log_std)

    @property
    def outputs(self) -> int:
        """How many values (per example) the net must give: (2 + shape_heads) * D."""
        return (2 + self.shape_heads) * self.dim

    def _heads(self, zc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """zc (B, latent + C) -> mean (B, D), log-sd (B, D) and the shape_heads further (B, D) blocks."""
        out = self.net(zc)
        if out.shape[-1] != self.outputs:
            raise ConfigError(
                f"{type(self).__name__} net must output {2 + self.shape_heads} * dim = {self.outputs} values, "
                f"got {out.shape[-1]}"
            )
        mu, raw, *shape = out.chunk(2 + self.shape_heads, dim=-1)
        span = self.max_log_std - self.min_log_std
        return mu, self.min_log_std + span * torch.sigmoid(raw - 2.0), shape  # log-sd starts near the low middle

    def params(self, zc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """zc (B, latent + C) -> mean (B, D), log-sd (B, D)."""
        mu, log_std, _ = self._heads(zc)
        return mu, log_std

    def log_prob(self, x: torch.Tensor, zc: torch.Tensor) -> torch.Tensor:
        """log N(x; mu, sigma^2) summed over D: (B,)."""
        mu, log_std = self.params(zc)
        return (-0.5 * ((x - mu) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * _LOG_2PI).sum(dim=-1)

    def sample(self, zc: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mu, log_std = self.params(zc)
        noise = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        return mu + torch.exp(log_std) * noise


class StudentTDecoder(GaussianDecoder):
    """A heavy-tailed decoder distribution for likelihood="module": p(x | zc) = prod_d t_nu_d(x_d; mu_d(zc), s_d(zc)),
    Student-t with location mu, scale s (not the sd: var = s^2 nu / (nu - 2)) and a learned dof per output,
    nu_d = 2 + softplus(raw_d) > 2 (finite variance), initialised at `init_dof` (Lange et al. 1989, "Robust
    statistical modeling using the t distribution"). Location and scale come from one net as in GaussianDecoder.
    Where a Gaussian decoder must explain rare large x by a wider scale everywhere, the t puts them in its tails:
    the usual choice for daily asset returns.

    conditional_shape=True makes the tail a function of zc too: the net gives a third block of outputs h, and
    nu = 2 + softplus(raw_dof + h) per example (the learned raw_dof its baseline), an autoregressive conditional
    density in the sense of Hansen (1994, "Autoregressive conditional density estimation"). Daily returns need it:
    scaled by a GARCH filter, S&P 500 days after calm or rising markets have a narrower body but no thinner a
    tail (2.5% quantile / IQR-sd 2.8 to 3.1 in those states against 2.2 after falls), which a shape shared by all
    states can only match by narrowing the tail with the body."""

    SHAPE_PARAMS = 1  # the dof

    def __init__(self, net: nn.Module, dim: int, init_dof: float = 8.0, conditional_shape: bool = False, **kwargs):
        self.shape_heads = self.SHAPE_PARAMS if conditional_shape else 0
        super().__init__(net, dim, **kwargs)
        if not init_dof > 2.0:
            raise ConfigError(f"StudentTDecoder init_dof={init_dof} must be > 2 (finite variance)")
        raw = math.log(math.expm1(init_dof - 2.0))  # softplus^-1(nu - 2)
        self.raw_dof = nn.Parameter(torch.full((self.dim,), raw))

    @property
    def dof(self) -> torch.Tensor:
        """The baseline nu (D,) > 2 (every example's, unless conditional_shape)."""
        return 2.0 + F.softplus(self.raw_dof)

    def _dof(self, shape: list[torch.Tensor]) -> torch.Tensor:
        """nu per output (D,), or per example and output (B, D) from the conditional-shape block."""
        return 2.0 + F.softplus(self.raw_dof + shape[0]) if shape else self.dof

    def log_prob(self, x: torch.Tensor, zc: torch.Tensor) -> torch.Tensor:
        """log t_nu(x; mu, s) summed over D: (B,)."""
        mu, log_s, shape = self._heads(zc)
        return (self._log_standard_t((x - mu) * torch.exp(-log_s), self._dof(shape)) - log_s).sum(dim=-1)

    @staticmethod
    def _log_standard_t(u: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        """log t_nu(u) elementwise for u (B, D), nu (D,) or (B, D)."""
        norm = torch.lgamma((nu + 1) / 2) - torch.lgamma(nu / 2) - 0.5 * torch.log(nu * math.pi)
        return norm - (nu + 1) / 2 * torch.log1p(u**2 / nu)

    def sample(self, zc: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """mu + s z / sqrt(g / nu) with z ~ N(0, 1), g ~ chi2_nu = 2 Gamma(nu / 2, 1), all from `generator`."""
        mu, log_s, shape = self._heads(zc)
        return mu + torch.exp(log_s) * self._standard_t(mu, self._dof(shape), generator)

    @staticmethod
    def _standard_t(like: torch.Tensor, nu: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """t_nu draws shaped like `like` (B, D), nu (D,) or (B, D): z / sqrt(g / nu), z ~ N(0, 1), g ~ chi2_nu."""
        noise = torch.randn(like.shape, device=like.device, dtype=like.dtype, generator=generator)
        half_nu = (nu / 2).to(like.dtype).expand_as(like).contiguous()
        gamma = torch._standard_gamma(half_nu, generator=generator)  # the generator-aware Gamma draw torch has
        return noise * torch.rsqrt(gamma.clamp_min(1e-12) / half_nu)


class SkewTDecoder(StudentTDecoder):
    """A heavy-tailed, skewed decoder distribution for likelihood="module": per output the Fernandez & Steel (1998,
    "On Bayesian modeling of fat tails and skewness", JASA) two-piece Student-t,

        p(x) = 2 / (gamma + 1/gamma) / s * [ t_nu(y / gamma) if y >= 0 else t_nu(y * gamma) ],  y = (x - mu) / s,

    with location mu and scale s from the net (as in StudentTDecoder), a learned dof nu_d > 2 and a learned skew
    gamma_d = exp(raw_skew_d) per output (gamma < 1: the left tail is the longer, as for equity index returns;
    gamma = 1 is StudentTDecoder exactly, and where training starts). The density is continuous at y = 0; the mode
    is mu, the mean is not (mu + s (gamma - 1/gamma) E|t_nu|). Sampling: |t| scaled by gamma on the right, by
    1/gamma on the left, the left side taken with probability 1 / (1 + gamma^2). With conditional_shape=True both
    nu and gamma = exp(raw_skew + h_skew) are set per example by the net (see StudentTDecoder)."""

    SHAPE_PARAMS = 2  # the dof, then the skew

    def __init__(self, net: nn.Module, dim: int, init_dof: float = 8.0, **kwargs):
        super().__init__(net, dim, init_dof=init_dof, **kwargs)
        self.raw_skew = nn.Parameter(torch.zeros(self.dim))

    @property
    def skew(self) -> torch.Tensor:
        """The baseline gamma (D,) > 0; 1 = symmetric."""
        return torch.exp(self.raw_skew)

    def _log_skew(self, shape: list[torch.Tensor]) -> torch.Tensor:
        """log gamma (D,), or (B, D) from the conditional-shape block."""
        return self.raw_skew + shape[1] if shape else self.raw_skew

    def log_prob(self, x: torch.Tensor, zc: torch.Tensor) -> torch.Tensor:
        """log of the two-piece t density summed over D: (B,)."""
        mu, log_s, shape = self._heads(zc)
        log_g = self._log_skew(shape)
        y = (x - mu) * torch.exp(-log_s)
        u = y * torch.exp(torch.where(y >= 0, -log_g, log_g))  # y / gamma on the right, y * gamma on the left
        two_piece = math.log(2.0) - torch.logaddexp(log_g, -log_g)  # log 2 / (gamma + 1/gamma)
        return (two_piece + self._log_standard_t(u, self._dof(shape)) - log_s).sum(dim=-1)

    def sample(self, zc: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """mu + s * side * |t_nu| with side = gamma (right) or -1/gamma (left, probability 1 / (1 + gamma^2))."""
        mu, log_s, shape = self._heads(zc)
        t = self._standard_t(mu, self._dof(shape), generator).abs()
        g = self._log_skew(shape).exp().to(mu.dtype)
        left = torch.rand(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator) < 1.0 / (1.0 + g**2)
        return mu + torch.exp(log_s) * t * torch.where(left, -1.0 / g, g)
