"""World models and dream environments: a known linear system is recovered, the Gymnasium checker passes on
DreamEnv, DreamVecEnv honours SB3's VecEnv contract and trains PPO/SAC/DQN, model files refuse other spaces."""

from __future__ import annotations

import tempfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

import apps.worlds  # noqa: F401  (registers genlab/Dream-<EnvId>)
from apps.worlds.agents import make_agent
from apps.worlds.config import AgentConfig, DreamConfig, ModelConfig, for_env
from apps.worlds.data import Transitions, collect
from apps.worlds.envs import DreamEnv, DreamVecEnv, starts_path
from apps.worlds.loop import fit_model
from apps.worlds.model import WorldModel
from apps.worlds.spaces import EnvSpec, make_env, spec_of
from shared.config import replace
from shared.errors import CheckpointError, ConfigError

# s' = A s + B a, reward = -|s|^2, never terminates; actions in [-1, 1]
A = np.array([[0.9, 0.2], [-0.1, 0.95]], np.float32)
B = np.array([[0.0], [0.5]], np.float32)
LINEAR = EnvSpec("Linear-v0", (-10.0, -10.0), (10.0, 10.0), "box", act_low=(-1.0,), act_high=(1.0,))


def _linear_data(n: int, seed: int) -> Transitions:
    rng = np.random.default_rng(seed)
    s = rng.uniform(-2, 2, (n, 2)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    nxt = s @ A.T + a @ B.T
    return Transitions(s, a, -(s**2).sum(1), nxt, np.zeros(n, bool), np.zeros(n, bool))


@pytest.fixture(scope="module")
def linear_model():
    torch.set_num_threads(1)
    cfg = for_env("Linear-v0")
    cfg = replace(
        cfg,
        model=ModelConfig(members=3, hidden=(200, 200)),
        model_train=replace(cfg.model_train, steps=1500, batch_size=128, checkpoint_every=10_000),
    )
    model, errors = fit_model(LINEAR, cfg, _linear_data(3000, 0), seed=0, fit_dir=None, warm=None)
    return model, errors


def test_fitted_model_recovers_a_known_linear_system(linear_model):
    model, errors = linear_model
    assert errors["state_nrmse"] < 0.1
    # least squares on the model's mean predictions at fresh points gives back A and B
    test = _linear_data(2000, 1)
    nxt, rew, p = model.mean_step(torch.as_tensor(test.obs), torch.as_tensor(test.actions))
    X = np.concatenate([test.obs, test.actions], axis=1)
    coef, *_ = np.linalg.lstsq(X, nxt.numpy(), rcond=None)
    np.testing.assert_allclose(coef[:2].T, A, atol=0.05)
    np.testing.assert_allclose(coef[2:].T, B, atol=0.05)
    rel = np.abs(rew.numpy() - test.rewards).mean() / np.abs(test.rewards).mean()
    assert rel < 0.1
    assert float(p.max()) < 0.5  # no termination was ever seen: the dream does not end episodes


def test_dream_vec_env_contract(linear_model):
    model, _ = linear_model
    starts = _linear_data(50, 2).obs
    venv = DreamVecEnv(model, starts, DreamConfig(n_envs=6, horizon=5), seed=0)
    obs = venv.reset()
    assert obs.shape == (6, 2) and obs.dtype == np.float32
    assert all(np.isclose(starts, o).all(axis=1).any() for o in obs)  # episodes start at real states
    for t in range(5):
        obs, rew, done, infos = venv.step(np.zeros((6, 1), np.float32))
        assert rew.shape == (6,) and done.shape == (6,) and len(infos) == 6
        if t < 4:
            assert not done.any() and all("terminal_observation" not in i for i in infos)
    # horizon reached: every env is done, truncated (not terminated), reset in the same step
    assert done.all()
    for o, info in zip(obs, infos):
        assert info["TimeLimit.truncated"] is True
        assert info["terminal_observation"].shape == (2,)
        assert not np.allclose(info["terminal_observation"], o)
        assert np.isclose(starts, o).all(axis=1).any()  # the new episode's first observation is a real start
    # seeding makes the dream reproducible
    venv.seed(3)
    a = venv.reset()
    venv.seed(3)
    np.testing.assert_array_equal(a, venv.reset())


def test_compiled_dream_steps_like_the_eager_one(linear_model):
    """--dream.compile runs the same transition as one torch.compile graph: same draws, same states."""
    model, _ = linear_model
    starts = _linear_data(50, 2).obs
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 6, 1)).astype(np.float32)
    runs = []
    for compiled in (False, True):
        venv = DreamVecEnv(model, starts, DreamConfig(n_envs=6, horizon=50, compile=compiled), seed=0)
        obs = [venv.reset()] + [venv.step(a)[0] for a in actions]
        runs.append(np.stack(obs))
    assert hasattr(venv.core._advance, "_torchdynamo_orig_callable")  # the compiled graph ran
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-4, atol=1e-5)


def test_bf16_dream_stays_close_to_the_float32_one(linear_model):
    """--dream.precision bfloat16 (eager and compiled): the nets run under bf16 autocast, the state and what the
    env returns stay float32, and a short dream from the same seed stays within bf16 rounding of float32's."""
    model, _ = linear_model
    starts = _linear_data(50, 2).obs
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 6, 1)).astype(np.float32)
    runs = []
    for compiled, precision in ((False, "float32"), (False, "bfloat16"), (True, "bfloat16")):
        cfg = DreamConfig(n_envs=6, horizon=50, compile=compiled, precision=precision)
        venv = DreamVecEnv(model, starts, cfg, seed=0)
        obs, rews = [venv.reset()], []
        for a in actions:
            o, r, _, _ = venv.step(a)
            obs.append(o)
            rews.append(r)
        assert obs[-1].dtype == np.float32 and rews[-1].dtype == np.float32
        runs.append((np.stack(obs), np.stack(rews)))
    scale = np.abs(runs[0][0]).mean()
    for obs, rew in runs[1:]:
        assert not np.array_equal(obs, runs[0][0])  # bf16 did run
        assert np.abs(obs - runs[0][0]).max() < 0.03 * scale
        assert np.abs(rew - runs[0][1]).max() < 0.03 * np.abs(runs[0][1]).mean()
    with pytest.raises(ConfigError, match="precision"):
        DreamConfig(precision="float16")


@pytest.mark.parametrize("heads_on", ["real", "predicted"])
def test_dream_terminates_where_the_real_env_does(heads_on):
    torch.set_num_threads(1)
    env = make_env("CartPole-v1")
    spec = spec_of(env, "CartPole-v1")
    cfg = for_env("CartPole-v1", "tiny")
    cfg = replace(
        cfg,
        model_train=replace(cfg.model_train, steps=1500, batch_size=128),
        model=ModelConfig(3, (200, 200), heads_on=heads_on),
    )
    data = collect(env, 1500, seed=0)
    model, errors = fit_model(spec, cfg, data, seed=0, fit_dir=None, warm=None)
    assert errors["done_accuracy"] > 0.95
    venv = VecMonitor(DreamVecEnv(model, data.obs, DreamConfig(n_envs=8, horizon=500), seed=0))
    venv.reset()
    ends = []
    for _ in range(200):
        _, _, done, infos = venv.step(np.random.default_rng(0).integers(2, size=8))
        ends += [i for i in infos if "episode" in i]
    # random play ends CartPole episodes after ~20 steps; the dream must end them too, as terminations
    assert len(ends) > 20
    assert np.mean([e["episode"]["l"] for e in ends]) < 60
    assert np.mean([e["TimeLimit.truncated"] for e in ends]) < 0.1


def test_heads_on_predicted_reads_dream_draws_and_leaves_the_dynamics_alone():
    """--model.heads-on predicted: the reward and termination nets are fitted on next states drawn from the
    ensemble as the dream draws them (each member for its own rows, inside the observation space), and their
    losses send no gradient into the ensemble (the dynamics are fitted exactly as with real next states)."""
    torch.manual_seed(0)
    model = WorldModel(LINEAR, ModelConfig(members=2, hidden=(16,), heads_on="predicted"))
    data = _linear_data(256, 0)
    x, y, b = model.tensors(data)
    model.set_normalizer(x, y)
    xb, yb, bb = (t.view(2, 128, -1) for t in (x, y, b))  # (E, B, .): member e's rows
    model((xb, yb, bb)).backward()
    with_heads = [p.grad.clone() for p in model.ensemble.parameters()]
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.reward_net.parameters())
    model.zero_grad()
    model.ensemble((xb, yb[..., :2])).backward()
    for g, p in zip(with_heads, model.ensemble.parameters()):
        torch.testing.assert_close(g, p.grad)
    draws = torch.stack([model._dreamed_next(xb) for _ in range(4000)])  # (4000, E, B, d)
    mean, var, _ = model.ensemble.predict(xb)
    torch.testing.assert_close((draws - xb[..., :2]).mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close((draws - xb[..., :2]).std(0), var.sqrt(), atol=0.05, rtol=0.05)
    assert float(draws.abs().max()) <= 10.0 and not draws.requires_grad


def test_ppo_settings_reach_the_agent():
    env = make_env("CartPole-v1")
    model = WorldModel(spec_of(env, "CartPole-v1"), ModelConfig(2, (8,)))
    x, y, _ = model.tensors(collect(env, 100, seed=0))
    model.set_normalizer(x, y)
    venv = DreamVecEnv(model, x[:, :4].numpy(), DreamConfig(n_envs=4, horizon=20))
    cfg = AgentConfig(algo="ppo", n_steps=64, batch_size=128, n_epochs=4, gae_lambda=0.98, ent_coef=0.01)
    agent = make_agent(cfg, venv, seed=0)
    assert (agent.n_steps, agent.batch_size, agent.n_epochs, agent.gae_lambda, agent.ent_coef) == (
        64,
        128,
        4,
        0.98,
        0.01,
    )
    auto = make_agent(AgentConfig(algo="ppo", gamma=0.98), venv, seed=0)  # 0 = the automatic choices
    assert (auto.n_steps, auto.batch_size, auto.gae_lambda) == (256, 256, 0.8)
    with pytest.raises(ConfigError, match="n-epochs"):
        AgentConfig(n_epochs=0)
    with pytest.raises(ConfigError, match="ent-coef"):
        AgentConfig(ent_coef=-0.01)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_sb3_discrete_agents_train_in_the_dream(algo, tmp_path, monkeypatch):
    # SB3's own logger would leave an empty $TMPDIR/SB3-<time> folder at every learn(); ours writes nowhere
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    env = make_env("CartPole-v1")
    spec = spec_of(env, "CartPole-v1")
    model = WorldModel(spec, ModelConfig(2, (16,)))
    x, y, _ = model.tensors(collect(env, 100, seed=0))
    model.set_normalizer(x, y)
    venv = VecNormalize(VecMonitor(DreamVecEnv(model, x[:, :4].numpy(), DreamConfig(n_envs=4, horizon=20))))
    agent = make_agent(AgentConfig(algo=algo, net=(8,)), venv, seed=0)
    agent.learn(300 if algo == "ppo" else 1100)
    assert agent.num_timesteps >= 300
    assert not list(tmp_path.glob("SB3-*"))


def test_sac_trains_in_a_box_action_dream(linear_model):
    model, _ = linear_model
    venv = VecMonitor(DreamVecEnv(model, _linear_data(20, 3).obs, DreamConfig(n_envs=2, horizon=10)))
    agent = make_agent(AgentConfig(algo="sac", net=(8,)), venv, seed=0)
    agent.learning_starts = 10
    agent.learn(60)
    assert len(agent.ep_info_buffer) >= 5


def test_dream_env_passes_the_gymnasium_checker(linear_model, tmp_path):
    model, _ = linear_model
    env = DreamEnv(model, starts=_linear_data(20, 4).obs, dream=DreamConfig(n_envs=1, horizon=30))
    check_env(env, skip_render_check=True)
    # the registered id loads a saved model and its start states
    path = tmp_path / "model"
    model.save(path)
    np.save(starts_path(path), _linear_data(20, 4).obs)
    with pytest.raises(ConfigError, match="Linear-v0"):
        gym.make("genlab/Dream-CartPole-v1", model=str(path))


def test_registered_dream_env_runs_cartpole(tmp_path):
    env = make_env("CartPole-v1")
    spec = spec_of(env, "CartPole-v1")
    model = WorldModel(spec, ModelConfig(2, (16,)))
    data = collect(env, 200, seed=0)
    x, y, _ = model.tensors(data)
    model.set_normalizer(x, y)
    model.save(tmp_path / "model")
    np.save(starts_path(tmp_path / "model"), data.obs)
    dream = gym.make("genlab/Dream-CartPole-v1", model=str(tmp_path / "model"))
    obs, _ = dream.reset(seed=0)
    assert dream.observation_space.contains(obs)
    obs, r, term, trunc, info = dream.step(1)
    assert np.isfinite(r) and "disagreement" in info
    check_env(dream.unwrapped, skip_render_check=True)


def test_model_file_of_other_spaces_is_refused(tmp_path):
    cart = spec_of(make_env("CartPole-v1"), "CartPole-v1")
    pend = spec_of(make_env("Pendulum-v1"), "Pendulum-v1")
    WorldModel(cart, ModelConfig(2, (8,))).save(tmp_path / "m")
    with pytest.raises(CheckpointError, match="does not match the environment's spaces"):
        WorldModel.load(tmp_path / "m", expect=pend)
    (tmp_path / "m.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable world model"):
        WorldModel.load(tmp_path / "m", expect=cart)


def test_unsupported_spaces_and_ids_give_one_line_errors():
    with pytest.raises(ConfigError, match="unknown Gymnasium environment"):
        make_env("NoSuchEnv-v9")
    with pytest.raises(ConfigError, match="Tuple observation space"):
        spec_of(make_env("Blackjack-v1"), "Blackjack-v1")

    class TextObs(gym.Env):
        observation_space = gym.spaces.Text(8)
        action_space = gym.spaces.Discrete(2)

    with pytest.raises(ConfigError, match="Text observation space"):
        spec_of(TextObs(), "Text-v0")

    class DictObs(gym.Env):
        observation_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,))})
        action_space = gym.spaces.Discrete(2)

    with pytest.raises(ConfigError, match="Dict observation space"):
        spec_of(DictObs(), "Dict-v0")
