"""Reward and termination functions known in closed form, for `--model.reward-fn` / `--model.done-fn`.

Where the reward or the end of an episode is a known function of the state (the classic-control tasks), a user can
give it instead of having the model learn it, as MBPO (Janner et al. 2019) does with its per-task termination
functions: the dream then scores and ends episodes exactly as the real environment would from the same states,
and only the dynamics are learned. Each function takes batched tensors obs (B, d), raw actions (B,) or (B, k) and
next_obs (B, d) and returns (B,): a reward, or a termination probability in {0, 1}. They follow Gymnasium's
sources (gymnasium/envs/classic_control); tests/apps/test_worlds_known.py checks them against the real envs.

    python -m apps.worlds run --env Pendulum-v1 --model.reward-fn apps.worlds.known:pendulum_reward
    python -m apps.worlds run --env CartPole-v1 --model.done-fn apps.worlds.known:cartpole_done

The acceptance runs of `make worlds` learn both (Pendulum's item asks for a learned reward).
"""

from __future__ import annotations

import math

import torch

CARTPOLE_X_LIMIT = 2.4  # CartPoleEnv.x_threshold
CARTPOLE_THETA_LIMIT = 12 * 2 * math.pi / 360  # CartPoleEnv.theta_threshold_radians
PENDULUM_MAX_TORQUE = 2.0  # PendulumEnv.max_torque


def cartpole_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """+1 for every step, the one that ends the episode included."""
    return torch.ones(obs.shape[0], dtype=torch.float32, device=obs.device)


def cartpole_done(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """1 where the next state has the cart beyond +-2.4 or the pole beyond +-12 degrees."""
    x, theta = next_obs[:, 0], next_obs[:, 2]
    return ((x.abs() > CARTPOLE_X_LIMIT) | (theta.abs() > CARTPOLE_THETA_LIMIT)).float()


def pendulum_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """-(theta^2 + 0.1 theta_dot^2 + 0.001 u^2) of the state BEFORE the step, obs = (cos theta, sin theta,
    theta_dot), theta in [-pi, pi), u the torque clipped to +-2."""
    theta = torch.atan2(obs[:, 1], obs[:, 0])
    u = action.reshape(obs.shape[0], -1)[:, 0].clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)
    return -(theta**2 + 0.1 * obs[:, 2] ** 2 + 0.001 * u**2)
