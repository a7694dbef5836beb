"""The loop's early stop (apps/worlds/loop.py): with --early-stop a seed stops at the first round whose evaluation
reaches --target-return; with --no-early-stop it uses every round of its budget."""

from __future__ import annotations

import json

import pytest

from apps.worlds.config import for_env
from apps.worlds.loop import run_seed
from shared.config import replace
from shared.runs import RunDir


@pytest.mark.parametrize("early_stop, rounds", [(True, 1), (False, 2)])
def test_early_stop_decides_how_many_rounds_run(tmp_path, early_stop, rounds):
    cfg = replace(for_env("CartPole-v1", "tiny"), target_return=float("-inf"), early_stop=early_stop)
    cfg = replace(cfg, run_name="t", runs_dir=str(tmp_path), baseline=False)
    out = run_seed(cfg, 0, RunDir.for_config("worlds", cfg))
    assert out["rounds"] == rounds
    saved = json.loads((tmp_path / "worlds" / "t" / "seed-0" / "final.json").read_text())
    assert saved["rounds"] == rounds and saved["real_steps"] == (200 if rounds == 1 else 300)
