"""benchmarks/worlds_model_free.py: the budget is whole PPO updates under --steps, and bad input is refused in one
line before any training."""

from __future__ import annotations

import pytest

from benchmarks.worlds_model_free import N_ENVS, ZOO, main
from shared.errors import ConfigError


def test_zoo_settings_and_bad_budgets():
    assert N_ENVS * ZOO.n_steps == 16_384 and ZOO.batch_size == 64 and ZOO.gamma == 0.999
    with pytest.raises(ConfigError, match="at least one update"):
        main(["--steps", "10000"])
    with pytest.raises(ConfigError, match="comma-separated"):
        main(["--seeds", "a,b"])
