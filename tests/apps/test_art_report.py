"""The art report (apps/art/report.py) on hand-made run folders: a full fake run (16 px, 3 classes, diffusion and
VAE, every file the app writes, small random tensors), the same run with eval.json, the progress grids and an
interpolation file gone and samples files corrupted or of the wrong type, and a folder with nothing in it. No model
is built."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from apps.art.report import build_report
from shared.report import figures
from shared.runs import RunDir

S, K, PER, N = 16, 3, 4, 12  # image size, classes, recognition images per class, images per evaluation set
CLASSES = ["smileys", "animals", "flags"]
MODELS = ("diffusion", "vae")
SECTIONS = [
    "Summary",
    "Metrics",
    "Gallery by class",
    "Pixel values",
    "Interpolation",
    "Training progress",
    "Memorisation",
    "Class recognition",
]
SETS = {  # kid, kid_std, swd_16, swd_8
    "real": (0.001, 0.0004, 10.0, 8.0),
    "noise": (0.050, 0.002, 90.0, 12.0),
    "blur": (0.020, 0.001, 40.0, 9.0),
    "diffusion": (0.004, 0.001, 20.0, 8.5),
    "vae": (0.030, 0.002, 60.0, 8.2),
}


def _images(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randint(0, 256, (*shape, 3, S, S), generator=g, dtype=torch.uint8)


def _metrics() -> dict:
    m = {"n_train": 40, "n_held": N, "n_samples": N, "num_classes": K, "chance": 1 / K, "classifier_real_acc": 0.9,
         "wall_s": 300.0, "held_mem_median": 2.0}  # fmt: skip
    for name, (kid, std, s16, s8) in SETS.items():
        m |= {f"{name}_kid": kid, f"{name}_kid_std": std, f"{name}_swd_16": s16, f"{name}_swd_8": s8, f"{name}_n": N}
    m |= {"diffusion_class_acc": 0.75, "diffusion_class_acc_x_chance": 2.25, "diffusion_mem_ratio": 0.95,
          "diffusion_mem_median": 1.9, "diffusion_train_s": 120.0, "diffusion_steps": 8}  # fmt: skip
    m |= {"vae_class_acc": 0.5, "vae_class_acc_x_chance": 1.5, "vae_mem_ratio": 0.7, "vae_mem_median": 1.4,
          "vae_train_s": 30.0, "vae_steps": 8}  # fmt: skip
    for model in MODELS:
        m |= {f"{model}_{k}_closer_to_real": True for k in ("kid", "swd_16", "swd_8")}
    m["vae_swd_8_closer_to_real"] = False
    m |= {"diffusion_beats_vae_kid": True, "diffusion_beats_vae_swd_16": True, "diffusion_beats_vae_swd_8": False}
    return m


def _fake_run(root: Path) -> RunDir:
    run = RunDir.open("art", "fake", root)
    g = torch.Generator().manual_seed(0)
    cfg = {"run_name": "fake", "preset": "tiny", "models": list(MODELS),
           "data": {"collection": "emoji", "folder": "", "image_size": S},
           "diffusion_train": {"steps": 8, "batch_size": 16},
           "eval": {"noise_sigma": 0.1, "blur_sigma": 1.0, "per_class": PER}}  # fmt: skip
    run.config_path.write_text(json.dumps(cfg))
    run.metrics_path.write_text(json.dumps(_metrics()))
    table = {name: {"kid": k, "kid_std": s, "swd_16": a, "swd_8": b, "n": N} for name, (k, s, a, b) in SETS.items()}
    confusion = {m: (np.eye(K, dtype=int) * (PER - 1) + 1 - np.eye(K, dtype=int)).tolist() for m in MODELS}
    mem = {m: {"median_sample": 1.9, "median_held": 2.0, "ratio": 0.95} for m in MODELS}
    ev = {"table": table, "memorisation": mem, "confusion": confusion, "classes": CLASSES,
          "steps": {m: 8 for m in MODELS}, "recognition_per_class": PER,
          "degradations": {"noise_sigma": 0.1, "blur_sigma_px": 1.0}}  # fmt: skip
    (run.path / "eval.json").write_text(json.dumps(ev))
    labels = torch.arange(N) % K
    recog_labels = torch.arange(K).repeat_interleave(PER)
    for model in MODELS:
        folder = run.path / "samples" / model
        folder.mkdir(parents=True)
        save_file({"images": _images(g, N), "labels": labels}, str(folder / "eval.safetensors"))
        save_file({"images": _images(g, K * PER), "labels": recog_labels}, str(folder / "recognition.safetensors"))
        save_file({"samples": _images(g, 4), "nearest": _images(g, 4), "distance": torch.rand(4, generator=g)},
                  str(folder / "nearest.safetensors"))  # fmt: skip
        save_file(
            {"strips": _images(g, 2, 5), "labels": torch.tensor([0, 2])}, str(folder / "interpolation.safetensors")
        )
        progress = run.path / model / "progress"
        progress.mkdir(parents=True)
        for step in (4, 8):  # the layout apps.art.training writes: 6 columns, one row per class, pad 1, x4
            grid = figures.image_grid_array(_images(g, 6 * K), nrow=6, scale=64 // S)
            (progress / f"step_{step:06d}.png").write_bytes(figures.png_bytes(grid))
        records = [
            {"step": s, "loss/ddpm" if model == "diffusion" else "loss/elbo": 1.0 / s, "lr": 1e-3}
            for s in range(2, 10, 2)
        ]
        (run.path / model / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    real = run.path / "samples" / "real"
    real.mkdir()
    save_file({"images": _images(g, N), "labels": labels}, str(real / "eval.safetensors"))
    return run


@pytest.fixture
def run(tmp_path) -> RunDir:
    return _fake_run(tmp_path)


def test_full_report(run):
    real = run.path / "samples" / "real" / "eval.safetensors"
    images = torch.randint(0, 245, (N, 3, S, S), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    images[:3] = 255  # 3 of 12 real images pure white: 25% white pixels, none in 245-254
    save_file({"images": images, "labels": torch.arange(N) % K}, str(real))
    path = build_report(run)
    assert path == run.report_path and path.is_file()
    text = path.read_text()
    assert "<h1>Art: emoji</h1>" in text
    for title in SECTIONS:
        assert f">{title}</h2>" in text, title
    for name in CLASSES:
        assert f"<th>{name}</th>" in text, name  # gallery / interpolation row labels
    assert "<td>flags</td>" in text  # the per-class accuracy table
    # Verdicts for the diffusion model: closer than the degradations (pass), beats the VAE except at 8 px (fail),
    # 2.25x chance (fail), memorisation ratio 0.95 (pass).
    assert "<strong>PASS</strong>: closer to the real images than noise and blur on every metric" in text
    assert (
        "<strong>FAIL</strong>: beats the VAE: nearer the real row than the VAE on each metric (not on SWD 8 px)"
        in text
    )
    assert "<strong>FAIL</strong>: class-recognition accuracy at least 3× chance: 2.2×" in text
    assert "<strong>PASS</strong>: memorisation: median nearest-training distance ratio at least 0.8: 0.95" in text
    assert "<td>no (SWD 8 px)</td>" in text  # the VAE's closer-to-real column
    assert '<td class="num">4.00</td>' in text  # diffusion KID x1e3
    assert "2 of 2 saved steps, the first 6 columns of each fixed-seed grid" in text  # progress figure caption
    assert text.count("data:image/png;base64,") > 20
    assert '<td>real held-out</td><td class="num">12</td><td class="num">25.0%</td>' in text  # pixel values
    assert "missing" not in text
    assert len(text) < 2_000_000


def test_missing_files_become_notes(run):
    (run.path / "eval.json").unlink()
    for model in ("diffusion", "vae"):
        for p in (run.path / model / "progress").iterdir():
            p.unlink()
        (run.path / model / "progress").rmdir()
    (run.path / "samples" / "vae" / "interpolation.safetensors").unlink()
    (run.path / "samples" / "vae" / "eval.safetensors").unlink()
    (run.path / "samples" / "diffusion" / "nearest.safetensors").write_bytes(b"not a safetensors file")
    floats = {"images": torch.rand(K * PER, 3, S, S), "labels": torch.arange(K).repeat_interleave(PER)}
    save_file(floats, str(run.path / "samples" / "vae" / "recognition.safetensors"))  # not uint8 images
    text = build_report(run).read_text()
    for title in SECTIONS:
        assert f">{title}</h2>" in text, title
    assert "eval.json is missing or unreadable" in text
    assert "No readable training-progress grids in diffusion/progress/." in text
    assert "samples/vae/interpolation.safetensors is missing or unreadable" in text
    assert "samples/diffusion/nearest.safetensors is missing or unreadable" in text
    assert "samples/vae/recognition.safetensors is missing or unreadable: no vae gallery." in text
    assert "no confusion matrix" in text
    assert "samples/vae/eval.safetensors is missing or unreadable: no vae pixel values." in text
    assert "<th>class 2</th>" in text  # without eval.json classes are shown by number
    assert "<strong>PASS</strong>: closer to the real images" in text  # metrics.json still gives the verdicts


def test_empty_run_folder(tmp_path):
    run = RunDir.open("art", "empty", tmp_path)
    text = build_report(run).read_text()
    assert "<h1>Art: empty</h1>" in text
    assert "config.json is missing" in text and "metrics.json is missing or unreadable" in text
    assert "nothing to summarise" in text
