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


def _demo_args(runs: Path, name: str, family: str, steps: int) -> list[str]:
    opts = f"--preset tiny --families {family} --runs-dir {runs} --run-name {name} --steps {steps} "
    opts += "--checkpoint-every 7 --log-every 1 --no-evaluate --no-progress"
    return ["-m", "apps.core_demo", *opts.split()]


def _demo(runs: Path, name: str, family: str, steps: int, launcher: tuple = ()) -> subprocess.CompletedProcess:
    """Run the demo (optionally under a launcher such as torchrun) and require success."""
    cmd = [sys.executable, *launcher, *_demo_args(runs, name, family, steps)]  # torchrun takes the same -m module
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


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
    _demo(tmp_path, "ref", family, steps)

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

    assert "resuming from" in _demo(tmp_path, "killed", family, steps).stderr
    a, b = _final_weights(tmp_path, "ref", family, steps), _final_weights(tmp_path, "killed", family, steps)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


@pytest.mark.slow
def test_truncated_latest_checkpoint_falls_back(tmp_path):
    _demo(tmp_path, "trunc", "gan", 21)
    newest = sorted((tmp_path / "core-demo" / "trunc" / "gan" / "checkpoints").iterdir())[-1]
    f = newest / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    err = _demo(tmp_path, "trunc", "gan", 28).stderr
    assert "is corrupt: model.safetensors has" in err and "falling back" in err
    assert "resuming from" in err and "step-00000014" in err


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    steps = 20
    _demo(tmp_path, "one", "ar", steps)
    _demo(
        tmp_path, "two", "ar", steps, launcher=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    )
    a, b = _final_weights(tmp_path, "one", "ar", steps), _final_weights(tmp_path, "two", "ar", steps)
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"torchrun 2 processes vs 1: max |param difference| after {steps} steps = {worst:.3g}")
    assert worst <= 1e-6
