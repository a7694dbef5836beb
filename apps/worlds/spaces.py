"""Which Gymnasium environments the world models support, and how their actions become model inputs.

`EnvSpec` is what a world model records about its environment (id, observation bounds, action kind and bounds):
enough to rebuild the dream's spaces without the real environment and to refuse a model file that belongs to
another environment. Actions enter the model as floats: a Discrete action as a one-hot vector, a Box action
scaled to [-1, 1] (so every action dimension has the same range whatever the environment's units).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch

from shared.errors import ConfigError


def make_env(env_id: str, **kwargs) -> gym.Env:
    """gymnasium.make with a one-line error for ids that do not exist."""
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise ConfigError(
            f"unknown Gymnasium environment {env_id!r} ({e}); list the ids with "
            "python -c 'import gymnasium; gymnasium.pprint_registry()'"
        ) from None


@dataclass(frozen=True)
class EnvSpec:
    env_id: str
    obs_low: tuple[float, ...]
    obs_high: tuple[float, ...]
    action_kind: str
    """'discrete' or 'box'."""
    n_actions: int = 0
    """Number of Discrete actions (0 for Box)."""
    act_low: tuple[float, ...] = ()
    act_high: tuple[float, ...] = ()

    @property
    def obs_dim(self) -> int:
        return len(self.obs_low)

    @property
    def act_dim(self) -> int:
        """Width of the encoded action the model reads."""
        return self.n_actions if self.action_kind == "discrete" else len(self.act_low)

    def observation_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(np.array(self.obs_low, np.float32), np.array(self.obs_high, np.float32), dtype=np.float32)

    def action_space(self) -> gym.spaces.Space:
        if self.action_kind == "discrete":
            return gym.spaces.Discrete(self.n_actions)
        return gym.spaces.Box(np.array(self.act_low, np.float32), np.array(self.act_high, np.float32), dtype=np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EnvSpec:
        d = dict(d)
        for k in ("obs_low", "obs_high", "act_low", "act_high"):
            d[k] = tuple(float(v) for v in d.get(k, ()))
        return cls(**d)

    def mismatch(self, other: EnvSpec) -> str:
        """'' when both describe the same spaces, else what differs (for one-line errors)."""
        if self.env_id != other.env_id:
            return f"environment {self.env_id} vs {other.env_id}"
        for name in ("obs_low", "obs_high", "action_kind", "n_actions", "act_low", "act_high"):
            if getattr(self, name) != getattr(other, name):
                return f"{name} {getattr(self, name)} vs {getattr(other, name)}"
        return ""


def _finite(x: np.ndarray) -> tuple[float, ...]:
    # float32 spaces use +-3.4e38 for "unbounded"; store them as inf so JSON and comparisons stay exact
    x = np.asarray(x, dtype=np.float64)
    return tuple(float(v) if abs(v) < 1e30 else float(np.sign(v) * np.inf) for v in x.ravel())


def spec_of(env: gym.Env, env_id: str) -> EnvSpec:
    """The spec of a state-based environment, or a one-line error naming the unsupported space."""
    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        kind = type(obs).__name__ + (f" of shape {obs.shape}" if isinstance(obs, gym.spaces.Box) else "")
        image = isinstance(obs, gym.spaces.Box) and len(obs.shape) == 3
        hint = (
            f" (image observations: `python -m apps.worlds run --env {env_id}` runs the pixel pipeline)"
            if image
            else ""
        )
        raise ConfigError(
            f"{env_id} has a {kind} observation space; the state world model needs a flat Box (vector) "
            f"observation{hint}. Wrap the environment, e.g. gymnasium.wrappers.FlattenObservation, and register it"
        )
    if isinstance(act, gym.spaces.Discrete):
        if act.start != 0:
            raise ConfigError(f"{env_id}: Discrete actions starting at {act.start} are not supported (start must be 0)")
        return EnvSpec(env_id, _finite(obs.low), _finite(obs.high), "discrete", n_actions=int(act.n))
    if isinstance(act, gym.spaces.Box) and len(act.shape) == 1 and np.all(np.isfinite(act.low) & np.isfinite(act.high)):
        return EnvSpec(
            env_id, _finite(obs.low), _finite(obs.high), "box", act_low=_finite(act.low), act_high=_finite(act.high)
        )
    raise ConfigError(
        f"{env_id} has a {type(act).__name__} action space {act}; world models support Discrete and bounded 1-D Box"
    )


def encode_actions(spec: EnvSpec, actions: torch.Tensor) -> torch.Tensor:
    """Actions as the model reads them: (B,) ints -> (B, n) one-hot, or (B, k) Box values -> (B, k) in [-1, 1]."""
    if spec.action_kind == "discrete":
        return torch.nn.functional.one_hot(actions.reshape(-1).long(), spec.n_actions).float()
    low = torch.tensor(spec.act_low, dtype=torch.float32, device=actions.device)
    high = torch.tensor(spec.act_high, dtype=torch.float32, device=actions.device)
    a = actions.reshape(-1, spec.act_dim).float()
    return (2 * (a.clamp(low, high) - low) / (high - low) - 1).clamp(-1, 1)
