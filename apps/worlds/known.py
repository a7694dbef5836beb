"""Reward and termination functions known in closed form, for `--model.reward-fn` / `--model.done-fn`.

Where the reward or the end of an episode is a known function of the state (the classic-control tasks), a user can
give it instead of having the model learn it, as MBPO (Janner et al. 2019) does with its per-task termination
functions: the dream then scores and ends episodes exactly as the real environment would from the same states,
and only the dynamics are learned. Each function takes batched tensors obs (B, d), raw actions (B,) or (B, k) and
next_obs (B, d) and returns (B,): a reward, or a termination probability in {0, 1}. They follow Gymnasium's
sources (gymnasium/envs/classic_control, box2d/lunar_lander.py); tests/apps/test_worlds_known.py checks them
against the real envs.

    python -m apps.worlds run --env Pendulum-v1 --model.reward-fn apps.worlds.known:pendulum_reward
    python -m apps.worlds run --env CartPole-v1 --model.done-fn apps.worlds.known:cartpole_done

The acceptance runs of `make worlds` learn both (Pendulum's item asks for a learned reward).

Where only part of a reward is known, `--model.reward-base` takes that part and the reward net learns the rest
(the real reward minus it): LunarLander's shaping and fuel terms are a closed function of (s, a, s'), its +-100
for crashing or coming to rest are not (they depend on Box2D contacts), so the net learns only those:

    python -m apps.worlds run --env LunarLander-v3 --model.reward-base apps.worlds.known:lunarlander_reward_base

`lunarlander_out_of_bounds` is likewise only the part of LunarLander's termination that is known (|x| >= 1).
`--model.end-reward` takes the reward of the step that ends an episode: `lunarlander_end_reward` judges LunarLander's
+-100 from the state before that step (a lander that comes to rest was still; one that crashes was moving), the
termination itself staying learned. With both, the reward net has nothing left but zeros to learn:

    python -m apps.worlds run --env LunarLander-v3 --model.reward-base apps.worlds.known:lunarlander_reward_base \
        --model.end-reward apps.worlds.known:lunarlander_end_reward
"""

from __future__ import annotations

import math

import torch

CARTPOLE_X_LIMIT = 2.4  # CartPoleEnv.x_threshold
CARTPOLE_THETA_LIMIT = 12 * 2 * math.pi / 360  # CartPoleEnv.theta_threshold_radians
PENDULUM_MAX_TORQUE = 2.0  # PendulumEnv.max_torque
LUNAR_MAIN_COST, LUNAR_SIDE_COST = 0.30, 0.03  # LunarLander.step: reward per unit of engine power
# Speed (|(vx, vy)| in observation units) below which a lander whose episode ends is judged landed. Measured on 284
# real episodes' last steps (heuristic, noisy-heuristic and random pilots, seeds 0-299): every one of 91 landings
# had speed < 0.002 the step before it ended, 3 of 193 crashes had < 0.2; tests/apps/test_worlds_known.py checks
# the rule on 90 other episodes.
LUNAR_LANDED_SPEED = 0.2


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


def lunarlander_shaping(obs: torch.Tensor) -> torch.Tensor:
    """LunarLander's potential of obs (B, 8) = (x, y, vx, vy, angle, angular v, left leg, right leg):
    -100 |(x, y)| - 100 |(vx, vy)| - 100 |angle| + 10 per leg on the ground (gymnasium/envs/box2d/lunar_lander.py)."""
    return (
        -100 * torch.hypot(obs[:, 0], obs[:, 1])
        - 100 * torch.hypot(obs[:, 2], obs[:, 3])
        - 100 * obs[:, 4].abs()
        + 10 * obs[:, 6]
        + 10 * obs[:, 7]
    )


def lunarlander_reward_base(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """The known part of LunarLander's reward: shaping(s') - shaping(s) - 0.3 x main-engine power - 0.03 x
    side-engine power. It is the whole reward of every step that does not end the episode; on the step that does,
    the env replaces it by -100 (crash, or |x| >= 1) or +100 (the lander came to rest), left to the reward net.
    Actions: (B,) discrete (0 noop, 1 left, 2 main, 3 right) or (B, 2) continuous (main > 0 fires at power
    0.5-1; |lateral| > 0.5 fires a side engine at power 0.5-1)."""
    a = action.reshape(obs.shape[0], -1)
    if a.shape[1] == 1:  # Discrete(4): full power
        a = a[:, 0].long()
        main, side = (a == 2).float(), ((a == 1) | (a == 3)).float()
    else:
        a = a.float().clamp(-1, 1)  # the env clips continuous actions the same way
        main = torch.where(a[:, 0] > 0, (a[:, 0] + 1) * 0.5, torch.zeros_like(a[:, 0]))
        side = torch.where(a[:, 1].abs() > 0.5, a[:, 1].abs(), torch.zeros_like(a[:, 1]))
    shaping = lunarlander_shaping(next_obs) - lunarlander_shaping(obs)
    return shaping - LUNAR_MAIN_COST * main - LUNAR_SIDE_COST * side


def lunarlander_out_of_bounds(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """1 where the lander left the screen sideways (|x'| >= 1), the one LunarLander termination that is a closed
    function of the state; crashes and coming to rest depend on Box2D contacts and are not covered."""
    return (next_obs[:, 0].abs() >= 1.0).float()


def lunarlander_end_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """LunarLander's reward on the step that ends an episode: +100 where the lander was still before it (speed
    of obs < LUNAR_LANDED_SPEED: Box2D put it to sleep, the env's "not awake" landing) and did not leave the
    screen, -100 otherwise (its body hit the ground, or |x'| >= 1). An approximation of the env's contact-based
    rule from the state, right on 281 of 284 real episode ends; which steps end an episode stays learned."""
    still = torch.hypot(obs[:, 2], obs[:, 3]) < LUNAR_LANDED_SPEED
    inside = next_obs[:, 0].abs() < 1.0
    return torch.where(still & inside, 100.0, -100.0).to(torch.float32)
