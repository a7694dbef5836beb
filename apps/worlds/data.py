"""Real experience: collecting transitions from a Gymnasium environment, and storing them as .npz.

A `Transitions` holds N real steps (obs, action, reward, next obs, terminated, truncated) and is what the world
model is fitted to and where dream episodes start. Collection is by a policy callable (obs -> action) or, when
none is given, the uniformly random policy of the action space; every step taken is a real step and counts
against the run's budget. Files are written atomically and read back with `allow_pickle=False`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

from shared.atomic import atomic_path
from shared.errors import DataError

FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "truncated")


@dataclass
class Transitions:
    obs: np.ndarray  # (N, d) float32
    actions: np.ndarray  # (N,) int64 for Discrete, (N, k) float32 for Box
    rewards: np.ndarray  # (N,) float32
    next_obs: np.ndarray  # (N, d) float32, the true next observation (also at episode ends)
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    episode_returns: list[float] = field(default_factory=list)
    """Undiscounted returns of the episodes completed during collection."""

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def episode_starts(self) -> np.ndarray:
        """(M, d) first observations of the episodes in this data (where real episodes begin)."""
        first = np.r_[True, (self.terminated | self.truncated)[:-1]]
        return self.obs[first]

    def subset(self, idx: np.ndarray) -> Transitions:
        """The transitions at `idx` (episode returns are not carried over)."""
        return Transitions(*(getattr(self, f)[idx] for f in FIELDS))

    def concat(self, other: Transitions) -> Transitions:
        return Transitions(
            *(np.concatenate([getattr(self, f), getattr(other, f)]) for f in FIELDS),
            episode_returns=self.episode_returns + other.episode_returns,
        )

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, **{f: getattr(self, f) for f in FIELDS}, episode_returns=np.asarray(self.episode_returns)
            )

    @classmethod
    def load(cls, path: str | Path) -> Transitions:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"no transitions file at {path}; run `python -m apps.worlds collect` first")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {f: z[f] for f in FIELDS}
                returns = [float(r) for r in z["episode_returns"]]
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{path} is not a transitions file written by apps.worlds ({e})") from None
        return cls(**arrays, episode_returns=returns)


Policy = Callable[[np.ndarray], np.ndarray]


def collect(env: gym.Env, n_steps: int, seed: int, policy: Policy | None = None, desc: str = "") -> Transitions:
    """Run `policy` (random when None) for exactly `n_steps` real steps, resetting at episode ends.

    The environment is reset with `seed` at the start; episodes cut by the step count are not recorded as
    returns (only completed episodes are)."""
    if n_steps < 1:
        raise DataError(f"collect needs at least 1 step, got {n_steps}")
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    buf = {f: [] for f in FIELDS}
    returns, ep_ret = [], 0.0
    for _ in range(n_steps):
        action = env.action_space.sample() if policy is None else policy(obs)
        nxt, reward, term, trunc, _ = env.step(action)
        for f, v in zip(FIELDS, (obs, action, reward, nxt, term, trunc)):
            buf[f].append(v)
        ep_ret += float(reward)
        obs = nxt
        if term or trunc:
            returns.append(ep_ret)
            ep_ret = 0.0
            obs, _ = env.reset()
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    return Transitions(
        obs=np.asarray(buf["obs"], np.float32),
        actions=np.asarray(buf["actions"], np.int64 if discrete else np.float32),
        rewards=np.asarray(buf["rewards"], np.float32),
        next_obs=np.asarray(buf["next_obs"], np.float32),
        terminated=np.asarray(buf["terminated"], bool),
        truncated=np.asarray(buf["truncated"], bool),
        episode_returns=returns,
    )
