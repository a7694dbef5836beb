"""Smoke tier: the core demo's real entry point as a subprocess on a tiny budget, and its bad-input errors."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest


def _run(python, repo_root, *args, timeout=600):
    return subprocess.run(
        [python, "-m", "apps.core_demo", *args], cwd=repo_root, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import sys
    from pathlib import Path

    runs = tmp_path_factory.mktemp("runs")
    root = Path(__file__).resolve().parents[2]
    proc = _run(
        sys.executable,
        root,
        "--preset",
        "tiny",
        "--runs-dir",
        str(runs),
        "--run-name",
        "smoke",
        "--eval-samples",
        "50",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return runs / "core-demo" / "smoke"


def test_tiny_demo_writes_report_metrics_and_checkpoints(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for key in (
        "vae_iwae100_test",
        "diffusion_label_agreement",
        "gan_high_quality",
        "rbm_logz_ais_error",
        "ar_label_agreement",
        "sampling_tail_is_rel_error",
        "classifier_real_accuracy",
    ):
        assert key in metrics, key
    assert all(k == k.lower() and not isinstance(v, dict) for k, v in metrics.items())
    html = (tiny_run / "report.html").read_text()
    assert "genlab core demo" in html and "data:image/png;base64," in html and 'src="http' not in html
    for family in ("vae", "diffusion", "gan", "rbm", "ar"):
        assert list((tiny_run / family / "checkpoints").glob("step-*/model.safetensors")), family
        assert (tiny_run / family / "train.jsonl").is_file()
    assert json.loads((tiny_run / "config.json").read_text())["preset"] == "tiny"


def test_rerun_same_name_resumes_without_training(tiny_run, python, repo_root):
    proc = _run(
        python,
        repo_root,
        "--preset",
        "tiny",
        "--runs-dir",
        str(tiny_run.parents[1]),
        "--run-name",
        "smoke",
        "--families",
        "gan",
        "--no-evaluate",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    assert "resuming from" in proc.stderr


@pytest.mark.parametrize("family, out", [("diffusion", "x.png"), ("ar", "x.png"), ("gan", "x.csv"), ("rbm", "x.csv")])
def test_sample_command_rebuilds_model_from_checkpoint(tiny_run, python, repo_root, tmp_path, family, out):
    proc = _run(
        python, repo_root, "sample", "--checkpoint", str(tiny_run / family), "--n", "12", "--out", str(tmp_path / out)
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / out).stat().st_size > 0
    if out.endswith(".csv"):
        assert len((tmp_path / out).read_text().splitlines()) == 13


def _assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error:"), err
    for f in fragments:
        assert f in err, err


def test_bad_inputs_give_one_line_errors(python, repo_root, tmp_path):
    bad_field = tmp_path / "bad_field.json"
    bad_field.write_text(json.dumps({"run_name": "x", "epochs": 3}))
    _assert_one_line_error(_run(python, repo_root, "--config", str(bad_field)), "unknown field 'epochs'")
    bad_type = tmp_path / "bad_type.json"
    bad_type.write_text(json.dumps({"steps": "many"}))
    _assert_one_line_error(_run(python, repo_root, "--config", str(bad_type)), "steps", "expected an integer")
    _assert_one_line_error(_run(python, repo_root, "--steps", "abc"), "--steps")
    _assert_one_line_error(_run(python, repo_root, "--families", "vae,flow"), "unknown family 'flow'")
    _assert_one_line_error(
        _run(python, repo_root, "--data", str(tmp_path / "missing.npz"), "--runs-dir", str(tmp_path)), "does not exist"
    )
    not_ckpt = tmp_path / "model.pt"
    not_ckpt.write_bytes(b"\x80\x04not a checkpoint")
    _assert_one_line_error(
        _run(python, repo_root, "sample", "--checkpoint", str(not_ckpt)), "is not a genlab checkpoint"
    )
    _assert_one_line_error(
        _run(python, repo_root, "sample", "--checkpoint", str(tmp_path / "nowhere")), "does not exist"
    )


def test_user_npz_images(python, repo_root, tmp_path):
    rng = np.random.default_rng(0)
    images = (rng.random((40, 8, 8)) > 0.5).astype("float32")
    np.savez(tmp_path / "imgs.npz", images=images, labels=np.arange(40) % 2)
    np.savez(tmp_path / "bad.npz", images=images * 255)

    def vae_on(npz: str, *extra):
        args = ["--preset", "tiny", "--families", "vae", "--data", str(tmp_path / npz), "--runs-dir", str(tmp_path)]
        return _run(python, repo_root, *args, *extra)

    proc = vae_on("imgs.npz", "--eval-samples", "20", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_one_line_error(vae_on("bad.npz"), "must lie in [0, 1]")
