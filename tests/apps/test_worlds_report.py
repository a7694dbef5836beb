"""The worlds report (apps/worlds/report.py) on hand-made run folders: a full run (2 seeds x 2 rounds, model-free
baselines, an extra metric), the same run with a pixel section and a seed still running, a step-by-step run with
nothing but a minimal metrics.json, and a folder with no metrics at all. No environments or models are built."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from apps.worlds.config import for_env
from apps.worlds.report import build_report
from shared.errors import DataError
from shared.report import figures
from shared.runs import RunDir

PNG = "data:image/png;base64,"
METRICS = {
    "env": "CartPole-v1", "algo": "ppo", "seeds": 2, "real_return": 481.37, "real_return_std_seeds": 12.61,
    "real_return_min_seed": 468.76, "real_return_std_episodes": 9.5, "real_steps_max": 9000,
    "real_steps_mean": 8000.0, "real_step_cap": 20000, "target_return": 475.0, "seeds_at_target": 1,
    "eval_episodes": 20, "model_state_nrmse": 0.0731, "model_reward_rmse": 0.0123, "model_h10_error": 0.211,
    "model_h50_error": 0.934, "dream_steps_per_s_in_training": 5432.1, "zoo_return": 500.0, "zoo_steps": 100000,
    "real_steps_ratio_to_zoo": 0.09, "baseline_return": 152.91, "baseline_return_std_seeds": 40.2,
    "baseline_steps": 20000, "wall_s": 321.5, "my_extra_metric": 0.777,
}  # fmt: skip
SECTIONS = [
    "Headline: real return and real steps",
    "Real return vs real steps",
    "Per-seed results",
    "Model quality",
    "Predicted vs real trajectory",
    "Per-round results and timings",
]


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _trajectory(rng: np.random.Generator, steps: int = 60, d: int = 4) -> dict:
    real = np.cumsum(rng.normal(0, 0.1, (steps + 1, d)), axis=0)
    model = real + np.linspace(0, 1, steps + 1)[:, None] * rng.normal(0, 0.2, d)
    error = np.sqrt(((model - real) ** 2).mean(1)) / real.std()
    return {"real": real.tolist(), "model": model.tolist(), "error": error.tolist(), "h1": float(error[1]),
            "h10": float(error[10]), "h50": float(error[50])}  # fmt: skip


def _full_run(root: Path) -> RunDir:
    run = RunDir.open("worlds", "fake", root)
    run.write_metrics(METRICS)
    rng = np.random.default_rng(0)
    for seed, final_return in ((0, 493.98), (1, 468.76)):
        curve = []
        for r, steps in enumerate((1000, 3000 + 6000 * seed)):
            mean = 100.0 + 350 * r + seed
            curve.append([steps, mean, 20.0])
            _write(
                run.path / f"seed-{seed}" / f"round-{r}" / "result.json",
                {"round": r, "real_steps": steps, "eval_mean": mean, "eval_std": 20.0, "collect_returns": [20.0, 31.0],
                 "dream_return": 180.0 + r, "dream_steps": 60000, "model_state_nrmse": 0.1 - 0.02 * r,
                 "model_reward_rmse": 0.01, "model_done_accuracy": 0.987, "time_collect_s": 1.5, "time_fit_s": 12.25,
                 "time_agent_s": 40.0, "time_eval_s": 2.0},
            )  # fmt: skip
        _write(
            run.path / f"seed-{seed}" / "final.json",
            {"seed": seed, "algo": "ppo", "real_steps": curve[-1][0], "rounds": 2, "return_mean": final_return,
             "return_std": 9.5, "returns": [final_return] * 20, "curve": curve, "trajectory": _trajectory(rng),
             "model_state_nrmse": 0.0731, "model_reward_rmse": 0.0123, "dream_time_s": 80.0, "dream_steps": 120000},
        )  # fmt: skip
        _write(
            run.path / f"baseline-{seed}.json",
            {"seed": seed, "algo": "ppo", "real_steps": 20000, "return_mean": 150.0 + seed, "return_std": 30.0,
             "returns": [150.0] * 20, "curve": [[4000 * k, 20.0 * k, 5.0] for k in range(1, 6)], "time_s": 60.0},
        )  # fmt: skip
    return run


def test_full_run(tmp_path):
    run = _full_run(tmp_path)
    cfg = for_env("CartPole-v1")
    path = build_report(run, cfg)
    assert path == run.report_path and path.is_file()
    page = path.read_text()
    for title in SECTIONS:
        assert title in page
    assert "Pixel environment" not in page
    # headline: dream agent, baseline, zoo (published, muted) and the step ratio
    for text in ("481.4", "12.61", "468.8", "9,000", "152.9", "20,000", "100,000", "rl-baselines3-zoo", "0.09×"):
        assert text in page, text
    assert 'class="muted' in page  # the zoo row is set apart as a published figure
    assert "my_extra_metric" in page and "0.777" in page and "wall_s" in page
    assert page.count(PNG) == 3  # learning curves, open-loop error, trajectory
    assert ">494<" in page and ">468.8<" in page  # per-seed final returns, formatted
    assert ">12.25<" in page and ">0.987<" in page  # per-round fit time and termination accuracy
    assert "No seed-" not in page and "missing" not in page


def test_pixels_and_unfinished_seed(tmp_path):
    run = _full_run(tmp_path)
    (run.path / "seed-1" / "final.json").unlink()  # seed 1 still running: rounds only
    frames = np.random.default_rng(1).random((2, 16, 48))
    pixels = run.path / "pixels"
    _write(pixels / "pixels.json", {"env": "CarRacing-v3", "real_return": 612.5, "vae": {"recon_mse": 0.0042}})
    (pixels / "dream_strip.png").write_bytes(figures.png_bytes(np.concatenate(list(frames))))
    page = build_report(run, for_env("CartPole-v1")).read_text()
    assert "Pixel environment" in page and "612.5" in page and "vae.recon_mse" in page
    assert "real frames (top) beside decoded dream frames (bottom)" in page
    assert "Seeds without final.json (still running or stopped): 1" in page
    assert page.count(PNG) == 4


def test_minimal_metrics_only(tmp_path):
    run = RunDir.open("worlds", "steps", tmp_path)
    run.write_metrics(
        {"env": "Pendulum-v1", "real_return": -612.34, "real_return_std_episodes": 55.5, "real_steps_max": 400,
         "eval_episodes": 2, "zoo_return": math.nan, "zoo_steps": 0}
    )  # fmt: skip
    (run.path / "pixels").mkdir()  # an empty pixel folder: the section says what is missing
    cfg = for_env("Pendulum-v1", "tiny")
    page = build_report(run, cfg).read_text()
    for title in SECTIONS[:4]:
        assert title in page
    assert "-612.3" in page and "55.5" in page and "400" in page
    assert "rl-baselines3-zoo</td>" not in page  # no zoo row without a published figure
    assert PNG not in page
    for note in ("No seed-*/final.json", "No baseline-*.json", "No learning curves", "result.json",
                 "pixels/pixels.json is missing", "dream_strip.png is missing", "Preset"):  # fmt: skip
        assert note in page, note


def test_missing_metrics_is_a_data_error(tmp_path):
    run = RunDir.open("worlds", "empty", tmp_path)
    with pytest.raises(DataError, match="metrics.json"):
        build_report(run, for_env("CartPole-v1"))
