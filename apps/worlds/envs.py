"""Dream environments: a fitted world model behind the Gymnasium and Stable-Baselines3 environment APIs.

`DreamVecEnv` is an SB3 `VecEnv` whose N environments advance as ONE batched torch computation (one ensemble
forward for all N, on the model's device); the only per-environment Python is building the list of info dicts that
SB3's API requires. It follows SB3's contract (`../shared/notes/metrics.md`): same-step auto-reset, with the
finished episode's last observation in `infos[i]["terminal_observation"]` and `infos[i]["TimeLimit.truncated"]`
True when the episode was cut (horizon or disagreement guard) rather than terminated, so agents bootstrap there.

`DreamEnv` is the single-environment `gymnasium.Env` over the same transition (passes `check_env`), registered
for every registered Gymnasium id as `genlab/Dream-<EnvId>`:

    import apps.worlds, gymnasium
    env = gymnasium.make("genlab/Dream-CartPole-v1", model="runs/worlds/cartpole-v1/seed-0/model")

Guards against an agent exploiting model errors (World Models, Ha & Schmidhuber 2018, section 4.5; MOPO, Yu et al.
2020): episodes start from real observed states, each step draws a random ensemble member with the model's noise
scaled by `temperature`, the reward is reduced by `penalty` x ensemble disagreement, and an episode is truncated
when the disagreement exceeds `max_disagreement`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from apps.worlds.config import DreamConfig, check_precision
from apps.worlds.data import Transitions
from apps.worlds.model import WorldModel
from shared.atomic import atomic_path
from shared.errors import ConfigError, DataError


class DreamCore:
    """The batched dream transition shared by both APIs: state is obs (N, d) and step counters (N,).

    One step is `advance_given`, a function of tensors with the step's randomness passed in: the model's
    transition, the clip to the observation space, the disagreement penalty, termination, truncation and the
    auto-reset of finished rows, with no data-dependent shapes and no host sync. `--dream.compile` makes it one
    `torch.compile` graph (CUDA graphs on a GPU); eagerly it is the same function."""

    def __init__(self, model: WorldModel, starts: np.ndarray, cfg: DreamConfig, seed: int = 0):
        starts = np.asarray(starts, dtype=np.float32)
        if starts.ndim != 2 or starts.shape[1] != model.spec.obs_dim or len(starts) == 0:
            raise DataError(
                f"dream start states must be a non-empty (M, {model.spec.obs_dim}) array, got shape {starts.shape}"
            )
        self.model, self.cfg = model.eval(), cfg
        self.bf16 = check_precision(cfg.precision) == "bfloat16"
        self.device = next(model.parameters()).device
        self.spec = model.spec
        self.starts = torch.as_tensor(starts, device=self.device)
        self.low = torch.tensor(self.spec.obs_low, dtype=torch.float32, device=self.device)
        self.high = torch.tensor(self.spec.obs_high, dtype=torch.float32, device=self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._advance = self.advance_given
        if cfg.compile:  # compiled on the first step of each batch size (seconds, once)
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._advance = torch.compile(self.advance_given, dynamic=False, mode=mode)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def draw_starts(self, n: int) -> torch.Tensor:
        """(n, d) start observations drawn uniformly from the real start states."""
        idx = torch.randint(len(self.starts), (n,), generator=self.generator, device=self.device)
        return self.starts[idx]

    def draw(self, n: int) -> tuple[torch.Tensor, ...]:
        """The randomness of one step of n rows, in a fixed order: the ensemble member per row (n,) and its noise
        (n, d), a uniform (n,) for the termination draw, and the start state (n,) index a row resets to if done."""
        members, eps = self.model.ensemble.draw_noise(n, self.device, self.generator)
        u = torch.rand(n, generator=self.generator, device=self.device)
        fresh = torch.randint(len(self.starts), (n,), generator=self.generator, device=self.device)
        return members, eps, u, fresh

    @torch.no_grad()
    def advance(self, obs: torch.Tensor, t: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step of every row: obs (N, d), t (N,) steps taken so far, actions (N,) or (N, k) -> see
        `advance_given`."""
        return self._advance(obs, t, actions, *self.draw(obs.shape[0]))

    def advance_given(
        self,
        obs: torch.Tensor,
        t: torch.Tensor,
        actions: torch.Tensor,
        members: torch.Tensor,
        eps: torch.Tensor,
        u: torch.Tensor,
        fresh: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """-> (obs after auto-reset (N, d), the step's own next obs (N, d), reward (N,), terminated (N,) bool,
        truncated (N,) bool (and not terminated), disagreement (N,), steps taken after auto-reset (N,))."""
        nxt, reward, end_reward, p_done, spread = self.model.step_given(
            obs, actions, members, eps, float(self.cfg.temperature), self.bf16
        )
        nxt = torch.maximum(torch.minimum(nxt, self.high), self.low)  # stay inside the observation space
        if self.cfg.termination == "sample":
            terminated = u < p_done
        else:
            terminated = p_done > self.cfg.done_threshold
        reward = torch.where(terminated, end_reward, reward) - self.cfg.penalty * spread
        truncated = t + 1 >= self.cfg.horizon
        if self.cfg.max_disagreement > 0:
            truncated = truncated | (spread > self.cfg.max_disagreement)
        truncated = truncated & ~terminated
        done = terminated | truncated
        after = torch.where(done[:, None], self.starts[fresh], nxt)  # same-step auto-reset
        return after, nxt, reward, terminated, truncated, spread, torch.where(done, 0, t + 1)


class BatchedVecEnv(VecEnv):
    """What every batched dream VecEnv shares: the attribute plumbing SB3 expects of a VecEnv (one object stands
    for all N environments, so attributes and methods are the same for every index), reset seeding, and the
    info dicts of a same-step auto-reset."""

    render_mode = None

    def seed_generator(self, generator: torch.Generator) -> None:
        """Apply a seed given by `VecEnv.seed(s)` to `generator` at reset (the first env's seed seeds the batch)."""
        seeds = [s for s in self._seeds if s is not None] if self._seeds else []
        if seeds:
            generator.manual_seed(int(seeds[0]))
        self._reset_seeds()
        self._reset_options()

    def done_infos(self, done: np.ndarray, truncated: torch.Tensor, last: torch.Tensor) -> list[dict[str, Any]]:
        """N info dicts; where done (N,) bool (on the host), `terminal_observation` = last[i] and
        `TimeLimit.truncated` = truncated[i]. Only the finished rows leave the device."""
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        idx = np.flatnonzero(done)
        if idx.size:
            rows = torch.as_tensor(idx, device=last.device)
            ends, cut = last[rows].cpu().numpy(), truncated[rows].cpu().numpy()
            for j, i in enumerate(idx.tolist()):
                infos[i]["terminal_observation"] = ends[j]
                infos[i]["TimeLimit.truncated"] = bool(cut[j])
        return infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self, method_name)(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


class DreamVecEnv(BatchedVecEnv):
    """N dream environments as one SB3 VecEnv (batched; same-step auto-reset)."""

    def __init__(self, model: WorldModel, starts: np.ndarray, cfg: DreamConfig, seed: int = 0):
        self.core = DreamCore(model, starts, cfg, seed)
        super().__init__(cfg.n_envs, model.spec.observation_space(), model.spec.action_space())
        self._obs = self.core.draw_starts(self.num_envs)
        self._t = torch.zeros(self.num_envs, dtype=torch.long, device=self.core.device)
        self._actions: torch.Tensor | None = None
        self.disagreement = np.zeros(self.num_envs, np.float32)
        """Ensemble disagreement of the last step, per environment (for monitoring)."""

    def reset(self) -> np.ndarray:
        self.seed_generator(self.core.generator)
        self._obs = self.core.draw_starts(self.num_envs)
        self._t.zero_()
        return self._obs.cpu().numpy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = torch.as_tensor(np.asarray(actions), device=self.core.device)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        obs, last, reward, term, trunc, spread, self._t = self.core.advance(self._obs, self._t, self._actions)
        self._actions = None
        self._obs = obs
        self.disagreement = spread.cpu().numpy()
        done = (term | trunc).cpu().numpy()
        return obs.cpu().numpy(), reward.cpu().numpy(), done, self.done_infos(done, trunc, last)


class DreamEnv(gym.Env):
    """One dream environment (gymnasium API). `model` is a world-model path (without suffix) or a WorldModel;
    `starts` the real start states (default: those saved beside the model as <model>.starts.npy)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        model: str | Path | WorldModel,
        starts: np.ndarray | None = None,
        dream: DreamConfig | None = None,
        env_id: str | None = None,
    ):
        super().__init__()
        if not isinstance(model, WorldModel):
            path = Path(model)
            model = WorldModel.load(path)
            if starts is None:
                starts = load_starts(path)
        if env_id is not None and model.spec.env_id != env_id:
            raise ConfigError(
                f"the model was fitted to {model.spec.env_id}, not {env_id}; use genlab/Dream-{model.spec.env_id}"
            )
        if starts is None:
            raise DataError("DreamEnv needs real start states: pass starts=(M, d) array or save them beside the model")
        self.core = DreamCore(model, starts, dream or DreamConfig(n_envs=1), seed=0)
        self.observation_space = model.spec.observation_space()
        self.action_space = model.spec.action_space()
        self._obs = self.core.draw_starts(1)
        self._t = torch.zeros(1, dtype=torch.long, device=self.core.device)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.core.seed(seed)
        self._obs = self.core.draw_starts(1)
        self._t.zero_()
        return self._obs[0].cpu().numpy(), {}

    def step(self, action):
        a = torch.as_tensor(np.asarray(action), device=self.core.device).reshape(1, -1)
        if self.core.spec.action_kind == "discrete":
            a = a.reshape(1)
        _, nxt, reward, term, trunc, spread, _ = self.core.advance(self._obs, self._t, a)
        self._obs, self._t = nxt, self._t + 1  # no auto-reset: a gymnasium.Env is reset by its user
        info = {"disagreement": float(spread[0])}
        return nxt[0].cpu().numpy(), float(reward[0]), bool(term[0]), bool(trunc[0]), info


def starts_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".starts.npy")


def start_states(data: Transitions, start: str) -> np.ndarray:
    """Where dream episodes start (`DreamConfig.start`): every observed real state, or only real episodes' first."""
    return data.obs if start == "real" else data.episode_starts


def save_starts(model_path: str | Path, starts: np.ndarray) -> None:
    """Save the start states beside the model as <model>.starts.npy (atomically)."""
    with atomic_path(starts_path(model_path)) as tmp, open(tmp, "wb") as fh:
        np.save(fh, starts)


def load_starts(model_path: str | Path) -> np.ndarray:
    path = starts_path(model_path)
    if not path.is_file():
        raise DataError(f"no start states at {path}; pass starts= or refit the model with apps.worlds fit")
    return np.load(path, allow_pickle=False)


def register_dream_envs() -> None:
    """Register genlab/Dream-<EnvId> for every plain (un-namespaced) Gymnasium id."""
    for env_id in list(gym.registry):
        if "/" in env_id or env_id.startswith("Dream-"):
            continue
        dream_id = f"genlab/Dream-{env_id}"
        if dream_id not in gym.registry:
            gym.register(id=dream_id, entry_point="apps.worlds.envs:DreamEnv", kwargs={"env_id": env_id})
