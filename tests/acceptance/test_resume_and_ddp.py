"""Acceptance: a run killed with SIGKILL resumes to the bitwise-identical result; torchrun with 2 CPU processes
matches 1 process at the same global batch; a truncated checkpoint is detected and the previous one used."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "GENLAB_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _demo_args(runs: Path, name: str, family: str, steps: int, extra=()):
    return [
        "-m",
        "apps.core_demo",
        "--preset",
        "tiny",
        "--families",
        family,
        "--runs-dir",
        str(runs),
        "--run-name",
        name,
        "--steps",
        str(steps),
        "--checkpoint-every",
        "7",
        "--log-every",
        "1",
        "--no-evaluate",
        "--no-progress",
        *extra,
    ]


def _final_weights(runs: Path, name: str, family: str, step: int) -> dict:
    return load_file(str(runs / "core-demo" / name / family / "checkpoints" / f"step-{step:08d}" / "model.safetensors"))


def _logged_step(log: Path) -> int:
    if not log.is_file():
        return 0
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1])["step"] if lines else 0
    except json.JSONDecodeError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("family", ["diffusion", "gan"])  # global-RNG noise + EMA; two optimisers
def test_sigkill_then_resume_is_bitwise_equal(tmp_path, family):
    steps = 60
    ref = subprocess.run(
        [sys.executable, *_demo_args(tmp_path, "ref", family, steps)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ref.returncode == 0, ref.stderr[-2000:]

    kill_at = random.Random(family).randint(10, steps - 10)
    proc = subprocess.Popen(
        [sys.executable, *_demo_args(tmp_path, "killed", family, steps)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "core-demo" / "killed" / family / "train.jsonl"
    deadline = time.time() + 300
    while _logged_step(log) < kill_at and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_step = _logged_step(log)
    print(f"{family}: SIGKILL at logged step {killed_step} (target {kill_at})")
    assert killed_step < steps, "the run finished before it could be killed; lower the kill step"

    resumed = subprocess.run(
        [sys.executable, *_demo_args(tmp_path, "killed", family, steps)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr
    a, b = _final_weights(tmp_path, "ref", family, steps), _final_weights(tmp_path, "killed", family, steps)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


@pytest.mark.slow
def test_truncated_latest_checkpoint_falls_back(tmp_path):
    args = _demo_args(tmp_path, "trunc", "gan", 21)
    assert subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True).returncode == 0
    ckpts = tmp_path / "core-demo" / "trunc" / "gan" / "checkpoints"
    newest = sorted(ckpts.iterdir())[-1]
    f = newest / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    proc = subprocess.run(
        [sys.executable, *_demo_args(tmp_path, "trunc", "gan", 28)], cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "is corrupt: model.safetensors has" in proc.stderr and "falling back" in proc.stderr
    assert "resuming from" in proc.stderr and "step-00000014" in proc.stderr


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    steps = 20
    one = subprocess.run(
        [sys.executable, *_demo_args(tmp_path, "one", "ar", steps)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            *_demo_args(tmp_path, "two", "ar", steps),
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _final_weights(tmp_path, "one", "ar", steps), _final_weights(tmp_path, "two", "ar", steps)
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"torchrun 2 processes vs 1: max |param difference| after {steps} steps = {worst:.3g}")
    assert worst <= 1e-6
