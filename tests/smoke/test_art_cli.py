"""Smoke: `python -m apps.art` as a subprocess on the tiny preset and a generated image folder: the whole pipeline
(train diffusion / VAE / GAN, interpolate, evaluate, report), resume, determinism of the samples, the sample
command, and one-line errors for bad folders and image sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ("disc", "square", "stripes")


def _folder(root: Path, per_class: int = 12, size: int = 24) -> Path:
    """Three classes of coloured shapes on a transparent background (RGBA PNG), plus one greyscale JPEG."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for c, shape in enumerate(SHAPES):
        (root / shape).mkdir(parents=True)
        for i in range(per_class):
            cy, cx, r = rng.uniform(8, size - 8, 2).tolist() + [rng.uniform(4, 7)]
            if shape == "disc":
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            elif shape == "square":
                mask = (abs(yy - cy) < r) & (abs(xx - cx) < r)
            else:
                mask = (yy // 3 + i) % 2 == 0
            rgba = np.zeros((size, size, 4), np.uint8)
            rgba[..., c] = 200
            rgba[..., 3] = mask * 255
            Image.fromarray(rgba, "RGBA").save(root / shape / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), "L").save(root / "disc" / "grey.jpg")
    return root


def _run(*args, runs: Path, preset: str = "tiny"):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "apps.art", args[0], "--preset", preset, *args[1:], "--runs-dir", str(runs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_tiny_pipeline_end_to_end_resumes_and_is_deterministic(tmp_path):
    images = _folder(tmp_path / "shapes")
    proc = _run("all", "--data.folder", str(images), "--run-name", "t", runs=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "art" / "t"
    m = json.loads((run / "metrics.json").read_text())
    assert m["num_classes"] == 3 and m["n_train"] + m["n_held"] == 37
    for kind in ("diffusion", "vae", "gan"):
        for key in ("kid", "swd_16", "class_acc", "mem_ratio", "steps"):
            assert f"{kind}_{key}" in m, f"{kind}_{key}"
        assert (run / "samples" / kind / "interpolation.png").is_file()
        assert sorted(p.name for p in (run / kind / "progress").iterdir()) == ["step_000004.png", "step_000008.png"]
    for key in ("real_kid", "noise_kid", "blur_swd_16", "classifier_real_acc", "chance", "wall_s"):
        assert key in m, key
    assert (run / "report.html").stat().st_size > 20_000
    first = load_file(str(run / "samples" / "diffusion" / "eval.safetensors"))["images"]

    # A second call finds every model trained; evaluating again draws the same samples.
    again = _run("evaluate", "--data.folder", str(images), "--run-name", "t", runs=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (load_file(str(run / "samples" / "diffusion" / "eval.safetensors"))["images"] == first).all()

    sample = _run("sample", "--data.folder", str(images), "--run-name", "t", "--model", "vae", "--n", "2",
                  "--cls", "square", runs=tmp_path)  # fmt: skip
    assert sample.returncode == 0, sample.stderr[-3000:]
    written = sorted((run / "samples" / "vae" / "sample-seed0").iterdir())
    assert [p.name for p in written] == ["grid.png", "square-0000.png", "square-0001.png"]


def test_bad_input_is_one_line_and_nonzero(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    text_only = tmp_path / "text"
    text_only.mkdir()
    (text_only / "notes.txt").write_text("not an image")
    cases = [
        ((str(empty),), "empty"),
        ((str(text_only),), ".png"),
        ((str(tmp_path / "missing"),), "does not exist"),
    ]
    for i, ((folder,), hint) in enumerate(cases):
        proc = _run("train", "--data.folder", folder, "--run-name", f"bad{i}", runs=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and len(lines) == 1 and hint in lines[0], proc.stderr

    images = _folder(tmp_path / "shapes", per_class=3)
    proc = _run("train", "--data.folder", str(images), "--data.image-size", "18", "--models", "diffusion",
                "--run-name", "bad", runs=tmp_path, preset="default")  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert "--data.image-size 18" in lines[0] and "multiple of 4" in lines[0]

    proc = _run("sample", "--run-name", "nothing-trained", "--data.folder", str(images), runs=tmp_path)
    assert proc.returncode != 0 and "train" in proc.stderr.strip().splitlines()[-1]
