"""Known reward and termination functions (apps/worlds/known.py): equal to the real environments' on real
transitions, and the dream uses them in place of the learned heads when the model config names them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apps.worlds.config import DreamConfig, ModelConfig
from apps.worlds.data import collect
from apps.worlds.envs import DreamVecEnv
from apps.worlds.known import (
    cartpole_done,
    cartpole_reward,
    lunarlander_end_reward,
    lunarlander_out_of_bounds,
    lunarlander_reward_base,
    pendulum_reward,
)
from apps.worlds.model import WorldModel
from apps.worlds.spaces import make_env, spec_of
from shared.errors import ConfigError


def _tensors(data):
    return torch.as_tensor(data.obs), torch.as_tensor(data.actions), torch.as_tensor(data.next_obs)


def test_cartpole_functions_match_the_real_env():
    data = collect(make_env("CartPole-v1"), 3000, seed=0)
    obs, act, nxt = _tensors(data)
    assert data.terminated.sum() > 50  # random play falls often: both outcomes are checked
    np.testing.assert_array_equal(cartpole_done(obs, act, nxt).numpy().astype(bool), data.terminated)
    np.testing.assert_array_equal(cartpole_reward(obs, act, nxt).numpy(), data.rewards)


def test_pendulum_reward_matches_the_real_env():
    data = collect(make_env("Pendulum-v1"), 2000, seed=0)
    obs, act, nxt = _tensors(data)
    np.testing.assert_allclose(pendulum_reward(obs, act, nxt).numpy(), data.rewards, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("env_id", ["LunarLander-v3", "LunarLander-v3-continuous"])
def test_lunarlander_base_is_the_whole_reward_of_every_step_that_does_not_end(env_id):
    """Shaping and fuel match the real env on every non-terminal step (to float32 rounding of the observations,
    the env computes in float64); the steps that end differ by the +-100 the reward net learns."""
    env = make_env("LunarLander-v3", continuous=True) if env_id.endswith("continuous") else make_env(env_id)
    data = collect(env, 3000, seed=0)
    base = lunarlander_reward_base(*_tensors(data)).numpy()
    going = ~data.terminated
    assert going.sum() > 2500 and data.terminated.sum() > 5  # random play crashes often
    np.testing.assert_allclose(base[going], data.rewards[going], atol=2e-3)
    assert np.all(np.abs(data.rewards[data.terminated]) == 100)
    out = lunarlander_out_of_bounds(*_tensors(data)).numpy().astype(bool)  # a subset of the terminations
    assert out.any() and not np.any(out & going) and np.all(data.rewards[out] == -100)


def test_the_reward_net_learns_what_the_base_leaves():
    """With --model.reward-base the net's targets are the real reward less the base (zero on LunarLander's
    non-terminal steps), and the model's reward (mean step and dream) is the net's output plus the base."""
    env = make_env("LunarLander-v3")
    spec = spec_of(env, "LunarLander-v3")
    data = collect(env, 600, seed=1)
    cfg = ModelConfig(members=2, hidden=(16, 16), reward_base="apps.worlds.known:lunarlander_reward_base")
    model = WorldModel(spec, cfg)
    x, y, _ = model.tensors(data)
    going = ~data.terminated
    assert np.abs(y[going, -1].numpy()).max() < 2e-3
    obs, act, _ = _tensors(data)
    nxt, rew, _ = model.mean_step(obs, act)
    learned = model.reward(obs, x[:, spec.obs_dim :], nxt)
    torch.testing.assert_close(rew, learned + lunarlander_reward_base(obs, act, nxt))
    with pytest.raises(ConfigError, match="not both"):
        ModelConfig(reward_fn="apps.worlds.known:cartpole_reward", reward_base=cfg.reward_base)


def test_lunarlander_end_reward_judges_real_episode_ends():
    """The +-100 of the ending step from the state before it: every landing of the Gymnasium heuristic pilot is
    +100, and over landings and crashes of heuristic, noisy and random pilots it is right at least 95% of the
    time (the function's docstring gives the measured figure on 284 episodes)."""
    from gymnasium.envs.box2d.lunar_lander import heuristic

    env, rng, ends = make_env("LunarLander-v3"), np.random.default_rng(0), []
    for ep in range(90):
        obs, _ = env.reset(seed=ep)
        noise = (0.0, 0.3, 1.0)[ep % 3]  # share of random actions
        for _ in range(1000):
            a = int(rng.integers(4)) if rng.random() < noise else heuristic(env.unwrapped, obs)
            nxt, r, term, trunc, _ = env.step(a)
            if term:
                ends.append((obs, a, nxt, r))
            if term or trunc:
                break
            obs = nxt
    obs, act, nxt = (torch.as_tensor(np.asarray([e[i] for e in ends])) for i in range(3))
    real = np.asarray([e[3] for e in ends])
    judged = lunarlander_end_reward(obs, act, nxt).numpy()
    landed = real > 0
    assert landed.sum() >= 20 and (~landed).sum() >= 20  # both outcomes are checked
    assert np.all(judged[landed] == 100)
    assert (judged == real).mean() >= 0.95


def test_an_end_reward_is_paid_where_the_dream_terminates():
    """--model.end-reward: the reward net's targets are 0 on terminal steps (they are known), the mean step
    weights the end reward by p_terminated, and the dream pays it exactly on the steps it terminates."""
    torch.manual_seed(0)
    env = make_env("CartPole-v1")
    spec = spec_of(env, "CartPole-v1")
    data = collect(env, 500, seed=0)
    cfg = ModelConfig(
        members=2,
        hidden=(16, 16),
        done_fn="apps.worlds.known:cartpole_done",
        end_reward="apps.worlds.known:lunarlander_end_reward",  # loads; replaced below by one easy to check
    )
    model = WorldModel(spec, cfg)
    model.end_reward = lambda o, a, n: torch.full((o.shape[0],), -7.0)
    x, y, b = model.tensors(data)
    assert data.terminated.sum() > 5 and torch.all(y[data.terminated, -1] == 0)
    np.testing.assert_array_equal(y[~data.terminated, -1].numpy(), data.rewards[~data.terminated])
    model.set_normalizer(x, y)
    obs, act, _ = _tensors(data)
    _, rew, p = model.mean_step(obs, act)
    own = model.reward(obs, x[:, spec.obs_dim :], model.mean_step(obs, act)[0])
    torch.testing.assert_close(rew, own + p * (-7.0 - own))
    venv = DreamVecEnv(model, data.obs, DreamConfig(n_envs=8, horizon=500, penalty=0.0), seed=0)
    venv.reset()
    ended = 0
    for a in np.random.default_rng(0).integers(2, size=(60, 8)):
        _, rew, done, infos = venv.step(a)
        terminal = np.array([d and not i["TimeLimit.truncated"] for d, i in zip(done, infos)])
        assert np.all(rew[terminal] == -7.0) and np.all(rew[~terminal] != -7.0)
        ended += terminal.sum()
    assert ended > 0


def test_the_dream_scores_with_the_named_function():
    """--model.reward-fn / --model.done-fn replace the heads: with no penalty the dream's reward is the function of
    the step's own (obs, action, next obs), and episodes end exactly where the function says."""
    torch.manual_seed(0)
    env = make_env("CartPole-v1")
    spec = spec_of(env, "CartPole-v1")
    data = collect(env, 500, seed=0)
    known = {"reward_fn": "apps.worlds.known:cartpole_reward", "done_fn": "apps.worlds.known:cartpole_done"}
    model = WorldModel(spec, ModelConfig(members=2, hidden=(16, 16), **known))
    x, y, _ = model.tensors(data)
    model.set_normalizer(x, y)
    venv = DreamVecEnv(model, data.obs, DreamConfig(n_envs=8, horizon=500, penalty=0.0), seed=0)
    obs = venv.reset()
    ended = 0
    for a in np.random.default_rng(0).integers(2, size=(60, 8)):
        nxt, rew, done, infos = venv.step(a)
        np.testing.assert_array_equal(rew, np.ones(8, np.float32))
        for i in range(8):
            last = infos[i]["terminal_observation"] if done[i] else nxt[i]
            out = bool(cartpole_done(None, None, torch.as_tensor(last)[None]).item())
            assert out == (done[i] and not infos[i]["TimeLimit.truncated"])
            ended += out
        obs = nxt
    assert ended > 0 and obs.shape == (8, 4)
