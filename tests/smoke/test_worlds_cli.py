"""Smoke: `python -m apps.worlds` as a subprocess on the tiny preset: the whole loop (world model, dream-trained
agent, model-free baseline, report), resume, determinism, the step-by-step commands, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, runs: Path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "apps.worlds", args[0], "--preset", "tiny", *args[1:], "--runs-dir", str(runs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def _metrics(runs: Path, name: str) -> dict:
    return json.loads((runs / "worlds" / name / "metrics.json").read_text())


def test_tiny_loop_end_to_end_resumes_and_is_deterministic(tmp_path):
    proc = _run("run", "--env", "CartPole-v1", "--run-name", "t", runs=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "worlds" / "t"
    m = _metrics(tmp_path, "t")
    assert m["env"] == "CartPole-v1" and m["algo"] == "ppo" and m["seeds"] == 1
    assert 0 < m["real_steps_max"] <= 400 and 8 <= m["real_return"] <= 500
    assert m["baseline_steps"] == 400 and "baseline_return" in m
    for key in ("model_state_nrmse", "model_h10_error", "dream_steps_per_s_in_training", "wall_s"):
        assert key in m, key
    assert (run / "report.html").stat().st_size > 10_000
    assert (run / "seed-0" / "round-0" / "agent.zip").is_file()
    assert (run / "seed-0" / "round-0" / "model.safetensors").is_file()
    # a second call finds every round done and only re-summarises
    again = _run("run", "--env", "CartPole-v1", "--run-name", "t", runs=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "round 0:" not in again.stderr
    assert _metrics(tmp_path, "t")["real_return"] == m["real_return"]
    # a fresh run with the same seeds reproduces the figures
    other = _run("run", "--env", "CartPole-v1", "--run-name", "u", runs=tmp_path)
    assert other.returncode == 0, other.stderr[-3000:]
    n = _metrics(tmp_path, "u")
    for key in ("real_return", "real_steps_max", "model_state_nrmse", "baseline_return"):
        assert n[key] == m[key], key


def test_step_by_step_commands_on_a_box_action_env(tmp_path):
    base = ("--env", "Pendulum-v1", "--run-name", "p")
    for cmd in ("collect", "fit", "dream", "train", "collect", "evaluate", "report"):
        proc = _run(cmd, *base, runs=tmp_path)
        assert proc.returncode == 0, f"{cmd}: {proc.stderr[-3000:]}"
    run = tmp_path / "worlds" / "p"
    m = _metrics(tmp_path, "p")
    assert m["real_steps_max"] == 300 and -2000 < m["real_return"] <= 0  # 200 random + 100 with the agent
    assert m["dream_steps_per_s"] > 0 and "model_state_nrmse" in m
    assert (run / "samples" / "dream.csv").is_file() and (run / "agent.zip").is_file()
    assert (run / "report.html").is_file()


def test_bad_input_gives_one_line_errors(tmp_path):
    cases = [
        (("run", "--env", "NoSuchEnv-v3"), "unknown Gymnasium environment"),
        (("run", "--env", "Blackjack-v1"), "Tuple observation space"),
        (("fit", "--env", "CartPole-v1", "--run-name", "empty"), "no transitions file"),
    ]
    for args, message in cases:
        proc = _run(*args, runs=tmp_path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr[-2000:]
    # a CartPole model used as a Pendulum dream is refused
    assert _run("collect", "--env", "CartPole-v1", "--run-name", "c", runs=tmp_path).returncode == 0
    assert _run("fit", "--env", "CartPole-v1", "--run-name", "c", runs=tmp_path).returncode == 0
    proc = _run("dream", "--env", "Pendulum-v1", "--run-name", "c", runs=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]  # (after a note that the run's config changed)
    assert last.startswith("error:") and "does not match the environment's spaces" in last


def test_pixel_env_runs_the_world_models_pipeline(tmp_path):
    proc = _run("run", "--env", "CarRacing-v3", "--run-name", "car", runs=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = _metrics(tmp_path, "car")
    assert m["env"] == "CarRacing-v3" and m["pixels_real_steps"] == 240
    assert np.isfinite(m["pixels_real_return_mean"]) and m["pixels_vae_recon_mse"] > 0
    run = tmp_path / "worlds" / "car"
    assert (run / "pixels" / "dream_strip.png").is_file() and (run / "report.html").is_file()
    proc = _run("fit", "--env", "CarRacing-v3", "--run-name", "car", runs=tmp_path)
    assert proc.returncode == 2 and "image observations" in proc.stderr.strip().splitlines()[-1]
