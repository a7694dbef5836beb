"""Deep scenario generators: a shared-core family (VAE or GAN) over the next day's normalised returns of all assets,
conditioned on the market state, rolled forward day by day into contiguous paths of any length.

    p(x_t | c_{t-1}),  x_t = r_t / sqrt(v_fast_{t-1}) in R^A,  c_{t-1} = features(state_{t-1})   (apps.markets.state)

- "cvae": conditional VAE (Sohn et al. 2015) with a heteroscedastic Gaussian decoder (per-output scales); the latent
  carries the joint heavy-tailed, correlated shape of the day across assets, the condition its dependence on
  the state (volatility mean reversion, leverage, correlation rising with market volatility).
- "cgan": conditional GAN, generator MLP(z, c) -> x, projection discriminator (Miyato & Koyama 2018) with
  the WGAN-GP loss (Gulrajani et al. 2017) by default.
Rolling out: r_t = x_t sqrt(v_fast_{t-1}), then the state recursion; x is clipped to +-x_clip (6) conditional
sds and the variance state to twice the largest seen in training, so rare wild draws cannot make a path
explosive. After training, a per-asset scale matches the (winsorised) mean square of draws at training states to
the data's. Stress scenarios start the recursion from the state on a chosen date instead of the end of training.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from apps.markets.config import DEEP as FAMILIES
from apps.markets.config import DeepConfig
from apps.markets.state import (
    FLOOR_FRACTION,
    N_PER_ASSET,
    RECURSION,
    WARMUP,
    FeatureScaler,
    State,
    filter_states,
    long_run_variance,
    raw_features,
)
from shared.errors import ConfigError, DataError
from shared.generative.gan import GAN
from shared.generative.vae import VAE, GaussianDecoder, SkewTDecoder, StudentTDecoder
from shared.nets.mlp import MLP
from shared.runtime import seed_everything
from shared.training import StepBatches, TrainConfig, fit


def build_family(family: str, assets: int, cfg: DeepConfig) -> torch.nn.Module:
    """The shared-core model for `assets` outputs conditioned on the (4 A + 4)-wide state features."""
    cond = N_PER_ASSET * (assets + 1)
    h = tuple(cfg.hidden)
    if family == "cvae":
        decoder = {"gaussian": GaussianDecoder, "student-t": StudentTDecoder, "skew-t": SkewTDecoder}[cfg.decoder]
        shape = {"conditional_shape": True} if cfg.tail_shape == "conditional" else {}
        outputs = decoder.net_outputs(assets, **shape)  # (mean, log-scale[, dof[, skew]]) per asset
        return VAE(
            MLP(assets, h[-1], h[:-1], act="silu"),
            decoder(MLP(cfg.latent_dim + cond, outputs, h, act="silu"), assets, **shape),
            feature_dim=h[-1],
            latent_dim=cfg.latent_dim,
            likelihood="module",
            beta=cfg.vae_beta,
            cond_dim=cond,
        )
    if family == "cgan":
        return GAN(
            MLP(cfg.latent_dim + cond, assets, h, act="silu"),
            MLP(assets, h[-1], h[:-1], act="silu"),
            latent_dim=cfg.latent_dim,
            feature_dim=h[-1],
            loss=cfg.gan_loss,
            r1_weight=cfg.gan_r1,
            drift=1e-3 if cfg.gan_loss == "wgan-gp" else 0.0,
            cond_dim=cond,
        )
    raise ConfigError(f"unknown deep family {family!r}; choose from {', '.join(FAMILIES)}")


class DeepGenerator:
    """A fitted state-conditional generator with the ScenarioModel interface (fit, simulate, one_day)."""

    def __init__(self, family: str, cfg: DeepConfig | None = None, train: TrainConfig | None = None, run_dir=None):
        if family not in FAMILIES:
            raise ConfigError(f"unknown deep family {family!r}; choose from {', '.join(FAMILIES)}")
        self.name, self.cfg = family, cfg or DeepConfig()
        self.train_cfg = train or TrainConfig(steps=3000, batch_size=256, lr=1e-3, progress=False)
        self.run_dir = run_dir
        self.model: torch.nn.Module | None = None

    # -- fitting ------------------------------------------------------------------------------------------

    def fit(self, returns: np.ndarray) -> DeepGenerator:
        """Train on (T, A) daily log returns."""
        r = np.asarray(returns, dtype=np.float64)
        if r.ndim != 2 or not np.isfinite(r).all():
            raise DataError(f"returns must be a finite (T, A) array, got shape {r.shape}")
        self.long_run = long_run_variance(r)
        f = filter_states(r, self.long_run)
        # Generated paths stay within the variances seen in training (with room to spare): a state the network has
        # never seen could otherwise feed itself into an explosive path.
        self.cap = f.v_max * self.cfg.cap_factor
        raw, x, self.origin = f.raw, f.x, f.last.with_cap(self.cap)
        self.assets = r.shape[1]
        self.scaler = FeatureScaler.fit(raw)
        self.x_max = torch.full((self.assets,), self.cfg.x_clip, dtype=torch.float64)
        self.x_mean = x.mean(0)  # (A,) the centre of 1-day forecasts under forecast_mean="constant"
        self.calibration = torch.ones(self.assets, dtype=torch.float64)
        cond = self.scaler(raw).float()
        data = StepBatches((x.float(), cond), self.train_cfg.batch_size, seed=self.train_cfg.seed)
        seed_everything(self.train_cfg.seed)  # the initial weights come from the global stream
        model = build_family(self.name, self.assets, self.cfg)
        result = fit(model, data, self.train_config, run_dir=self.run_dir, desc=f"train {self.name}")
        self.model = result.sampling_model.cpu().eval()
        self.calibration = self._calibrate(cond, x)
        return self

    @property
    def train_config(self) -> TrainConfig:
        """The schedule `fit` trains with: the given one, or for the cgan the usual GAN optimiser settings
        (Gulrajani et al. 2017: a fraction of the lr, Adam betas (0.5, 0.9)) over gan_steps_ratio times the steps."""
        train = self.train_cfg
        if self.name != "cgan":
            return train
        lr, steps = train.lr * self.cfg.gan_lr_ratio, train.steps * self.cfg.gan_steps_ratio
        return dataclasses.replace(train, lr=lr, betas=(0.5, 0.9), steps=steps)

    @torch.no_grad()
    def _calibrate(self, cond: torch.Tensor, x: torch.Tensor, days: int = 2000, draws: int = 32) -> torch.Tensor:
        """Per-asset scale (A,) that matches the mean square of draws at training states to that of the data.

        A rolled-out path feeds its own returns back into the variance state, whose level is set by E x^2: a
        sampler 10% too wide or too narrow compounds that into a wrong volatility level (and far too wide, into an
        explosive path). Both sides are winsorised at the data's 99.9% |x| quantile so that a handful of extreme
        days do not set the scale. Uses `days` random training days, `draws` samples each.
        """
        g = torch.Generator().manual_seed(self.train_cfg.seed + 1)
        idx = torch.randperm(len(cond), generator=g)[:days]
        gen = self._draw(cond[idx].repeat_interleave(draws, dim=0), g)  # (days * draws, A)
        cap = torch.quantile(x.abs(), 0.999, dim=0)  # (A,)
        ms_real = torch.minimum(x.abs(), cap).pow(2).mean(0)
        ms_gen = torch.minimum(gen.abs(), cap).pow(2).mean(0)
        return (ms_real / ms_gen).sqrt()

    # -- sampling ------------------------------------------------------------------------------------------

    def _check_fitted(self):
        if self.model is None:
            raise ConfigError(f"the {self.name} generator is not fitted; call fit() or load a checkpoint first")

    def _draw(self, cond: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """x (B, A) given standardised features (B, C)."""
        if self.name == "cvae":
            x = self.model.sample(len(cond), cond=cond, generator=g, mean=False)
        else:
            x = self.model.sample(len(cond), cond=cond, generator=g)
        x = x.double() * self.calibration
        return torch.maximum(torch.minimum(x, self.x_max), -self.x_max)

    def origin_state(self, history: np.ndarray | None) -> State:
        if history is None:
            return self.origin
        h = np.asarray(history, dtype=np.float64)
        if h.ndim != 2 or h.shape[1] != self.assets or not np.isfinite(h).all():
            raise DataError(f"history must be a finite (T, {self.assets}) array of returns, got shape {h.shape}")
        return filter_states(h, self.long_run).last.with_cap(self.cap)

    @torch.no_grad()
    def simulate(self, n_paths: int, horizon: int, seed: int = 0, history: np.ndarray | None = None) -> np.ndarray:
        """(n_paths, horizon, A) log returns of the days after the origin (end of `history` or of the fit data)."""
        self._check_fitted()
        if n_paths < 1 or horizon < 1:
            raise ConfigError(f"n_paths={n_paths} and horizon={horizon} must be >= 1")
        g = torch.Generator().manual_seed(int(seed))
        s = self.origin_state(history).expand(n_paths)
        out = torch.empty(n_paths, horizon, self.assets, dtype=torch.float64)
        for t in range(horizon):
            x = self._draw(self.scaler(raw_features(s)).float(), g)
            r = x * s.scale()
            out[:, t] = r
            s = s.step(r, x)
        return out.numpy()

    @torch.no_grad()
    def one_day(self, returns: np.ndarray, start: int, n_samples: int = 2000, seed: int = 0) -> np.ndarray:
        """Next-day return samples (T - start, n_samples, A) for every day t >= start of the real series `returns`
        (T, A), each drawn given the real state after day t - 1: the 1-day forecast a rolling backtest needs. Under
        forecast_mean="constant" each day's draws of x are re-centred on the training mean (their spread, tails and
        cross-asset shape are the network's)."""
        self._check_fitted()
        if start < WARMUP + 1:
            raise DataError(f"start={start} leaves too little history; the state needs {WARMUP + 1} days")
        f = filter_states(returns, self.long_run)
        raw, scale = f.raw[start - WARMUP :], f.scale[start - WARMUP :]  # before each day t >= start, (T - start, .)
        g = torch.Generator().manual_seed(int(seed))
        out = np.empty((len(raw), n_samples, self.assets))
        chunk = max(1, 200_000 // n_samples)
        for i in range(0, len(raw), chunk):
            c = self.scaler(raw[i : i + chunk]).float()  # (b, C)
            b = len(c)
            x = self._draw(c.repeat_interleave(n_samples, dim=0), g).view(b, n_samples, self.assets)
            if self.cfg.forecast_mean == "constant":
                x = x - x.mean(dim=1, keepdim=True) + self.x_mean
            out[i : i + b] = (x * scale[i : i + b, None, :]).numpy()
        return out

    # -- persistence ---------------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write the fitted generator (weights and state statistics) as one safetensors file, atomically."""
        from safetensors.torch import save_file

        from shared.atomic import atomic_path

        self._check_fitted()
        o = self.origin
        tensors = {f"model.{k}": v.contiguous() for k, v in self.model.state_dict().items()}
        tensors.update(
            {
                "long_run": self.long_run,
                "cap": self.cap,
                "x_max": self.x_max,
                "x_mean": self.x_mean,
                "calibration": self.calibration,
                "scaler_mean": self.scaler.mean,
                "scaler_std": self.scaler.std,
                "origin_v_fast": o.v_fast,
                "origin_v_slow": o.v_slow,
                "origin_v_down": o.v_down,
                "origin_x_last": o.x_last,
            }
        )
        with atomic_path(path) as tmp:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                str(tmp),
                metadata={"family": self.name, "assets": str(self.assets), "recursion": RECURSION},
            )

    @classmethod
    def load(cls, path, family: str, cfg: DeepConfig, assets: int) -> DeepGenerator:
        """A generator saved by `save`; the file must match `family`, `cfg` and the number of assets."""
        from safetensors import safe_open

        from shared.errors import CheckpointError

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                t = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # a truncated or foreign file
            raise CheckpointError(
                f"{path}: not a readable generator file ({type(e).__name__}); delete it to retrain"
            ) from None
        if meta.get("family") != family or meta.get("assets") != str(assets):
            raise CheckpointError(
                f"{path} holds a {meta.get('family')} generator for {meta.get('assets')} assets, not {family} for "
                f"{assets}; use another --run-name or delete the file to retrain"
            )
        if meta.get("recursion") != RECURSION:
            raise CheckpointError(
                f"{path} was trained on another state recursion ({meta.get('recursion', 'before it was recorded')}; "
                f"now {RECURSION}); retrain with a new --run-name, or delete the run's generators/ and train-* folders"
            )
        g = cls(family, cfg)
        g.assets = assets
        g.model = build_family(family, assets, cfg)
        try:
            g.model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
        except RuntimeError as e:
            raise CheckpointError(f"{path}: weights do not fit --deep settings ({str(e).splitlines()[0]})") from None
        g.model.eval()
        g.long_run, g.cap, g.x_max, g.calibration = t["long_run"], t["cap"], t["x_max"], t["calibration"]
        g.x_mean = t["x_mean"]
        g.scaler = FeatureScaler(t["scaler_mean"], t["scaler_std"])
        floor = FLOOR_FRACTION * g.long_run
        g.origin = State(
            t["origin_v_fast"], t["origin_v_slow"], t["origin_v_down"], t["origin_x_last"], floor, g.long_run, g.cap
        )
        return g


class DeepEnsemble:
    """Generators of one family fitted from different seeds, their 1-day forecasts pooled into one equal-weight
    mixture: a deep ensemble (Lakshminarayanan et al. 2017, "Simple and scalable predictive uncertainty estimation
    using deep ensembles"). One cvae's 1-day VaR can move with its training seed (S&P 500 backtest, skew-t decoder,
    beta 1, 2026-11-25: 113, 113 and 129 hits at seeds 0, 1, 2, one refit block of seed 2 alone 14 hits in 2004;
    the ensemble of 5: 120); pooling the members' draws averages that noise out of the forecast. One member is
    exactly the single generator."""

    def __init__(self, members: list[DeepGenerator]):
        if not members:
            raise ConfigError("a DeepEnsemble needs at least one fitted generator")
        self.members = list(members)

    @classmethod
    def fit(cls, family: str, cfg: DeepConfig, train: TrainConfig, returns: np.ndarray, size: int, run_dirs=None):
        """`size` generators trained on the same returns (T, A) with train seeds seed, seed + 1, ...; member i
        checkpoints to run_dirs[i] when `run_dirs` is given."""
        if size < 1:
            raise ConfigError(f"--ensemble must be >= 1 generators, got {size}")
        dirs = list(run_dirs) if run_dirs is not None else [None] * size
        if len(dirs) != size:
            raise ConfigError(f"{len(dirs)} run folders for an ensemble of {size}")
        seeds = [dataclasses.replace(train, seed=train.seed + i) for i in range(size)]
        return cls([DeepGenerator(family, cfg, t, run_dir=d).fit(returns) for t, d in zip(seeds, dirs)])

    def one_day(self, returns: np.ndarray, start: int, n_samples: int = 2000, seed: int = 0) -> np.ndarray:
        """(T - start, n_samples, A) as DeepGenerator.one_day, n_samples split evenly over the members (member i
        draws with seed `seed * size + i`, so one member reproduces the single generator's draws)."""
        k = len(self.members)
        if n_samples < k:
            raise ConfigError(f"n_samples={n_samples} must be at least the ensemble size {k}")
        sizes = [n_samples // k + (i < n_samples % k) for i in range(k)]
        parts = [m.one_day(returns, start, n, seed=seed * k + i) for i, (m, n) in enumerate(zip(self.members, sizes))]
        return np.concatenate(parts, axis=1)
