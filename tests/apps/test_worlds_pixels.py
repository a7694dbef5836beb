"""The CarRacing pixel pipeline: the latent dream's SB3 VecEnv contract, the real-env wrapper passing the env
checkers, the MDN loss against closed forms, a tiny end-to-end run on the real CarRacing-v3 (resumable), and
determinism of the collected frames."""

from __future__ import annotations

import json
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecCheckNan, VecMonitor

from apps.worlds.latent import (
    LatentDreamConfig,
    LatentDreamVecEnv,
    LatentObservation,
    LatentRNN,
    Prediction,
    SequenceBatches,
    mixture_log_prob,
    sample_latent,
)
from apps.worlds.pixels import Rollouts, build_vae, collect_rollouts, preset, run_pixels
from shared.config import replace
from shared.errors import ConfigError

L, A, H = 4, 3, 8
CAR_ACTIONS = gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.ones(3, np.float32), dtype=np.float32)


def _net(done_bias: float | None = None) -> LatentRNN:
    torch.manual_seed(0)
    net = LatentRNN(L, A, hidden=H, mixtures=2)
    if done_bias is not None:
        with torch.no_grad():
            net.head.bias[-1] = done_bias  # the termination logit: -20 never ends, +20 ends every step
    return net


def _dream(net: LatentRNN, n_envs=3, horizon=5, temperature=1.0, seed=0):
    g = torch.Generator().manual_seed(1)
    start_z, start_h = torch.randn(7, L, generator=g), torch.rand(7, H, generator=g) - 0.5
    cfg = LatentDreamConfig(n_envs=n_envs, horizon=horizon, temperature=temperature)
    return LatentDreamVecEnv(net, start_z, start_h, CAR_ACTIONS, cfg, seed=seed), start_z, start_h


def _is_start(obs: np.ndarray, start_z: torch.Tensor, start_h: torch.Tensor) -> bool:
    starts = torch.cat([start_z, start_h], dim=1).numpy()
    return bool(np.isclose(starts, obs[None], atol=1e-6).all(axis=1).any())


def test_dream_spaces_shapes_and_dtypes():
    venv, start_z, start_h = _dream(_net(-20.0))
    assert venv.observation_space.shape == (L + H,) and venv.action_space == CAR_ACTIONS
    obs = venv.reset()
    assert obs.shape == (3, L + H) and obs.dtype == np.float32
    assert all(_is_start(o, start_z, start_h) for o in obs)
    obs, rewards, dones, infos = venv.step(np.stack([CAR_ACTIONS.sample() for _ in range(3)]))
    assert obs.shape == (3, L + H) and obs.dtype == np.float32 and np.isfinite(obs).all()
    assert rewards.shape == (3,) and rewards.dtype == np.float32
    assert dones.shape == (3,) and dones.dtype == bool and not dones.any()
    assert isinstance(infos, list) and len(infos) == 3 and all(i == {} for i in infos)
    assert all(venv.observation_space.contains(o) for o in obs)


def test_dream_truncates_at_the_horizon_with_same_step_reset():
    venv, start_z, start_h = _dream(_net(-20.0), horizon=5)
    venv.reset()
    a = np.zeros((3, 3), np.float32)
    for _ in range(4):
        _, _, dones, _ = venv.step(a)
        assert not dones.any()
    obs, _, dones, infos = venv.step(a)
    assert dones.all()
    for o, info in zip(obs, infos):
        assert info["TimeLimit.truncated"] is True
        term = info["terminal_observation"]
        assert term.shape == (L + H,) and term.dtype == np.float32
        assert not np.array_equal(term, o)
        assert _is_start(o, start_z, start_h)  # the next episode's first observation, in the same step
    _, _, dones, _ = venv.step(a)  # the step counters restarted
    assert not dones.any()


def test_dream_termination_is_not_truncation():
    venv, start_z, start_h = _dream(_net(20.0), horizon=5)
    venv.reset()
    obs, _, dones, infos = venv.step(np.zeros((3, 3), np.float32))
    assert dones.all()
    assert all(info["TimeLimit.truncated"] is False and "terminal_observation" in info for info in infos)
    assert all(_is_start(o, start_z, start_h) for o in obs)


def test_dream_step_is_one_batched_gru_step_and_seeded():
    net = _net(-20.0)
    venv, _, _ = _dream(net, temperature=0.0)
    obs = venv.reset()
    actions = np.array([[2.0, -1.0, 0.5], [0.3, 0.2, 0.1], [-0.5, 0.9, 0.0]], np.float32)  # first one clipped
    nxt, rewards, _, _ = venv.step(actions)
    z, h = torch.as_tensor(obs[:, :L]), torch.as_tensor(obs[:, L:])
    clipped = torch.as_tensor(np.clip(actions, CAR_ACTIONS.low, CAR_ACTIONS.high))
    with torch.no_grad():
        pred, h1 = net.step(z, clipped, h)
    np.testing.assert_allclose(nxt[:, L:], h1.numpy(), atol=1e-6)
    np.testing.assert_allclose(nxt[:, :L], sample_latent(pred, 0.0).numpy(), atol=1e-6)
    np.testing.assert_allclose(rewards, pred.reward.numpy(), atol=1e-6)
    # seeded resets and noise: the same seed gives the same trajectory
    runs = []
    for _ in range(2):
        venv, _, _ = _dream(net, temperature=1.0)
        venv.seed(5)
        out = [venv.reset()] + [venv.step(actions)[0] for _ in range(3)]
        runs.append(np.stack(out))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_dream_trains_an_sb3_agent():
    venv, _, _ = _dream(_net(), n_envs=4, horizon=8)
    env = VecMonitor(VecCheckNan(venv, raise_exception=True))
    agent = PPO("MlpPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    agent.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default would leave an empty $TMPDIR/SB3-<time>
    agent.learn(64)
    assert agent.num_timesteps >= 64 and len(agent.ep_info_buffer) > 0


def test_dream_rejects_bad_starts():
    with pytest.raises(Exception, match="start_h"):
        LatentDreamVecEnv(_net(), torch.zeros(3, L), torch.zeros(2, H), CAR_ACTIONS, LatentDreamConfig())


def test_mixture_log_prob_closed_forms():
    z = torch.tensor([[0.3, -1.2]])
    mu, log_std = torch.tensor([[[0.1], [0.5]]]), torch.tensor([[[-0.2], [0.4]]])
    pred = Prediction(torch.zeros(1, 2, 1), mu, log_std, torch.zeros(1), torch.zeros(1))
    normal = torch.distributions.Normal(mu[..., 0], log_std.exp()[..., 0]).log_prob(z)
    torch.testing.assert_close(mixture_log_prob(pred, z), normal)
    # two equal components are the same distribution; two distinct ones average their densities
    twice = Prediction(torch.randn(1, 2, 2), mu.repeat(1, 1, 2), log_std.repeat(1, 1, 2), pred[3], pred[4])
    torch.testing.assert_close(mixture_log_prob(twice, z), normal)
    mix = Prediction(torch.zeros(1, 2, 2), torch.cat([mu, mu + 1], -1), log_std.repeat(1, 1, 2), pred[3], pred[4])
    other = torch.distributions.Normal(mu[..., 0] + 1, log_std.exp()[..., 0]).log_prob(z)
    torch.testing.assert_close(mixture_log_prob(mix, z), torch.log(0.5 * normal.exp() + 0.5 * other.exp()))


def test_sequence_windows_stay_inside_episodes():
    lengths, starts = np.array([3, 10]), np.array([0, 4])  # frames 0..3 and 4..14
    f = 15
    frame_id = torch.arange(f, dtype=torch.float32)[:, None]
    b = SequenceBatches(frame_id, frame_id, torch.ones(f, A), torch.ones(f), torch.zeros(f), starts, lengths, 5, 64)
    mu, _, actions, rewards, _, mask = b.batch(0)
    assert mu.shape == (64, 6, 1) and actions.shape == (64, 5, A) and mask.shape == (64, 5)
    first = mu[:, 0, 0].long()
    in_short = first <= 3
    assert (mask[in_short].sum(1) == 3 - first[in_short]).all()  # the 3-step episode is padded and masked
    assert (mask[~in_short] == 1).all() and (first[~in_short] <= 4 + 10 - 5).all()
    steps = mu[:, 1:, 0] - mu[:, :-1, 0]
    assert (steps[mask.bool()] == 1).all()  # consecutive frames of one episode where valid
    assert (rewards == mask).all()
    torch.testing.assert_close(
        b.batch(3)[0],
        SequenceBatches(
            frame_id, frame_id, torch.ones(f, A), torch.ones(f), torch.zeros(f), starts, lengths, 5, 64
        ).batch(3)[0],
    )


def test_real_wrapper_passes_the_env_checkers():
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    cfg = preset("tiny")
    torch.manual_seed(0)
    vae, net = build_vae(cfg), LatentRNN(cfg.latent_dim, 3, cfg.hidden, cfg.mixtures)
    env = LatentObservation(gym.make("CarRacing-v3", max_episode_steps=20), vae, net, cfg.frame_size, 12)
    assert env.observation_space.shape == (cfg.latent_dim + cfg.hidden,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check(env, skip_render_check=True)
        sb3_check(env, warn=False)
    obs, _ = env.reset(seed=0)
    assert np.all(obs[cfg.latent_dim :] == 0)  # h_0 = 0
    obs, *_ = env.step(np.array([0.0, 1.0, 0.0], np.float32))
    assert env.observation_space.contains(obs) and np.any(obs[cfg.latent_dim :] != 0)


def test_config_errors():
    with pytest.raises(ConfigError, match="preset"):
        preset("huge")
    with pytest.raises(ConfigError, match="algo"):
        replace(preset("tiny"), agent=replace(preset("tiny").agent, algo="dqn"))
    with pytest.raises(ConfigError, match="not RGB frames"):
        collect_rollouts(replace(preset("tiny"), env="Pendulum-v1"), seed=0)


# ---------------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("pixels")
    return folder, run_pixels(preset("tiny"), folder, seed=0)


def test_tiny_run_on_carracing(tiny_run):
    folder, out = tiny_run
    cfg = preset("tiny")
    assert json.loads((folder / "pixels.json").read_text()) == out
    assert out["real_steps"] == cfg.frames and out["eval_episodes"] == cfg.eval_episodes == len(out["real_returns"])
    numbers = [v for k, v in out.items() if isinstance(v, float)] + list(out["timings"].values())
    assert all(math.isfinite(v) for v in numbers), out
    assert 0 <= out["vae_recon_mse"] < 1 and out["dream_steps"] >= cfg.agent.dream_steps
    for name in ("vae", "dynamics", "agent"):
        assert (folder / f"{name}.safetensors").is_file()
    strip = np.asarray(Image.open(folder / "dream_strip.png"))
    assert strip.ndim == 3 and strip.shape[1] > 2 * strip.shape[0]  # two rows of 8 frames


def test_tiny_run_resumes_by_stage(tiny_run):
    folder, out = tiny_run
    assert run_pixels(preset("tiny"), folder, seed=0) == out  # finished: read back
    (folder / "pixels.json").unlink()
    (folder / "agent.json").unlink()  # redo the agent and the evaluation; earlier stages are reused
    again = run_pixels(preset("tiny"), folder, seed=0)
    assert {k: again["timings"][k] for k in ("collect_s", "vae_s", "dynamics_s")} == {
        k: out["timings"][k] for k in ("collect_s", "vae_s", "dynamics_s")
    }
    assert again["real_returns"] == out["real_returns"] and again["dream_steps"] == out["dream_steps"]
    with pytest.raises(ConfigError, match="another config"):
        run_pixels(replace(preset("tiny"), frames=100), folder, seed=0)


def test_collected_frames_are_determined_by_the_seed(tiny_run):
    folder, _ = tiny_run
    cfg = preset("tiny")
    saved = Rollouts.load(folder)
    again = collect_rollouts(cfg, seed=0)
    np.testing.assert_array_equal(again.frames, saved.frames)
    np.testing.assert_array_equal(again.actions, saved.actions)
    np.testing.assert_array_equal(again.lengths, saved.lengths)
    assert again.frames.shape == (cfg.frames + len(again.starts), 64, 64, 3) and again.frames.dtype == np.uint8
    other = collect_rollouts(replace(cfg, frames=40), seed=1)
    assert not np.array_equal(other.frames[:20], saved.frames[:20])
