"""The state world model: a probabilistic ensemble over the next-state change, a reward net and a termination
classifier; its fitting, its one batched transition, and its file format.

Input x = [obs, encoded action] (B, d + k); the ensemble's Gaussian target is next_obs - obs (B, d). Reward and
termination are functions of the transition, as Gymnasium defines them: the reward net reads (s, a, s') and the
termination classifier reads s' (a truncation is not a termination and is not learned). Both are trained on real
transitions and, in the dream, read the SAMPLED next state. This is what makes them learnable from little data:
an episode ends when s' leaves a region (CartPole: |x'| > 2.4 or |theta'| > 12 degrees), a boundary an MLP finds
from s' alone, while from (s, a) it must compose that boundary with the dynamics (1,500 random CartPole steps: 99%
vs 92% holdout accuracy); a shaped reward such as LunarLander's is a difference of potentials of s and s', which
(s, a) alone cannot give. Each ensemble member is trained on its own bootstrap resample of the data (PETS), drawn
from a generator seeded by the step so that a resumed fit draws the same batches. A reward or termination function
the user supplies (`--model.reward-fn module:function`) replaces the learned one in the dream; a known part of the
reward (`--model.reward-base`) is subtracted from the reward net's targets and added back to its outputs; a known
reward of the ending step (`--model.end-reward`) is paid where the dream terminates, and the reward net is then
fitted to the non-terminal steps only.

File: <name>.safetensors (weights and normaliser buffers) + <name>.json (env spec and model sizes).
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from apps.worlds.config import ModelConfig
from apps.worlds.data import Transitions
from apps.worlds.spaces import EnvSpec, encode_actions
from shared.atomic import atomic_path, atomic_write_json
from shared.config import from_dict, to_dict
from shared.errors import CheckpointError, ConfigError
from shared.generative.ensemble import GaussianEnsemble
from shared.nets.ensemble import EnsembleMLP
from shared.nets.mlp import MLP

# (obs, action, next_obs) tensors -> (B,) reward or termination flags
StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def load_function(ref: str) -> StepFn | None:
    """'package.module:function' -> the function ('' -> None); one-line errors for bad references."""
    if not ref:
        return None
    mod, _, name = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"cannot load {ref!r} ({e}); give 'package.module:function' importable from here") from None
    if not callable(fn):
        raise ConfigError(f"{ref!r} is not callable; give a function (obs, action, next_obs) -> (B,) tensor")
    return fn


class WorldModel(nn.Module):
    def __init__(self, spec: EnvSpec, cfg: ModelConfig):
        super().__init__()
        self.spec, self.cfg = spec, cfg
        d, x_dim = spec.obs_dim, spec.obs_dim + spec.act_dim
        self.ensemble = GaussianEnsemble(EnsembleMLP(cfg.members, x_dim, 2 * d, cfg.hidden, cfg.act), x_dim, d)
        self.reward_net = MLP(2 * d + spec.act_dim, 1, cfg.hidden[:2], cfg.act)  # (s, a, s') -> reward
        self.done_net = MLP(d, 1, cfg.hidden[:2], cfg.act)  # s' -> termination logit
        self.register_buffer("r_mean", torch.zeros(()))
        self.register_buffer("r_std", torch.ones(()))
        self.objectives = self.ensemble.objectives
        self.reward_fn = load_function(cfg.reward_fn)
        self.done_fn = load_function(cfg.done_fn)
        self.reward_base = load_function(cfg.reward_base)
        self.end_reward = load_function(cfg.end_reward)

    # the family contract, delegated (so shared.training.fit trains a WorldModel directly)
    def objective_parameters(self, name: str) -> list[nn.Parameter]:
        return [*self.ensemble.objective_parameters(name), *self.reward_net.parameters(), *self.done_net.parameters()]

    @torch.no_grad()
    def set_normalizer(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Standardise with the statistics of x (N, d + k) and y = [next_obs - obs, reward] (N, d + 1)."""
        self.ensemble.set_normalizer(x, y[:, :-1])
        self.r_mean.copy_(y[:, -1].mean())
        self.r_std.copy_(y[:, -1].std().clamp_min(1e-6))

    def _norm_obs(self, obs: torch.Tensor) -> torch.Tensor:
        d = self.spec.obs_dim
        return (obs - self.ensemble.x_mean[:d]) / self.ensemble.x_std[:d]

    def reward(self, obs: torch.Tensor, a_enc: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """(..., d), encoded actions (..., k), (..., d) -> rewards (...,) in data units."""
        h = torch.cat([self._norm_obs(obs), a_enc, self._norm_obs(next_obs)], dim=-1)
        return self.reward_net(h).squeeze(-1) * self.r_std + self.r_mean

    def done_logits(self, next_obs: torch.Tensor) -> torch.Tensor:
        """next_obs (..., d) -> termination logits (...,), inputs standardised with the observation statistics."""
        return self.done_net(self._norm_obs(next_obs)).squeeze(-1)

    def forward(self, batch, objective: str = "loss") -> torch.Tensor:
        x, y, b = batch  # (E, B, d + k), (E, B, d + 1), (E, B, 1)
        d = self.spec.obs_dim
        loss = self.ensemble((x, y[..., :d]), objective)
        obs = x[..., :d]
        nxt = obs + y[..., :d] if self.cfg.heads_on == "real" else self._dreamed_next(x)
        r_err = (self.reward(obs, x[..., d:], nxt) - y[..., d]) / self.r_std
        if self.end_reward is None:
            mse = (r_err**2).mean()
        else:  # the ending steps' reward is known: fit the others only
            keep = 1 - b[..., 0]
            mse = (r_err**2 * keep).sum() / keep.sum().clamp_min(1)
        bce = F.binary_cross_entropy_with_logits(self.done_logits(nxt), b[..., 0])
        self.stats = {**self.ensemble.stats, "reward_mse": mse.detach(), "bce": bce.detach()}
        return loss + mse + bce

    @torch.no_grad()
    def _dreamed_next(self, x: torch.Tensor) -> torch.Tensor:
        """For x (E, B, d + k): each member's draw of the next state for its own rows, clipped to the observation
        space, as the dream steps (E, B, d); no gradient reaches the ensemble through the heads' losses."""
        mu, logvar, _ = self.ensemble._heads(x)
        delta = (mu + (0.5 * logvar).exp() * torch.randn_like(mu)) * self.ensemble.y_std + self.ensemble.y_mean
        low, high = (
            torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in (self.spec.obs_low, self.spec.obs_high)
        )
        return torch.maximum(torch.minimum(x[..., : self.spec.obs_dim] + delta, high), low)

    # data -----------------------------------------------------------------------------------------------

    def tensors(self, data: Transitions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (N, d + k), y (N, d + 1), b (N, 1) for `data`; y's last column is the reward the net learns (the
        real reward less the known --model.reward-base part, if any; 0 on terminal steps when --model.end-reward
        gives their reward, so they neither reach the loss nor skew the reward normaliser)."""
        obs, act, nxt = (torch.as_tensor(v) for v in (data.obs, data.actions, data.next_obs))
        x = torch.cat([obs, encode_actions(self.spec, act)], dim=1)
        rewards = torch.as_tensor(data.rewards, dtype=torch.float32)
        if self.reward_base is not None:
            rewards = rewards - self.reward_base(obs, act, nxt).float()
        if self.end_reward is not None:
            rewards = torch.where(torch.as_tensor(data.terminated, dtype=torch.bool), 0.0, rewards)
        y = torch.cat([nxt - obs, rewards[:, None]], dim=1)
        b = torch.as_tensor(data.terminated, dtype=torch.float32)[:, None]
        return x, y, b

    # the transition -------------------------------------------------------------------------------------

    def step_given(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        members: torch.Tensor,
        eps: torch.Tensor,
        temperature: float,
        bf16: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One dream step with its randomness passed in: obs (B, d), raw actions (B,) or (B, k), members (B,) int64
        and eps (B, d) standard normal (from `ensemble.draw_noise`) -> next_obs (B, d), reward (B,), the reward if
        the step terminates (B,), p_terminated (B,), disagreement (B,) (sd across members of the normalised
        predictions). A function of tensors that `torch.compile` can trace whole (the dream compiles it with its
        guards and auto-reset, `apps.worlds.envs.DreamCore`). The user's functions are applied as `_known` says."""
        a = encode_actions(self.spec, action)
        nxt, reward, p_done, spread = self.transition(obs, a, members, eps, temperature, bf16)
        return (nxt, *self._known(obs, action, nxt, reward, p_done), spread)

    def _known(
        self, obs: torch.Tensor, action: torch.Tensor, nxt: torch.Tensor, reward: torch.Tensor, p_done: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The learned reward and termination probability (B,) with the user's functions applied: a reward-fn or
        done-fn replaces them, a reward-base is added to the learned rest -> reward, reward if the step terminates
        (the end-reward where given, else the same reward), p_terminated."""
        if self.reward_fn is not None:
            reward = self.reward_fn(obs, action, nxt).float()
        elif self.reward_base is not None:
            reward = reward + self.reward_base(obs, action, nxt).float()
        if self.done_fn is not None:
            p_done = self.done_fn(obs, action, nxt).float()
        end = reward if self.end_reward is None else self.end_reward(obs, action, nxt).float()
        return reward, end, p_done

    def transition(
        self,
        obs: torch.Tensor,
        a_enc: torch.Tensor,
        members: torch.Tensor,
        eps: torch.Tensor,
        temperature: float,
        bf16: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The learned transition with its randomness passed in: obs (B, d), encoded actions (B, k), members (B,)
        int64, eps (B, d) -> next_obs, reward, p_terminated, disagreement; all members, the reward net and the
        termination net. With bf16 the nets run under bf16 autocast (matrix units: AMX or AVX512-BF16 on x86
        CPUs, tensor cores on GPUs); the state update obs + delta and the outputs stay float32, so rounding does
        not pile up along a dream."""
        nets = torch.autocast(obs.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with nets:
            y, _, spread = self.ensemble.sample_given(torch.cat([obs, a_enc], dim=1), members, eps, temperature)
        nxt = obs + y.float()
        with nets:
            reward, logits = self.reward(obs, a_enc, nxt), self.done_logits(nxt)
        return nxt, reward.float(), torch.sigmoid(logits.float()), spread.float()

    @torch.no_grad()
    def mean_step(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ensemble-mean prediction (no noise): next_obs (B, d), expected reward (B,), p_terminated (B,), the
        user's reward and termination functions applied as in the dream (an end-reward weighted by p)."""
        a = encode_actions(self.spec, action)
        mean, _, _ = self.ensemble.predict(torch.cat([obs, a], dim=1))
        nxt = obs + mean.mean(dim=0)
        reward, end, p = self._known(obs, action, nxt, self.reward(obs, a, nxt), torch.sigmoid(self.done_logits(nxt)))
        return nxt, reward + p * (end - reward), p

    # files ----------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        path = Path(path)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(path.with_suffix(".safetensors")) as tmp:
            save_file(state, str(tmp))
        meta = {"kind": "genlab-worlds-state-model", "spec": self.spec.to_dict(), "model": to_dict(self.cfg)}
        atomic_write_json(path.with_suffix(".json"), meta)

    @classmethod
    def load(cls, path: str | Path, expect: EnvSpec | None = None) -> WorldModel:
        """Rebuild from <path>.json and load <path>.safetensors; `expect` refuses a model of other spaces."""
        path = Path(path)
        meta_path, weights = path.with_suffix(".json"), path.with_suffix(".safetensors")
        if not meta_path.is_file() or not weights.is_file():
            raise CheckpointError(f"no world model at {path} (need {weights.name} and {meta_path.name})")
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("kind") != "genlab-worlds-state-model":
                raise ValueError("not a genlab worlds state model")
            spec = EnvSpec.from_dict(meta["spec"])
            model = cls(spec, from_dict(ModelConfig, meta["model"], "model"))
            model.load_state_dict(load_file(str(weights)))
        except ConfigError:
            raise
        except Exception as e:  # corrupt JSON, a foreign safetensors file, missing keys, wrong shapes
            raise CheckpointError(f"{path} is not a readable world model ({str(e).splitlines()[0][:160]})") from None
        if expect is not None and (diff := spec.mismatch(expect)):
            raise CheckpointError(f"the model {path} does not match the environment's spaces ({diff})")
        return model.eval()


class BootstrapBatches:
    """Batch `step` = one bootstrap resample per member: (x, y, b) each (E, B, .), from a step-seeded generator."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, b: torch.Tensor, members: int, batch_size: int, seed: int):
        self.x, self.y, self.b = x, y, b
        self.members, self.batch_size, self.seed = members, batch_size, seed

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        idx = torch.randint(len(self.x), (self.members, self.batch_size), generator=g)
        return self.x[idx], self.y[idx], self.b[idx]


def holdout_split(n: int, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, holdout) with `frac` of n held out (at least 1 each when n >= 2)."""
    perm = np.random.default_rng(seed).permutation(n)
    k = min(max(1, int(round(frac * n))), n - 1) if n >= 2 else 0
    return np.sort(perm[k:]), np.sort(perm[:k])
