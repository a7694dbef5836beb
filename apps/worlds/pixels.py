"""The pixel pipeline (World Models, Ha & Schmidhuber 2018) for CarRacing-v3: random rollouts -> a convolutional
VAE (V) -> an MDN-RNN over its latents (M) -> an SB3 agent (C) trained only in the latent dream -> evaluation of
that same policy in the real environment.

One `PixelConfig` drives a run; `preset(name)` gives "tiny" (CPU smoke test), "default" and "full" (the GPU
configuration). `run_pixels(cfg, folder, seed)` runs every stage and is resumable at stage granularity: each stage
writes its outputs, then `<stage>.json` as its completion mark, and a rerun skips stages whose mark exists.

    folder/config.json                 the PixelConfig of the run (a rerun with another config is refused)
          frames.npy, rollouts.npz     preprocessed frames (F, S, S, 3) uint8; actions, rewards, episode layout
          vae.safetensors              the VAE (vae-fit/: its checkpoints and train.jsonl)
          latents.npz                  posterior mean and log-variance of every frame
          dynamics.safetensors         the LatentRNN (dynamics-fit/: checkpoints and train.jsonl)
          agent.zip, agent.safetensors the dream-trained SB3 agent
          dream_strip.png              top: real frames of an episode; bottom: the dream from the same start
          pixels.json                  real steps, model losses, real returns, timings
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from stable_baselines3.common.vec_env import VecMonitor
from torch import nn

from apps.worlds.agents import evaluate, load_policy, make_agent, resolve_algo, save_agent
from apps.worlds.config import AgentConfig
from apps.worlds.latent import (
    LatentDreamConfig,
    LatentDreamVecEnv,
    LatentDynamicsLoss,
    LatentObservation,
    LatentRNN,
    SequenceBatches,
    encode_frames,
    frames_to_tensor,
    open_loop,
    preprocess_frame,
    warm_hidden,
)
from apps.worlds.spaces import make_env
from shared.atomic import atomic_path, atomic_write_bytes, atomic_write_json
from shared.config import replace, to_dict
from shared.errors import ConfigError, DataError
from shared.generative.vae import VAE
from shared.nets.conv import ConvDecoder, ConvEncoder
from shared.report.figures import image_grid_array, png_bytes
from shared.runtime import resolve_device
from shared.training import TrainConfig, fit

EVAL_SEED = 1_000_000_000  # real evaluation episodes use seeds EVAL_SEED + i (collection: seed * 1_000_003 + e)
MAX_STARTS = 10_000  # real frames the dream episodes start from (a fixed random subset)
STRIP_COLUMNS, STRIP_STEPS = 8, 64


def _train(steps: int, batch: int, lr: float, **kw) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=batch,
        lr=lr,
        checkpoint_every=max(steps // 4, 1),
        keep_last=1,
        log_every=max(steps // 20, 1),
        **kw,
    )


@dataclass
class PixelConfig:
    """One World Models run on a pixel environment: rollouts, V, M, the dream, the agent, the evaluation."""

    env: str = "CarRacing-v3"
    """Gymnasium id of an environment with RGB image observations and bounded Box actions."""
    frame_size: int = 64
    """Frames are resized to frame_size x frame_size RGB (64 in the paper)."""
    crop_bottom: int = 12
    """Rows cut from the bottom of each frame before resizing (CarRacing's dashboard; 96 -> 84 in the paper)."""
    frames: int = 100_000
    """Real steps collected with the random policy (the real-step budget N of the protocol)."""
    episode_steps: int = 1000
    """Longest collected rollout in steps."""
    hold_steps: int = 8
    """The random policy holds each random action for 1..hold_steps steps (gas biased up, brake rare on
    CarRacing) so that the car moves."""
    latent_dim: int = 32
    """VAE latent size (z)."""
    vae_channels: tuple[int, ...] = (32, 64, 128, 256)
    """Conv widths of the VAE encoder (one stride-2 layer each; the decoder mirrors them)."""
    vae_features: int = 1024
    """Encoder feature width before the posterior head."""
    vae_std: float = 0.1
    """Fixed sd of the Gaussian pixel likelihood (0 = learned). The paper's summed squared error is sd 0.7071 with
    a KL tolerance of 0.5 nat per dimension; without that tolerance its posterior collapses on CarRacing's
    low-variance frames, which 0.1 avoids."""
    vae_beta: float = 1.0
    """Weight of the KL term."""
    vae_train: TrainConfig = field(default_factory=lambda: _train(10_000, 64, 3e-4, lr_schedule="cosine"))
    """Fitting schedule of the VAE."""
    hidden: int = 256
    """GRU hidden size (h)."""
    mixtures: int = 5
    """Gaussian mixture components per latent dimension of p(z_{t+1})."""
    seq_len: int = 128
    """Length of the training windows of the latent dynamics."""
    dynamics_train: TrainConfig = field(default_factory=lambda: _train(5_000, 32, 1e-3, lr_schedule="cosine"))
    """Fitting schedule of the latent dynamics."""
    dream: LatentDreamConfig = field(default_factory=LatentDreamConfig)
    """The latent dream the agent trains in."""
    agent: AgentConfig = field(
        default_factory=lambda: AgentConfig(algo="ppo", dream_steps=1_000_000, learning_rate=3e-4, gamma=0.99)
    )
    """The SB3 agent trained in the dream (PPO or SAC)."""
    eval_episodes: int = 20
    """Real-environment episodes of the final evaluation (deterministic policy)."""
    eval_max_steps: int = 0
    """Cut evaluation episodes after this many steps (0 = the environment's own limit, 1000 on CarRacing)."""
    device: str = "auto"
    """Device of V and M ('auto', 'cpu', 'cuda'); the SB3 agent runs on the CPU."""
    preset: str = "default"
    """Recorded preset name."""

    def __post_init__(self):
        if self.frames < 1 or self.episode_steps < 1 or self.hold_steps < 1 or self.eval_episodes < 1:
            raise ConfigError("--frames, --episode-steps, --hold-steps and --eval-episodes must be >= 1")
        if min(self.frame_size, self.latent_dim, self.vae_features, self.hidden, self.mixtures, self.seq_len) < 1:
            raise ConfigError(
                "--frame-size, --latent-dim, --vae-features, --hidden, --mixtures, --seq-len must be >= 1"
            )
        if self.vae_std < 0 or self.vae_beta < 0 or self.eval_max_steps < 0 or self.crop_bottom < 0:
            raise ConfigError("--vae-std, --vae-beta, --eval-max-steps and --crop-bottom must be >= 0")
        if self.agent.algo not in ("ppo", "sac"):
            raise ConfigError(f"--agent.algo must be ppo or sac for the Box actions of {self.env}")


def _tiny() -> PixelConfig:
    return PixelConfig(
        preset="tiny",
        frames=240,
        episode_steps=80,
        latent_dim=8,
        vae_channels=(8, 16, 16, 16),
        vae_features=32,
        vae_train=_train(20, 16, 1e-3, progress=False),
        hidden=32,
        mixtures=2,
        seq_len=16,
        dynamics_train=_train(20, 8, 1e-3, progress=False),
        dream=LatentDreamConfig(n_envs=4, horizon=32),
        agent=AgentConfig(algo="ppo", dream_steps=256, net=(16, 16), gamma=0.99),
        eval_episodes=2,
        eval_max_steps=60,
        device="cpu",
    )


def _full() -> PixelConfig:
    """The GPU configuration. The paper used 10,000 random rollouts (~10M frames); at 64x64 RGB that is 123 GB of
    uint8 frames, beyond the 64 GB disk of the GPU machines, so this collects 1,000 rollouts of 1,000 steps (1M
    frames, 12.3 GB, ~2 h of single-process CarRacing stepping). V: 40k steps of batch 128 (~5 epochs; the paper
    ran 10 epochs of batch 100), bf16. M: hidden 256, 5 mixtures, 20k steps of 64 windows of 256 steps. C: PPO for
    5M dream steps in 64 dreams at temperature 1.15 (the paper evolved C with CMA-ES in the real env for
    CarRacing, 906 +- 21; in-dream training is its VizDoom protocol). 20 real evaluation episodes of 1000 steps."""
    return PixelConfig(
        preset="full",
        frames=1_000_000,
        vae_train=_train(40_000, 128, 3e-4, lr_schedule="cosine", amp=True),
        dynamics_train=_train(20_000, 64, 1e-3, lr_schedule="cosine", warmup_steps=500),
        seq_len=256,
        dream=LatentDreamConfig(n_envs=64, horizon=1000, temperature=1.15),
        agent=AgentConfig(algo="ppo", dream_steps=5_000_000, learning_rate=3e-4, gamma=0.99, net=(64, 64)),
        eval_episodes=20,
    )


PRESETS = {"tiny": _tiny, "default": PixelConfig, "full": _full}


def preset(name: str) -> PixelConfig:
    """The named preset: tiny (CPU smoke), default, full (the documented GPU run)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown --preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()


# ---------------------------------------------------------------------------------------------------- rollouts


@dataclass
class Rollouts:
    """Random-policy episodes, frames stored flat: episode e is frames starts[e] .. starts[e] + lengths[e]."""

    frames: np.ndarray  # (F, S, S, 3) uint8, every observation including each episode's last
    actions: np.ndarray  # (F, A) float32, the action taken at the frame (0 at an episode's last frame)
    rewards: np.ndarray  # (F,) float32, reward of that action
    terminated: np.ndarray  # (F,) bool, that action terminated the episode
    starts: np.ndarray  # (E,) int64
    lengths: np.ndarray  # (E,) int64 actions of each episode

    @property
    def real_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def acting(self) -> np.ndarray:
        """(F,) bool: an action was taken at this frame (every frame but the episodes' last)."""
        mask = np.ones(len(self.frames), bool)
        mask[self.starts + self.lengths] = False
        return mask

    def save(self, folder: Path) -> None:
        with atomic_path(folder / "frames.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, self.frames)
        with atomic_path(folder / "rollouts.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                actions=self.actions,
                rewards=self.rewards,
                terminated=self.terminated,
                starts=self.starts,
                lengths=self.lengths,
            )

    @classmethod
    def load(cls, folder: Path) -> Rollouts:
        try:
            frames = np.load(folder / "frames.npy", mmap_mode="r", allow_pickle=False)
            with np.load(folder / "rollouts.npz", allow_pickle=False) as z:
                return cls(frames, *(z[k] for k in ("actions", "rewards", "terminated", "starts", "lengths")))
        except (OSError, ValueError, KeyError) as e:
            raise DataError(
                f"{folder} holds no readable rollouts ({e}); delete collect.json to collect again"
            ) from None


def _random_action(rng: np.random.Generator, space: gym.spaces.Box, car: bool) -> np.ndarray:
    if car:  # (steer, gas, brake): gas up, brake rare, so that the car drives around
        brake = rng.uniform(0.0, 0.5) if rng.random() < 0.1 else 0.0
        return np.array([rng.uniform(-1, 1), rng.uniform(0.2, 1.0), brake], np.float32)
    return rng.uniform(space.low, space.high).astype(np.float32)


def collect_rollouts(cfg: PixelConfig, seed: int) -> Rollouts:
    """Exactly `cfg.frames` real steps of the held random policy, in episodes of at most `cfg.episode_steps`
    (episode e reset with seed seed * 1_000_003 + e); a pure function of (cfg, seed)."""
    env = make_env(cfg.env)
    obs_space, space = env.observation_space, env.action_space
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 3 and obs_space.shape[2] == 3):
        raise ConfigError(f"{cfg.env} observations are {obs_space}, not RGB frames; use the state pipeline")
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
        raise ConfigError(f"{cfg.env} actions are {space}; the pixel pipeline needs a 1-D Box action space")
    car = cfg.env.startswith("CarRacing") and space.shape == (3,)
    rng = np.random.default_rng(seed)
    frames, actions, rewards, terms, starts, lengths = [], [], [], [], [], []

    def frame(obs):
        frames.append(preprocess_frame(obs, cfg.frame_size, cfg.crop_bottom))

    steps, e = 0, 0
    while steps < cfg.frames:
        obs, _ = env.reset(seed=seed * 1_000_003 + e)
        starts.append(len(frames))
        frame(obs)
        n, left, budget = 0, 0, min(cfg.episode_steps, cfg.frames - steps)
        while n < budget:
            if left == 0:
                a, left = _random_action(rng, space, car), int(rng.integers(1, cfg.hold_steps + 1))
            obs, r, term, trunc, _ = env.step(a)
            left, n = left - 1, n + 1
            actions.append(a), rewards.append(r), terms.append(term)
            frame(obs)
            if term or trunc:
                break
        actions.append(np.zeros(space.shape, np.float32)), rewards.append(0.0), terms.append(False)
        lengths.append(n)
        steps, e = steps + n, e + 1
    env.close()
    return Rollouts(
        np.stack(frames),
        np.asarray(actions, np.float32),
        np.asarray(rewards, np.float32),
        np.asarray(terms, bool),
        np.asarray(starts, np.int64),
        np.asarray(lengths, np.int64),
    )


class FrameBatches:
    """Batch `step` of frames (B, 3, S, S) in [0, 1] drawn from a step-seeded generator (works on a memmap)."""

    def __init__(self, frames: np.ndarray, batch_size: int, seed: int):
        self.frames, self.batch_size, self.seed = frames, batch_size, seed

    def batch(self, step: int) -> tuple[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        idx = torch.randint(len(self.frames), (self.batch_size,), generator=g).sort().values.numpy()
        return (frames_to_tensor(self.frames[idx]),)


# ---------------------------------------------------------------------------------------------------- models


def build_vae(cfg: PixelConfig) -> VAE:
    enc = ConvEncoder(3, cfg.frame_size, cfg.vae_features, cfg.vae_channels)
    dec = ConvDecoder(cfg.latent_dim, 3, cfg.frame_size, tuple(reversed(cfg.vae_channels)))
    return VAE(
        enc,
        dec,
        cfg.vae_features,
        cfg.latent_dim,
        likelihood="gaussian",
        beta=cfg.vae_beta,
        gaussian_std=cfg.vae_std or None,
    )


def build_dynamics(cfg: PixelConfig, action_dim: int) -> LatentRNN:
    return LatentRNN(cfg.latent_dim, action_dim, cfg.hidden, cfg.mixtures)


def _save(module: nn.Module, path: Path) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp))


def _load(module: nn.Module, path: Path, device: torch.device) -> nn.Module:
    module.load_state_dict(load_file(str(path)))
    return module.to(device).eval()


@torch.no_grad()
def dream_strip(vae: VAE, net: LatentRNN, data: Rollouts, mu: np.ndarray) -> np.ndarray:
    """Top row: real frames of episode 0 every few steps; bottom row: the mixture-mean dream rolled from the
    encoding of its first frame under the same actions, decoded. -> (H, W, 3) uint8."""
    s, n = int(data.starts[0]), int(data.lengths[0])
    stride = max(1, min(n, STRIP_STEPS) // STRIP_COLUMNS)
    cols = list(range(0, min(n, stride * (STRIP_COLUMNS - 1)) + 1, stride))
    dream = open_loop(net, torch.as_tensor(mu[s]), torch.as_tensor(data.actions[s : s + cols[-1]]))
    decoded = vae.decode(dream[cols].to(next(vae.parameters()).device)).clamp(0, 1).cpu()
    real = frames_to_tensor(data.frames[[s + t for t in cols]])
    return image_grid_array(torch.cat([real, decoded]), nrow=len(cols), scale=2)


# ---------------------------------------------------------------------------------------------------- the run


def _mark(folder: Path, stage: str) -> dict | None:
    path = folder / f"{stage}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run_pixels(cfg: PixelConfig, folder: Path, seed: int) -> dict:
    """Collect -> V -> encode -> M -> agent in the dream -> real evaluation; returns (and writes) pixels.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved = _mark(folder, "config")
    if saved is not None and saved != json.loads(json.dumps(to_dict(cfg))):
        raise ConfigError(f"{folder} holds a run with another config; use a new folder or the saved config.json")
    atomic_write_json(folder / "config.json", to_dict(cfg))
    if (done := _mark(folder, "pixels")) is not None:
        return done
    device = resolve_device(cfg.device)
    env = make_env(cfg.env)

    if (collected := _mark(folder, "collect")) is None:  # 1. real frames, random policy
        t0 = time.perf_counter()
        collect_rollouts(cfg, seed).save(folder)
        collected = {"time_s": time.perf_counter() - t0}
        atomic_write_json(folder / "collect.json", collected)
    data = Rollouts.load(folder)

    vae = build_vae(cfg)
    if (v := _mark(folder, "vae")) is None:  # 2. V
        t0 = time.perf_counter()
        tc = replace(cfg.vae_train, seed=seed, device=str(device))
        vae = fit(vae, FrameBatches(data.frames, tc.batch_size, seed), tc, folder / "vae-fit", desc="vae").model
        _save(vae, folder / "vae.safetensors")
        vae.eval()
        pick = np.linspace(0, len(data.frames) - 1, min(len(data.frames), 512)).astype(int)
        with torch.no_grad():
            x = frames_to_tensor(data.frames[pick], device)
            mu, logvar = vae.encode(x)
            mse = float(((vae.decode(mu).clamp(0, 1) - x) ** 2).mean())
            kl = float(VAE.kl(mu, logvar).mean())
        v = {"recon_mse": mse, "kl": kl, "time_s": time.perf_counter() - t0}
        atomic_write_json(folder / "vae.json", v)
    vae = _load(vae, folder / "vae.safetensors", device)

    if (enc := _mark(folder, "encode")) is None:  # 3. every frame through V
        t0 = time.perf_counter()
        mu, logvar = encode_frames(vae, data.frames)
        with atomic_path(folder / "latents.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, mu=mu, logvar=logvar)
        enc = {"time_s": time.perf_counter() - t0}
        atomic_write_json(folder / "encode.json", enc)
    with np.load(folder / "latents.npz", allow_pickle=False) as z:
        mu, logvar = z["mu"], z["logvar"]

    net = build_dynamics(cfg, env.action_space.shape[0])
    if (m := _mark(folder, "dynamics")) is None:  # 4. M
        t0 = time.perf_counter()
        tc = replace(cfg.dynamics_train, seed=seed + 1, device=str(device))
        args = (mu, logvar, data.actions, data.rewards, data.terminated, data.starts, data.lengths, cfg.seq_len)
        objective = LatentDynamicsLoss(net)
        fit(objective, SequenceBatches(*args, tc.batch_size, seed + 1), tc, folder / "dynamics-fit", desc="dynamics")
        _save(net, folder / "dynamics.safetensors")
        objective.eval()
        held = SequenceBatches(*args, tc.batch_size, seed + 2)  # windows not drawn in the fit; z = posterior mean
        with torch.no_grad():
            losses = [objective([t.to(device) for t in held.batch(i)], sample=False) for i in range(8)]
        m = {"loss": float(torch.stack(losses).mean()), **{k: float(x) for k, x in objective.stats.items()}}
        m["time_s"] = time.perf_counter() - t0
        atomic_write_json(folder / "dynamics.json", m)
    net = _load(net, folder / "dynamics.safetensors", device)

    # 5. C, only in the dream, from real frames (the GRU warmed on the real sequence up to them)
    z_all = torch.as_tensor(mu)
    h_all = (
        warm_hidden(net, z_all, torch.as_tensor(data.actions), data.starts, data.lengths)
        if cfg.dream.warm_start
        else torch.zeros(len(mu), cfg.hidden)
    )
    acting = np.flatnonzero(data.acting)
    pick = np.sort(np.random.default_rng(seed).permutation(acting)[:MAX_STARTS])
    venv = VecMonitor(LatentDreamVecEnv(net, mu[pick], h_all[pick].cpu(), env.action_space, cfg.dream, seed))
    agent = make_agent(cfg.agent, venv, seed)
    if (c := _mark(folder, "agent")) is None:
        t0 = time.perf_counter()
        agent.learn(cfg.agent.dream_steps)
        save_agent(agent, folder / "agent")
        dream_returns = [ep["r"] for ep in agent.ep_info_buffer]
        c = {
            "dream_steps": int(agent.num_timesteps),
            "dream_return_mean": float(np.mean(dream_returns)) if dream_returns else float("nan"),
            "time_s": time.perf_counter() - t0,
        }
        atomic_write_json(folder / "agent.json", c)
    agent = load_policy(agent, folder / "agent")

    t0 = time.perf_counter()  # 6. the same policy in the real environment, and the strip
    limit = {"max_episode_steps": cfg.eval_max_steps} if cfg.eval_max_steps else {}
    real = LatentObservation(make_env(cfg.env, **limit), vae, net, cfg.frame_size, cfg.crop_bottom)
    returns = evaluate(agent, real, cfg.eval_episodes, seed=EVAL_SEED)
    real.close()
    t_eval = time.perf_counter() - t0
    atomic_write_bytes(folder / "dream_strip.png", png_bytes(dream_strip(vae, net, data, mu)))
    out = {
        "env": cfg.env,
        "preset": cfg.preset,
        "seed": seed,
        "algo": resolve_algo(cfg.agent, env.action_space),
        "real_steps": data.real_steps,
        "episodes_collected": len(data.starts),
        "vae_recon_mse": v["recon_mse"],
        "vae_kl": v["kl"],
        "dynamics_loss": m["loss"],
        "dynamics_z_nll": m["z_nll"],
        "dynamics_reward_mse": m["reward_mse"],
        "dynamics_done_bce": m["done_bce"],
        "dream_steps": c["dream_steps"],
        "dream_return_mean": c["dream_return_mean"],
        "real_return_mean": float(returns.mean()),
        "real_return_std": float(returns.std()),
        "real_returns": returns.tolist(),
        "eval_episodes": cfg.eval_episodes,
        "eval_max_steps": cfg.eval_max_steps,
        "timings": {
            "collect_s": collected["time_s"],
            "vae_s": v["time_s"],
            "encode_s": enc["time_s"],
            "dynamics_s": m["time_s"],
            "agent_s": c["time_s"],
            "eval_s": t_eval,
        },
    }
    atomic_write_json(folder / "pixels.json", out)
    return out
