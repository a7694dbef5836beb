"""Known reward and termination functions (apps/worlds/known.py): equal to the real environments' on real
transitions, and the dream uses them in place of the learned heads when the model config names them."""

from __future__ import annotations

import numpy as np
import torch

from apps.worlds.config import DreamConfig, ModelConfig
from apps.worlds.data import collect
from apps.worlds.envs import DreamVecEnv
from apps.worlds.known import cartpole_done, cartpole_reward, pendulum_reward
from apps.worlds.model import WorldModel
from apps.worlds.spaces import make_env, spec_of


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
