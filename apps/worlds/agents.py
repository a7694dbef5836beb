"""Stable-Baselines3 agents: building one for a dream or real VecEnv, scoring it in the real environment, saving it.

Hyperparameters follow rl-baselines3-zoo's tuned settings for the classic-control tasks (PPO: gamma 0.98, GAE
lambda 0.8, 20 epochs over 256-sample minibatches; SAC: lr 1e-3, batch 256, tau 0.005), scaled by `AgentConfig`.
Agents are saved both as SB3 .zip (what SB3 users load) and as policy weights in safetensors, which is what this
app reads back (SB3's .zip carries pickled objects, and we never unpickle files).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv

from apps.worlds.config import AgentConfig
from shared.atomic import atomic_path
from shared.errors import CheckpointError, ConfigError


def resolve_algo(cfg: AgentConfig, action_space: gym.spaces.Space) -> str:
    discrete = isinstance(action_space, gym.spaces.Discrete)
    algo = cfg.algo if cfg.algo != "auto" else ("ppo" if discrete else "sac")
    if algo == "dqn" and not discrete:
        raise ConfigError("--agent.algo dqn needs Discrete actions; use sac or ppo for Box actions")
    if algo == "sac" and discrete:
        raise ConfigError("--agent.algo sac needs Box actions; use ppo or dqn for Discrete actions")
    return algo


def make_agent(cfg: AgentConfig, env: VecEnv, seed: int) -> BaseAlgorithm:
    """A fresh agent for `env` (single-threaded CPU torch; small MLPs gain nothing from a GPU)."""
    agent = _build_agent(cfg, env, seed)
    # SB3's default logger makes an empty $TMPDIR/SB3-<time> folder at every learn(), hundreds per run;
    # our own progress and metrics go to the run folder, so its logger writes nowhere.
    agent.set_logger(Logger(folder=None, output_formats=[]))
    return agent


def _build_agent(cfg: AgentConfig, env: VecEnv, seed: int) -> BaseAlgorithm:
    algo = resolve_algo(cfg, env.action_space)
    net = list(cfg.net)
    common = dict(env=env, seed=seed, device="cpu", verbose=0, learning_rate=cfg.learning_rate, gamma=cfg.gamma)
    if algo == "ppo":
        n_steps = cfg.n_steps or max(8, 1024 // env.num_envs)  # default: ~1024 transitions per update
        return PPO(
            "MlpPolicy",
            n_steps=n_steps,
            batch_size=cfg.batch_size or min(256, n_steps * env.num_envs),
            n_epochs=cfg.n_epochs,
            gae_lambda=cfg.gae_lambda or (0.8 if cfg.gamma < 0.99 else 0.95),
            ent_coef=cfg.ent_coef,
            policy_kwargs=dict(net_arch=dict(pi=net, vf=net)),
            **common,
        )
    if algo == "sac":
        return SAC(
            "MlpPolicy",
            buffer_size=200_000,
            batch_size=256,
            learning_starts=1000,
            tau=0.005,
            train_freq=1,
            gradient_steps=1,
            policy_kwargs=dict(net_arch=net),
            **common,
        )
    return DQN(
        "MlpPolicy",
        buffer_size=100_000,
        batch_size=64,
        learning_starts=1000,
        target_update_interval=500,
        train_freq=4,
        exploration_fraction=0.2,
        exploration_final_eps=0.05,
        policy_kwargs=dict(net_arch=net),
        **common,
    )


def evaluate(agent: BaseAlgorithm, env: gym.Env, episodes: int, seed: int) -> np.ndarray:
    """Undiscounted returns of `episodes` real episodes with the deterministic policy, seeds seed, seed+1, ..."""
    returns = np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            obs, reward, term, trunc, _ = env.step(action)
            total += float(reward)
            done = term or trunc
        returns[i] = total
    return returns


def policy_fn(agent: BaseAlgorithm, deterministic: bool = False):
    """obs -> action with the agent's (stochastic by default, for exploration) policy."""
    return lambda obs: agent.predict(obs, deterministic=deterministic)[0]


def save_agent(agent: BaseAlgorithm, path: str | Path) -> None:
    """<path>.zip (SB3 format) and <path>.safetensors (policy weights, what we load)."""
    path = Path(path)
    with atomic_path(path.with_suffix(".zip")) as tmp:
        agent.save(str(tmp))
        produced = Path(str(tmp) + ".zip") if not tmp.exists() else tmp
        if produced != tmp:
            produced.replace(tmp)
    state = {k: v.detach().cpu().contiguous() for k, v in agent.policy.state_dict().items()}
    with atomic_path(path.with_suffix(".safetensors")) as tmp:
        save_file(state, str(tmp))


def load_policy(agent: BaseAlgorithm, path: str | Path) -> BaseAlgorithm:
    """Load policy weights saved by `save_agent` into a freshly built agent of the same config."""
    file = Path(path).with_suffix(".safetensors")
    if not file.is_file():
        raise CheckpointError(f"no agent weights at {file}; train an agent first (python -m apps.worlds train)")
    try:
        agent.policy.load_state_dict(load_file(str(file)))
    except Exception as e:
        raise CheckpointError(f"{file} does not fit this agent ({str(e).splitlines()[0][:160]})") from None
    return agent


def set_threads() -> None:
    torch.set_num_threads(1)  # small MLPs: one thread per process is fastest (../shared/notes/data.md)
