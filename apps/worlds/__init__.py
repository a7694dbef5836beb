"""World models of Gymnasium environments as batched dream environments for Stable-Baselines3 agents.

Importing the package registers `genlab/Dream-<EnvId>` for every registered Gymnasium id (see envs.py).
"""

from apps.worlds.envs import register_dream_envs

register_dream_envs()
