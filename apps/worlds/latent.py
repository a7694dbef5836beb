"""The latent side of the pixel pipeline (World Models, Ha & Schmidhuber 2018): the MDN-RNN over VAE latents, its
loss, the batched latent dream as an SB3 VecEnv, and the real environment seen through the same latents.

`preprocess_frame`, `frames_to_tensor` and `encode_frames` take raw frames to VAE latents. `LatentRNN` is a GRU
over [z_t, a_t] whose hidden state h_{t+1} parameterises p(z_{t+1}) (a mixture of K Gaussians per latent dimension,
as in the paper's MDN-RNN), the reward r_t and the termination logit. `LatentDynamicsLoss` wraps it for
`shared.training.fit` (the family contract: `forward(batch) -> loss`); z is sampled from the VAE posterior on every
batch, as the paper does. The agent observes concat(z_t, h_t) in both worlds: `LatentDreamVecEnv` rolls N dreams
in one torch computation per step (same-step auto-reset, the SB3 contract of `../shared/notes/metrics.md`), and
`LatentObservation` wraps the real environment so that the SAME policy runs there (z from the VAE encoding of the
real frame, h from the GRU stepped with the action taken).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from apps.worlds.envs import BatchedVecEnv
from shared.errors import ConfigError, DataError

_LOG_2PI = math.log(2 * math.pi)


@dataclass
class LatentDreamConfig:
    """How the latent dream steps."""

    n_envs: int = 16
    """Dream environments stepped together as one batch."""
    horizon: int = 1000
    """A dream episode is truncated (TimeLimit.truncated) after this many steps."""
    temperature: float = 1.15
    """Temperature of the mixture (logits / tau, sds x sqrt(tau)); World Models found > 1 curbs exploitation of
    model errors. 0 = the mean of the most likely component."""
    done_threshold: float = 0.5
    """An episode terminates when the predicted termination probability exceeds this."""
    warm_start: bool = True
    """Start dream episodes from real frames with the GRU state warmed on the real sequence up to that frame
    (False: zero state)."""

    def __post_init__(self):
        if self.n_envs < 1 or self.horizon < 1:
            raise ConfigError(f"--dream.n-envs={self.n_envs} and --dream.horizon={self.horizon} must be >= 1")
        if self.temperature < 0 or not 0 < self.done_threshold < 1:
            raise ConfigError("--dream.temperature must be >= 0 and --dream.done-threshold in (0, 1)")


# ---------------------------------------------------------------------------------------------------- frames


def preprocess_frame(frame: np.ndarray, size: int, crop_bottom: int = 0) -> np.ndarray:
    """A raw RGB frame (H, W, 3) uint8 -> (size, size, 3) uint8: drop `crop_bottom` rows (CarRacing's dashboard,
    cropped in the paper's code too), then bilinear resize."""
    if frame.ndim != 3 or frame.shape[2] != 3 or crop_bottom >= frame.shape[0]:
        raise DataError(f"expected an RGB frame (H, W, 3) taller than crop {crop_bottom}, got {frame.shape}")
    img = Image.fromarray(np.ascontiguousarray(frame[: frame.shape[0] - crop_bottom]))
    return np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def frames_to_tensor(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 in [0, 1]."""
    x = torch.tensor(np.asarray(frames), device=device)  # a copy: frames may be a read-only memmap
    return x.permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def encode_frames(vae: nn.Module, frames: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """frames (F, S, S, 3) uint8 through a VAE's encoder -> posterior mean and log-variance, each (F, L) float32."""
    device = next(vae.parameters()).device
    out = [vae.encode(frames_to_tensor(frames[i : i + chunk], device)) for i in range(0, len(frames), chunk)]
    return torch.cat([o[0] for o in out]).cpu().numpy(), torch.cat([o[1] for o in out]).cpu().numpy()


# ---------------------------------------------------------------------------------------------------- the MDN-RNN


class Prediction(NamedTuple):
    logit_pi: torch.Tensor  # (..., L, K) mixture logits per latent dimension
    mu: torch.Tensor  # (..., L, K)
    log_std: torch.Tensor  # (..., L, K)
    reward: torch.Tensor  # (...)
    done_logit: torch.Tensor  # (...)


class LatentRNN(nn.Module):
    """GRU over [z_t, a_t] (hidden size H) with heads for p(z_{t+1} | h_{t+1}), r_t and the termination logit."""

    def __init__(self, latent_dim: int, action_dim: int, hidden: int = 256, mixtures: int = 5):
        super().__init__()
        if min(latent_dim, action_dim, hidden, mixtures) < 1:
            raise ConfigError(f"LatentRNN sizes must be positive, got {latent_dim, action_dim, hidden, mixtures}")
        self.latent_dim, self.action_dim, self.hidden, self.mixtures = latent_dim, action_dim, hidden, mixtures
        self.gru = nn.GRU(latent_dim + action_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 3 * latent_dim * mixtures + 2)

    def _heads(self, h: torch.Tensor) -> Prediction:
        out = self.head(h)  # (..., 3 L K + 2)
        mix = out[..., :-2].unflatten(-1, (3, self.latent_dim, self.mixtures))  # (..., 3, L, K)
        log_std = mix[..., 2, :, :].clamp(-6.0, 2.0)
        return Prediction(mix[..., 0, :, :], mix[..., 1, :, :], log_std, out[..., -2], out[..., -1])

    def forward(self, z: torch.Tensor, a: torch.Tensor, h0: torch.Tensor | None = None):
        """z (B, T, L), a (B, T, A), h0 (B, H) or None (zeros) -> (Prediction over (B, T, ...), h_seq (B, T, H)):
        h_seq[:, t] is the state after reading (z_t, a_t), which predicts z_{t+1}, r_t and termination."""
        h_seq, _ = self.gru(torch.cat([z, a], dim=-1), None if h0 is None else h0[None].contiguous())
        return self._heads(h_seq), h_seq

    def step(self, z: torch.Tensor, a: torch.Tensor, h: torch.Tensor) -> tuple[Prediction, torch.Tensor]:
        """One step: z (B, L), a (B, A), h (B, H) -> (Prediction over (B, ...), h_next (B, H))."""
        pred, h_seq = self(z[:, None], a[:, None], h)
        return Prediction(*(p[:, 0] for p in pred)), h_seq[:, 0]


def mixture_log_prob(pred: Prediction, z: torch.Tensor) -> torch.Tensor:
    """log p(z | pred) per latent dimension: z (..., L) -> (..., L)."""
    zk = z[..., None]  # (..., L, 1)
    log_n = -0.5 * (((zk - pred.mu) * torch.exp(-pred.log_std)) ** 2 + _LOG_2PI) - pred.log_std
    return torch.logsumexp(F.log_softmax(pred.logit_pi, dim=-1) + log_n, dim=-1)


def sample_latent(pred: Prediction, temperature: float = 1.0, generator: torch.Generator | None = None):
    """z (B, L) from the per-dimension mixtures (B, L, K) at `temperature` (World Models section A.3: logits / tau,
    sds x sqrt(tau)); all noise from `generator`. Temperature 0 returns the most likely component's mean."""
    if temperature == 0:
        return pred.mu.gather(-1, pred.logit_pi.argmax(-1, keepdim=True))[..., 0]
    b, l, k = pred.mu.shape
    probs = F.softmax(pred.logit_pi / temperature, dim=-1).reshape(b * l, k)
    idx = torch.multinomial(probs, 1, generator=generator).reshape(b, l, 1)
    mu, log_std = pred.mu.gather(-1, idx)[..., 0], pred.log_std.gather(-1, idx)[..., 0]
    noise = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + torch.exp(log_std) * math.sqrt(temperature) * noise


def mean_latent(pred: Prediction) -> torch.Tensor:
    """The mixture mean: (..., L, K) -> (..., L)."""
    return (F.softmax(pred.logit_pi, dim=-1) * pred.mu).sum(-1)


@torch.no_grad()
def open_loop(net: LatentRNN, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The mixture-mean dream from z0 (L,) and a zero state under actions (T, A) -> latents (T + 1, L)."""
    device = next(net.parameters()).device
    z, h = z0.reshape(1, -1).to(device), torch.zeros(1, net.hidden, device=device)
    out = [z]
    for a in actions.to(device):
        pred, h = net.step(z, a[None], h)
        z = mean_latent(pred)
        out.append(z)
    return torch.cat(out)


class LatentDynamicsLoss(nn.Module):
    """The MDN-RNN objective: -log p(z_{t+1}) (mean over latent dims) + reward MSE + termination BCE, averaged
    over the valid steps of a batch of windows. batch = (mu, logvar (B, T + 1, L) of the VAE posterior,
    actions (B, T, A), rewards (B, T), terminated (B, T), mask (B, T))."""

    def __init__(self, net: LatentRNN, reward_weight: float = 1.0):
        super().__init__()
        self.net, self.reward_weight = net, float(reward_weight)
        self.objectives: dict[str, int] = {"loss": 1}
        self.stats: dict[str, torch.Tensor] = {}

    def forward(self, batch, objective: str = "loss", sample: bool = True) -> torch.Tensor:
        mu, logvar, actions, rewards, terminated, mask = batch
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu  # global RNG
        pred, _ = self.net(z[:, :-1], actions)
        n = mask.sum().clamp_min(1.0)
        z_nll = -(mixture_log_prob(pred, z[:, 1:]).mean(-1) * mask).sum() / n
        r_mse = (((pred.reward - rewards) ** 2) * mask).sum() / n
        bce = F.binary_cross_entropy_with_logits(pred.done_logit, terminated, reduction="none")
        d_bce = (bce * mask).sum() / n
        self.stats = {"z_nll": z_nll.detach(), "reward_mse": r_mse.detach(), "done_bce": d_bce.detach()}
        return z_nll + self.reward_weight * r_mse + d_bce


class SequenceBatches:
    """Batch `step`: `batch_size` windows of `seq_len` transitions from uniformly drawn episodes at uniform
    offsets, from a step-seeded generator (a resumed fit draws the same batches). Frames are stored flat;
    episode e holds frames starts[e] .. starts[e] + lengths[e] (lengths[e] actions, one more frame)."""

    def __init__(
        self, mu, logvar, actions, rewards, terminated, starts, lengths, seq_len: int, batch_size: int, seed: int = 0
    ):
        self.mu, self.logvar = torch.as_tensor(mu), torch.as_tensor(logvar)
        self.actions, self.rewards = torch.as_tensor(actions), torch.as_tensor(rewards)
        self.terminated = torch.as_tensor(terminated, dtype=torch.float32)
        self.starts, self.lengths = torch.as_tensor(starts).long(), torch.as_tensor(lengths).long()
        if len(self.starts) == 0 or (self.lengths < 1).any():
            raise DataError("the latent dynamics need at least one episode with at least one action")
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed

    def batch(self, step: int) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        e = torch.randint(len(self.starts), (self.batch_size,), generator=g)
        length = self.lengths[e, None]  # (B, 1)
        off = (torch.rand(self.batch_size, 1, generator=g) * ((length - self.seq_len).clamp_min(0) + 1)).long()
        k = off + torch.arange(self.seq_len + 1)  # (B, T + 1) positions in the episode
        j = self.starts[e, None] + k.minimum(length)  # frame ids; past the end repeat the last frame (masked)
        mask = (k[:, :-1] < length).float()  # (B, T)
        ja = j[:, :-1]
        return (
            self.mu[j],
            self.logvar[j],
            self.actions[ja] * mask[..., None],
            self.rewards[ja] * mask,
            self.terminated[ja] * mask,
            mask,
        )


@torch.no_grad()
def warm_hidden(net: LatentRNN, z: torch.Tensor, actions: torch.Tensor, starts, lengths, chunk: int = 64):
    """The GRU state at every frame of every episode, warmed on the real sequence: z (F, L), actions (F, A) flat
    as in `SequenceBatches` -> h (F, H), h at an episode's first frame = 0 and h[t + 1] = GRU(h[t], z_t, a_t)."""
    device = next(net.parameters()).device
    out = torch.zeros(len(z), net.hidden, device=device)
    starts, lengths = np.asarray(starts), np.asarray(lengths)
    for c in range(0, len(starts), chunk):
        s, n = starts[c : c + chunk], lengths[c : c + chunk]
        t_max = int(n.max())
        idx = torch.as_tensor(s[:, None] + np.minimum(np.arange(t_max), n[:, None]), device=z.device)  # (E, T)
        _, h_seq = net(z[idx].to(device), actions[idx].to(device))  # (E, T, H)
        for i in range(len(s)):
            out[s[i] + 1 : s[i] + n[i] + 1] = h_seq[i, : n[i]]
    return out


# ---------------------------------------------------------------------------------------------------- the dream


def latent_space(net: LatentRNN) -> gym.spaces.Box:
    """The agent's observation concat(z, h): z unbounded, h in [-1, 1] (a GRU state): (L + H,) float32."""
    low = np.r_[np.full(net.latent_dim, -np.inf), -np.ones(net.hidden)].astype(np.float32)
    return gym.spaces.Box(low, -low, dtype=np.float32)


class LatentDreamVecEnv(BatchedVecEnv):
    """N latent dreams as one SB3 VecEnv: observation concat(z, h) (L + H,) float32, the real action space.

    Episodes start from real frames: start_z (M, L) encoded real frames and start_h (M, H) the GRU states there
    (warmed on the real sequence, or zeros). One `LatentRNN.step` for all N environments per step, on the net's
    device; same-step auto-reset with `terminal_observation` and `TimeLimit.truncated` in the infos."""

    def __init__(
        self, net: LatentRNN, start_z, start_h, action_space: gym.spaces.Box, cfg: LatentDreamConfig, seed: int = 0
    ):
        self.net = net.eval()
        self.device = next(net.parameters()).device
        self.start_z = torch.as_tensor(np.asarray(start_z), dtype=torch.float32, device=self.device)
        self.start_h = torch.as_tensor(np.asarray(start_h), dtype=torch.float32, device=self.device)
        if self.start_z.ndim != 2 or self.start_z.shape[1] != net.latent_dim or len(self.start_z) == 0:
            raise DataError(f"start_z must be a non-empty (M, {net.latent_dim}) array, got {tuple(self.start_z.shape)}")
        if self.start_h.shape != (len(self.start_z), net.hidden):
            raise DataError(f"start_h must be ({len(self.start_z)}, {net.hidden}), got {tuple(self.start_h.shape)}")
        if not isinstance(action_space, gym.spaces.Box) or action_space.shape != (net.action_dim,):
            raise ConfigError(f"the dream needs a Box({net.action_dim},) action space, got {action_space}")
        self.cfg = cfg
        self.low = torch.as_tensor(action_space.low, device=self.device)
        self.high = torch.as_tensor(action_space.high, device=self.device)
        super().__init__(cfg.n_envs, latent_space(net), action_space)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._z, self._h = self._draw(self.num_envs)
        self._t = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._actions: torch.Tensor | None = None

    def _draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.start_z), (n,), generator=self.generator, device=self.device)
        return self.start_z[idx], self.start_h[idx]

    def _obs(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, h], dim=1)  # (N, L + H)

    def reset(self) -> np.ndarray:
        self.seed_generator(self.generator)
        self._z, self._h = self._draw(self.num_envs)
        self._t.zero_()
        return self._obs(self._z, self._h).cpu().numpy()

    def step_async(self, actions: np.ndarray) -> None:
        a = torch.as_tensor(np.asarray(actions), dtype=torch.float32, device=self.device)
        self._actions = a.reshape(self.num_envs, -1)

    @torch.no_grad()
    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        a = torch.maximum(torch.minimum(self._actions, self.high), self.low)
        self._actions = None
        pred, h = self.net.step(self._z, a, self._h)
        z = sample_latent(pred, self.cfg.temperature, self.generator)
        terminated = torch.sigmoid(pred.done_logit) > self.cfg.done_threshold
        truncated = (self._t + 1 >= self.cfg.horizon) & ~terminated
        done = terminated | truncated
        last = self._obs(z, h)  # (N, L + H), the observation that ends the episode where done
        self._t = torch.where(done, 0, self._t + 1)
        n_done = int(done.sum())
        if n_done:  # same-step auto-reset
            z, h = z.clone(), h.clone()
            z[done], h[done] = self._draw(n_done)
        self._z, self._h = z, h
        done_np = done.cpu().numpy()
        infos = self.done_infos(done_np, truncated, last)
        obs = self._obs(z, h).cpu().numpy()
        return obs, pred.reward.float().cpu().numpy(), done_np, infos


# ---------------------------------------------------------------------------------------------------- the real env


class LatentObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The real pixel environment as the dream's agent sees it: observation concat(z_t, h_t) (L + H,) float32,
    z_t = the VAE posterior mean of the preprocessed frame, h_0 = 0 and h_{t+1} = GRU(h_t, z_t, a_t)."""

    def __init__(self, env: gym.Env, vae: nn.Module, net: LatentRNN, frame_size: int, crop_bottom: int = 0):
        gym.utils.RecordConstructorArgs.__init__(self, vae=vae, net=net, frame_size=frame_size, crop_bottom=crop_bottom)
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.action_space, gym.spaces.Box) or env.action_space.shape != (net.action_dim,):
            raise ConfigError(f"the latent controller needs Box({net.action_dim},) actions, got {env.action_space}")
        self.vae, self.net = vae.eval(), net.eval()
        self.frame_size, self.crop_bottom = frame_size, crop_bottom
        self.device = next(net.parameters()).device
        self.observation_space = latent_space(net)
        self._z = self._h = None

    @torch.no_grad()
    def _encode(self, frame: np.ndarray) -> torch.Tensor:
        x = frames_to_tensor(preprocess_frame(frame, self.frame_size, self.crop_bottom)[None], self.device)
        return self.vae.encode(x)[0]  # posterior mean (1, L)

    def _obs(self) -> np.ndarray:
        return torch.cat([self._z, self._h], dim=1)[0].cpu().numpy().astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        frame, info = self.env.reset(seed=seed, options=options)
        self._z = self._encode(frame)
        self._h = torch.zeros(1, self.net.hidden, device=self.device)
        return self._obs(), info

    @torch.no_grad()
    def step(self, action):
        space = self.env.action_space
        a = np.clip(np.asarray(action, dtype=np.float32).reshape(space.shape), space.low, space.high)
        _, self._h = self.net.step(self._z, torch.as_tensor(a, device=self.device)[None], self._h)
        frame, reward, terminated, truncated, info = self.env.step(a)
        self._z = self._encode(frame)
        return self._obs(), reward, terminated, truncated, info
