"""The art report (runs/art/<run>/report.html): the headline and the acceptance checks, the metrics table against
real-vs-real and degraded images, a gallery by class beside held-out real images, interpolation strips, training
progress and loss curves, nearest-training-image pairs, class recognition with a confusion matrix, and a
histogram of pixel values (saturated colours and backgrounds).

Everything is read from what `python -m apps.art` left in the run folder: config.json, metrics.json, eval.json,
samples/<model>/{eval,recognition,nearest,interpolation}.safetensors, samples/real/eval.safetensors,
<model>/progress/step_<N>.png and <model>/train.jsonl. Tensors are loaded with safetensors only. A missing or
unreadable file drops what needs it, with a one-line note in its place, so the page also works for a run that is
still training or was made step by step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from apps.art import figures as figs
from apps.art.config import MODELS
from apps.art.figures import finite
from shared.report.figures import histograms
from shared.report.page import Page
from shared.runs import RunDir

MAX_CLASSES = 15  # class rows in the gallery
GALLERY_PER_CLASS = 8  # images per class row, fewer when the gallery would pass its budget
# PNG bytes per part (gallery: all of it; interpolation: all models; progress: per model in apps.art.figures), so
# the page stays under ~5 MB at 64 px: galleries show fewer images per class, strips fewer rows.
BUDGET = {"gallery": 1_100_000, "interpolation": 700_000}
INTERPOLATION = {  # how each model makes its path (apps.art.models.interpolate)
    "diffusion": "both real images are inverted to noise with deterministic DDIM (conditional on the class, no "
    "guidance), the two noises are joined by spherical interpolation (slerp) and every point is decoded with the "
    "same DDIM chain",
    "vae": "the VAE decodes points on the spherical interpolation (slerp) between the two images' posterior means",
    "gan": "the GAN has no encoder, so each row is a spherical interpolation (slerp) between two random noise "
    "vectors, decoded with the row's class; every column is generated (no real endpoints)",
}


def _first(*values) -> float | None:
    """The first of `values` that is a finite number, else None."""
    return next((x for x in map(finite, values) if x is not None), None)


def _fmt(v, spec: str, scale: float = 1.0) -> str:
    return "–" if finite(v) is None else format(finite(v) * scale, spec)


def _load_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _tensors(path: Path, **ndim: int) -> dict[str, np.ndarray] | None:
    """The named tensors of a safetensors file as numpy arrays, or None when the file is missing or unreadable, or
    when a tensor is absent, has another number of dimensions than `ndim` (name -> ndim) gives, or the tensors
    disagree on their (non-zero) leading size, or an image tensor (ndim >= 4) is not uint8 RGB."""
    try:
        loaded = load_file(str(path))
    except (OSError, SafetensorError, ValueError, RuntimeError):
        return None
    got = {k: loaded.get(k) for k in ndim}
    if any(t is None or t.ndim != ndim[k] for k, t in got.items()):
        return None
    if len({t.shape[0] for t in got.values()}) != 1 or not next(iter(got.values())).shape[0]:
        return None
    if any(t.ndim >= 4 and (t.dtype != torch.uint8 or t.shape[-3] != 3) for t in got.values()):
        return None
    return {k: t.numpy() for k, t in got.items()}


def _title(model: str) -> str:
    return {"vae": "VAE", "gan": "GAN"}.get(model, model.capitalize())


def _metric_label(key: str) -> str:
    return "KID" if key == "kid" else f"SWD {key[4:]} px" if key.startswith("swd_") else key


@dataclass
class ArtRun:
    """What the report reads from one run folder; cfg and m are {} when their file is missing."""

    path: Path
    cfg: dict
    m: dict
    ev: dict | None
    models: list[str]
    classes: list[str]
    swd: list[str]  # SWD keys, finest level first: ["swd_32", "swd_16"]

    @property
    def main(self) -> str | None:
        return "diffusion" if "diffusion" in self.models else (self.models[0] if self.models else None)

    def value(self, name: str, key: str):
        """`<name>_<key>` from metrics.json, else eval.json's table[name][key], else None."""
        if f"{name}_{key}" in self.m:
            return self.m[f"{name}_{key}"]
        table = (self.ev or {}).get("table")
        row = table.get(name) if isinstance(table, dict) else None
        return row.get(key) if isinstance(row, dict) else None

    def class_name(self, i: int) -> str:
        return self.classes[i] if 0 <= i < len(self.classes) else f"class {i}"

    def sigma(self, which: str):
        """The noise sd or blur sd (px) of the degraded sets, from eval.json, else the config."""
        degr = (self.ev or {}).get("degradations") or {}
        key = "noise_sigma" if which == "noise" else "blur_sigma_px"
        return degr.get(key, (self.cfg.get("eval") or {}).get(f"{which}_sigma"))

    def set_name(self, name: str) -> str:
        if name == "real":
            return "real held-out"
        if name in ("noise", "blur") and finite(self.sigma(name)) is not None:
            return f"{name} (σ {self.sigma(name):g}{' px' * (name == 'blur')})"
        return name


def read_run(run: RunDir) -> ArtRun:
    path = run.path
    cfg, m, ev = _load_json(run.config_path) or {}, _load_json(run.metrics_path) or {}, _load_json(path / "eval.json")
    asked = cfg.get("models")
    if isinstance(asked, list) and asked:
        models = [k for k in MODELS if k in asked]
    else:  # no config: the models that left numbers or samples behind
        models = [k for k in MODELS if f"{k}_kid" in m or (path / "samples" / k).is_dir() or (path / k).is_dir()]
    classes = (ev or {}).get("classes")
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        k = finite(m.get("num_classes"))
        classes = [f"class {i}" for i in range(int(k or 0))]
    keys = list(m) + [k for row in ((ev or {}).get("table") or {}).values() if isinstance(row, dict) for k in row]
    levels = {int(x.group(1)) for k in keys if (x := re.search(r"(?:^|_)swd_(\d+)$", k))}
    swd = [f"swd_{r}" for r in sorted(levels, reverse=True)]
    return ArtRun(path, cfg, m, ev, models, classes, swd)


# ------------------------------------------------------------------------------------------------- summary


def _per_metric(what: str, results: dict[str, bool]) -> tuple[str, str]:
    """One verdict over per-metric results {metric key: passed}: PASS naming them, FAIL naming the lost ones."""
    if not results:
        return "n/a", f"{what}: not in metrics.json"
    lost = [_metric_label(k) for k, ok in results.items() if not ok]
    detail = f"not on {', '.join(lost)}" if lost else ", ".join(_metric_label(k) for k in results)
    return ("FAIL" if lost else "PASS"), f"{what} ({detail})"


def verdicts(f: ArtRun) -> list[tuple[str, str]]:
    """The acceptance checks of the main model as (PASS | FAIL | n/a, sentence), from metrics.json."""
    main, m, out = f.main, f.m, []
    suffix = "_closer_to_real"
    closer = {
        k[len(main) + 1 : -len(suffix)]: bool(v)
        for k, v in m.items()
        if k.startswith(f"{main}_") and k.endswith(suffix)
    }
    what = "closer to the real images than noise and blur on every metric"
    out.append(_per_metric(what, closer))

    what = "beats the VAE: nearer the real row than the VAE on each metric"
    beats = {k[len("diffusion_beats_vae_") :]: bool(v) for k, v in m.items() if k.startswith("diffusion_beats_vae_")}
    if main != "diffusion" or "vae" not in f.models:
        out.append(("n/a", f"{what}: needs the diffusion model and the VAE in one run"))
    else:
        out.append(_per_metric(what, beats))

    x = finite(m.get(f"{main}_class_acc_x_chance"))
    if x is None and finite(m.get(f"{main}_class_acc")) is not None and finite(m.get("chance")):
        x = m[f"{main}_class_acc"] / m["chance"]
    what = "class-recognition accuracy at least 3× chance"
    out.append(("n/a", f"{what}: not measured") if x is None else ("PASS" if x >= 3 else "FAIL", f"{what}: {x:.1f}×"))

    r = finite(f.value(main, "mem_ratio"))
    what = "memorisation: median nearest-training distance ratio at least 0.8"
    out.append(("n/a", f"{what}: not measured") if r is None else ("PASS" if r >= 0.8 else "FAIL", f"{what}: {r:.2f}"))
    return out


def summary_section(page: Page, f: ArtRun) -> None:
    main, m = f.main, f.m
    if main is None:
        page.text("No model in config.json, metrics.json or the run folder: nothing to summarise.")
        return
    v = f.value
    steps = finite(m.get(f"{main}_steps", ((f.ev or {}).get("steps") or {}).get(main)))
    head = f"**{_title(main)}**" + (f" after {int(steps):,} training steps" if steps is not None else "") + ":"
    parts = []
    if finite(v(main, "kid")) is not None:
        parts.append(
            f"KID ×1e3 **{_fmt(v(main, 'kid'), '.2f', 1e3)}** ± {_fmt(v(main, 'kid_std'), '.2f', 1e3)} against "
            f"{_fmt(v('real', 'kid'), '.2f', 1e3)} for held-out real images, {_fmt(v('noise', 'kid'), '.2f', 1e3)} "
            f"with noise and {_fmt(v('blur', 'kid'), '.2f', 1e3)} blurred"
        )
    levels = [("finest", f.swd[0])] + [("coarsest", f.swd[-1])] * (len(f.swd) > 1) if f.swd else []
    for level, key in levels:
        if finite(v(main, key)) is not None:
            parts.append(
                f"SWD ×1e3 at {key[4:]} px ({level} level) **{_fmt(v(main, key), '.1f')}** (real "
                f"{_fmt(v('real', key), '.1f')}, noise {_fmt(v('noise', key), '.1f')}, "
                f"blur {_fmt(v('blur', key), '.1f')})"
            )
    if parts:
        page.text(
            f"{head} {'; '.join(parts)}. Lower is nearer the training images; the held-out real images are the "
            "floor, the degraded ones show what visible damage costs."
        )
    else:
        page.text(f"{head} no KID or SWD numbers (metrics.json and eval.json are missing or hold none).")
    acc, chance, real_acc = (
        finite(m.get(f"{main}_class_acc")),
        finite(m.get("chance")),
        finite(m.get("classifier_real_acc")),
    )
    more = []
    if acc is not None:
        ratio = f" = **{acc / chance:.1f}× chance** ({chance:.1%})" if chance else ""
        more.append(
            f"the classifier recognises the class asked for in **{acc:.1%}** of its samples{ratio}, "
            f"against {_fmt(real_acc, '.1%')} on held-out real images"
        )
    if finite(v(main, "mem_ratio")) is not None:
        more.append(
            f"its samples sit **{v(main, 'mem_ratio'):.2f}×** as far from their nearest training image as "
            "held-out real images do (median)"
        )
    if more:
        page.text(f"Class recognition and copying: {'; '.join(more)}.")
    lines = "\n".join(f"- **{status}**: {text}" for status, text in verdicts(f))
    page.text(f"Acceptance checks for the {_title(main)} model (from metrics.json):\n\n{lines}")

    facts = {
        "training images": m.get("n_train"),
        "held-out real images": m.get("n_held"),
        "images per set (KID, SWD, memorisation)": m.get("n_samples"),
        "classes": m.get("num_classes", len(f.classes) or None),
        "image size (px)": (f.cfg.get("data") or {}).get("image_size"),
        **{f"{k} training steps": m.get(f"{k}_steps") for k in f.models},
        **{
            f"{k} training time (min)": finite(m.get(f"{k}_train_s")) and round(m[f"{k}_train_s"] / 60, 1)
            for k in f.models
        },
        "whole run, wall time (min)": finite(m.get("wall_s")) and round(m["wall_s"] / 60, 1),
    }
    facts = {k: x for k, x in facts.items() if x is not None}
    if facts:
        page.metrics(facts, title="Run")


def metrics_section(page: Page, f: ArtRun) -> None:
    rows = []
    for name in ("real", "noise", "blur", *f.models):
        if all(finite(f.value(name, k)) is None for k in ("kid", *f.swd)):
            continue
        row = {"set": f.set_name(name), "n": f.value(name, "n")}
        row["KID ×1e3"] = finite(f.value(name, "kid")) and f.value(name, "kid") * 1e3
        row["± sd"] = finite(f.value(name, "kid_std")) and f.value(name, "kid_std") * 1e3
        row["draws"] = finite(f.value(name, "draws"))
        row["KID sd over draws ×1e3"] = finite(f.value(name, "kid_sd_draws")) and f.value(name, "kid_sd_draws") * 1e3
        row |= {f"SWD {k[4:]} px": finite(f.value(name, k)) for k in f.swd}
        acc = f.m.get("classifier_real_acc") if name == "real" else f.m.get(f"{name}_class_acc")
        row["class accuracy"] = finite(acc)
        row["memorisation ratio"] = finite(f.value(name, "mem_ratio")) if name in f.models else None
        closer = {k: f.m.get(f"{name}_{k}_closer_to_real") for k in ("kid", *f.swd)}
        if name in f.models and any(x is not None for x in closer.values()):
            lost = [_metric_label(k) for k, x in closer.items() if x is False]
            row["closer to real than noise & blur"] = f"no ({', '.join(lost)})" if lost else "yes"
        else:
            row["closer to real than noise & blur"] = None
        rows.append(row)
    if not rows:
        page.text("metrics.json and eval.json are missing or hold no KID / SWD numbers: no metrics table.")
        return
    formats = {"KID ×1e3": "{:.2f}", "± sd": "{:.2f}", "draws": "{:.0f}", "KID sd over draws ×1e3": "{:.2f}"}
    formats |= {"class accuracy": "{:.1%}", "memorisation ratio": "{:.2f}"}
    formats |= {f"SWD {k[4:]} px": "{:.1f}" for k in f.swd}
    finest = f"; {f.swd[0][4:]} px is the finest level" if f.swd else ""
    page.table(
        rows,
        formats=formats,
        caption="Each set of n images measured against the training images: KID (×1e3, ± its sd) on fixed random "
        f"features and the sliced Wasserstein distance per Laplacian-pyramid level (SWD, ×1e3{finest}). Lower is "
        "nearer the training images, but read every number against the **real held-out** row: it is the floor set "
        "by sampling noise with this many images, and no model can be expected below it. The **noise** and "
        "**blur** rows are the same held-out images damaged on purpose; they show what visible damage costs on "
        "each metric. A model's figures are the means over `draws` independent sets of n samples; the sd over "
        "draws is how far one set's reading moves (the real row is one fixed set, so it has none). "
        "The last column says whether each of the model's figures is nearer the real row's figure than "
        "the noise and the blur rows' figures (the metrics where it is not are named). Class accuracy: the share "
        "of samples that a classifier "
        "trained on the real training images assigns to the class asked for (real row: its accuracy on held-out "
        "images). Memorisation ratio: median nearest-training distance of the samples over that of held-out real "
        "images (at least 0.8: no sign of copying).",
    )


# ------------------------------------------------------------------------------------------------- images


def _rows(page: Page, strips: list[np.ndarray], labels: list[str], caption: str) -> None:
    """Strips (3, H, W_i) as one labelled figure row each (one PNG per row), right-padded to one width."""
    width = max(s.shape[2] for s in strips)
    padded = [np.pad(s, ((0, 0), (0, 0), (0, width - s.shape[2])), constant_values=255) for s in strips]
    page.image_grid(np.stack(padded), nrow=1, row_labels=labels, scale=1, caption=caption)


def gallery_section(page: Page, f: ArtRun) -> None:
    sets = []
    real = _tensors(f.path / "samples" / "real" / "eval.safetensors", images=4, labels=1)
    if real is None:
        page.text("samples/real/eval.safetensors is missing or unreadable: no real images to compare with.")
    else:
        sets.append(("Held-out real images (never trained on)", real))
    for k in f.models:
        got = _tensors(f.path / "samples" / k / "recognition.safetensors", images=4, labels=1)
        if got is None:
            page.text(f"samples/{k}/recognition.safetensors is missing or unreadable: no {k} gallery.")
        else:
            sets.append((f"{_title(k)} samples, asked for each class", got))
    if not sets:
        return
    n_classes = max([len(f.classes), *(int(s["labels"].max()) + 1 for _, s in sets if len(s["labels"]))])
    shown = list(range(min(n_classes, MAX_CLASSES)))
    size = sets[0][1]["images"].shape[-1]
    scale = figs.upscale(size)
    # Bytes of one image in every class row of every set; fewer images per class if the gallery would be heavy.
    cost = sum(figs.cell_bytes(x["images"], scale) * len(set(x["labels"].tolist()) & set(shown)) for _, x in sets)
    per = max(2, min(GALLERY_PER_CLASS, int(BUDGET["gallery"] / max(cost, 1.0))))
    more = f" (the first {MAX_CLASSES} of {n_classes} classes)" if n_classes > MAX_CLASSES else ""
    page.text(
        f"Up to {per} images per class{more}, one row per class; the real images come first so each model's "
        "rows can be compared with them."
    )
    for title, x in sets:
        ids, strips = figs.class_rows(x["images"], x["labels"], shown, per, scale)
        if not strips:
            page.text(f"{title}: no images of the classes shown.")
            continue
        _rows(page, strips, [f.class_name(c) for c in ids], f"{title}; rows are classes.")


def tones_section(page: Page, f: ArtRun) -> None:
    """Histogram of channel values (0..255) of the held-out images and of each model's evaluation samples, with the
    shares of pure white and pure black pixels: where a model misses saturated colours or a flat background."""
    sets = {}
    real = _tensors(f.path / "samples" / "real" / "eval.safetensors", images=4)
    if real is not None:
        sets["real held-out"] = real["images"]
    else:
        page.text("samples/real/eval.safetensors is missing or unreadable: no real pixel values to compare with.")
    for k in f.models:
        got = _tensors(f.path / "samples" / k / "eval.safetensors", images=4)
        if got is None:
            page.text(f"samples/{k}/eval.safetensors is missing or unreadable: no {k} pixel values.")
        else:
            sets[k] = got["images"]
    if not sets:
        return
    fig = histograms(
        {name: x.ravel() for name, x in sets.items()}, bins=np.arange(257) - 0.5, log=True,
        xlabel="channel value (0 black, 255 full)",
    )  # fmt: skip
    page.figure(
        fig,
        caption="Every channel value of every image, one bin per value, log scale. A flat background or saturated "
        "colours make spikes at 0 and 255 in the real images; a model that leaves them slightly grey shows the "
        "spike smeared over the values just inside.",
    )
    rows = [
        {
            "set": name, "images": len(x), "pure white pixels": float((x == 255).all(axis=1).mean()),
            "pure black pixels": float((x == 0).all(axis=1).mean()),
            "values 245-254": float(((x >= 245) & (x < 255)).mean()), "mean value": float(x.mean()),
        }
        for name, x in sets.items()  # x (N, 3, S, S) uint8
    ]  # fmt: skip
    pct = "{:.1%}"
    page.table(
        rows,
        formats={"pure white pixels": pct, "pure black pixels": pct, "values 245-254": pct, "mean value": "{:.1f}"},
        caption="Pure white / black: pixels whose three channels are all 255 / all 0; values 245-254: the share of "
        "channel values just below full, where an unsaturated background lands.",
    )


def interpolation_section(page: Page, f: ArtRun) -> None:
    for k in f.models:
        got = _tensors(f.path / "samples" / k / "interpolation.safetensors", strips=5, labels=1)
        if got is None:
            page.text(f"samples/{k}/interpolation.safetensors is missing or unreadable: no {k} interpolation strips.")
            continue
        strips, labels = got["strips"], got["labels"]
        ends = k != "gan"
        scale = figs.upscale(strips.shape[-1])
        row_bytes = figs.cell_bytes(strips[0], scale) * strips.shape[1]
        keep = max(1, min(len(strips), int(BUDGET["interpolation"] / len(f.models) / row_bytes)))
        rows = [figs.strip(s, scale, ends=ends) for s in strips[:keep]]
        names = [f.class_name(int(c)) for c in labels[:keep]]
        method = INTERPOLATION.get(k, "the model's own path")
        text = (
            f"{_title(k)}: the first and last columns, set apart, are two **real** images of the row's class; the "
            f"columns next to them are the model's reconstructions and the ones between its path: {method}."
            if ends
            else f"{_title(k)}: {method}. Rows are labelled with the class."
        )
        if keep < len(strips):
            text += f" The first {keep} of {len(strips)} strips (the page is kept small)."
        _rows(page, rows, names, text)


# ------------------------------------------------------------------------------------------------- progress


def progress_section(page: Page, f: ArtRun) -> None:
    for k in f.models:
        page.section(_title(k), level=3)
        folder = f.path / k / "progress"
        found = sorted(
            (int(x.group(1)), p) for p in folder.glob("step_*.png") if (x := re.fullmatch(r"step_(\d+)\.png", p.name))
        )
        got = figs.progress_figure(found, f.classes) if found else None
        if got is None:
            page.text(f"No readable training-progress grids in {k}/progress/.")
        else:
            page.figure(
                got[0],
                caption=f"{_title(k)} samples from the same noise and labels as training went on ({got[1]}; one "
                "row per class, up to 10): the same cell at every step, so the panels show how samples sharpen.",
            )
        fig = figs.curves_figure(f.path / k / "train.jsonl")
        if fig is None:
            page.text(f"{k}/train.jsonl is missing or holds no loss records: no loss curves.")
        else:
            page.figure(
                fig,
                caption=f"{_title(k)} training losses against the step (faint: raw; line: "
                "moving average when there are many points).",
            )


# ------------------------------------------------------------------------------------------------- memorisation


def memorisation_section(page: Page, f: ArtRun) -> None:
    held = finite(f.m.get("held_mem_median"))
    for k in f.models:
        page.section(_title(k), level=3)
        mem = ((f.ev or {}).get("memorisation") or {}).get(k) or {}
        ratio = _first(f.value(k, "mem_ratio"), mem.get("ratio"))
        sample = _first(f.m.get(f"{k}_mem_median"), mem.get("median_sample"))
        ref = _first(held, mem.get("median_held"))
        if ratio is None:
            page.text(f"No memorisation numbers for the {_title(k)} (metrics.json / eval.json).")
        else:
            verdict = (
                "no sign of copying"
                if ratio >= 0.8
                else "samples sit closer to the training set than new real images do: possible copying"
            )
            page.text(
                f"Median distance from a {_title(k)} sample to its nearest training image: {_fmt(sample, '.4g')}; from "
                f"a held-out real image: {_fmt(ref, '.4g')}. Ratio **{ratio:.2f}** (at least 0.8 reads as no "
                f"copying): {verdict}."
            )
        got = _tensors(f.path / "samples" / k / "nearest.safetensors", samples=4, nearest=4, distance=1)
        if got is None or got["samples"].shape != got["nearest"].shape:
            page.text(f"samples/{k}/nearest.safetensors is missing or unreadable: no nearest-neighbour pairs.")
            continue
        n = len(got["samples"])
        labels = [f"d {d:.3g}" for d in got["distance"].tolist()] + [""] * n
        page.image_grid(
            np.concatenate([got["samples"], got["nearest"]]),
            nrow=n,
            row_labels=["sample", "nearest training image"],
            labels=labels,
            scale=figs.upscale(got["samples"].shape[-1]),
            caption=f"The {n} {_title(k)} samples closest to any training image (the most copy-like), above that "
            "training image, with their distance d.",
        )


# ------------------------------------------------------------------------------------------------- recognition


def recognition_section(page: Page, f: ArtRun) -> None:
    m = f.m
    chance, real_acc = finite(m.get("chance")), finite(m.get("classifier_real_acc"))
    rows = []
    for k in f.models:
        acc = finite(m.get(f"{k}_class_acc"))
        if acc is None:
            continue
        x = _first(m.get(f"{k}_class_acc_x_chance"), chance and acc / chance)
        rows.append({
            "model": k,
            "accuracy": acc,
            "× chance": x,
            "÷ accuracy on real": real_acc and acc / real_acc,
            "at least 3× chance": None if x is None else ("PASS" if x >= 3 else "FAIL"),
        })  # fmt: skip
    per = (f.ev or {}).get("recognition_per_class", (f.cfg.get("eval") or {}).get("per_class"))
    if rows:
        page.text(
            f"A small CNN trained on the real training images labels {per or 'a fixed number of'} samples "
            f"per class from each model. Chance is {_fmt(chance, '.1%')}; on held-out real images the "
            f"classifier is right {_fmt(real_acc, '.1%')} of the time, the most a model's samples can be "
            "expected to reach."
        )
        page.table(
            rows,
            formats={"accuracy": "{:.1%}", "× chance": "{:.1f}", "÷ accuracy on real": "{:.2f}"},
            caption="Share of samples recognised as the class they were asked for.",
        )
    else:
        page.text("No class-recognition numbers in metrics.json.")
    confusion = (f.ev or {}).get("confusion") or {}
    mats = {}
    for k in f.models:
        try:
            cm = np.asarray(confusion.get(k), dtype=float)
        except (TypeError, ValueError):
            continue
        if cm.ndim == 2 and cm.shape[0] == cm.shape[1] and cm.size:
            mats[k] = cm
    if not mats:
        page.text("eval.json is missing or holds no confusion matrices: no confusion matrix or per-class accuracy.")
        return
    main = f.main if f.main in mats else next(iter(mats))
    names = [f.class_name(i) for i in range(len(mats[main]))]
    page.figure(
        figs.confusion_figure(mats[main], names),
        caption=f"Confusion matrix of the {_title(main)} samples: row = class "
        "asked for, column = class the classifier predicts; colour = share of the row, numbers = counts.",
    )
    k_max = max(len(cm) for cm in mats.values())
    per_class = [
        {
            "class": f.class_name(i),
            **{k: cm[i, i] / cm[i].sum() if i < len(cm) and cm[i].sum() else None for k, cm in mats.items()},
        }
        for i in range(k_max)
    ]
    page.table(
        per_class,
        formats={k: "{:.0%}" for k in mats},
        caption="Per-class accuracy of each model's samples (the diagonal of its confusion matrix over the row).",
    )


# ------------------------------------------------------------------------------------------------- page


def build_report(run: RunDir) -> Path:
    """Write run.report_path (self-contained HTML) from the run folder's outputs; returns the path."""
    f = read_run(run)
    data = f.cfg.get("data") or {}
    source = Path(data["folder"]).name if data.get("folder") else data.get("collection") or run.path.name
    stamp_file = run.metrics_path if run.metrics_path.is_file() else run.config_path
    when = datetime.fromtimestamp(stamp_file.stat().st_mtime).strftime("%Y-%m-%d") if stamp_file.is_file() else None
    sub = [
        f"run {f.cfg.get('run_name', run.path.name)}",
        f"preset {f.cfg['preset']}" if f.cfg.get("preset") else "",
        f"{data['image_size']} px" if data.get("image_size") else "",
        ", ".join(f.models),
        f"evaluated {when}" if when else "",
    ]
    page = Page(f"Art: {source}", subtitle=" · ".join(s for s in sub if s))
    if not run.config_path.is_file():
        page.text("config.json is missing: models and settings are inferred from the other files.")
    if not f.m:
        page.text("metrics.json is missing or unreadable: numbers come from eval.json where it has them.")
    if f.ev is None:
        page.text("eval.json is missing or unreadable: no confusion matrices, and classes are shown by number.")
    if f.cfg.get("preset") in ("tiny", "demo"):
        page.callout(
            f"Preset `{f.cfg['preset']}`: short training budgets; the numbers show the pipeline works, "
            "not what the models can do.",
            "warning",
        )

    sections = {
        "Summary": summary_section,
        "Metrics": metrics_section,
        "Gallery by class": gallery_section,
        "Pixel values": tones_section,
        "Interpolation": interpolation_section,
        "Training progress": progress_section,
        "Memorisation": memorisation_section,
        "Class recognition": recognition_section,
    }
    for title, section in sections.items():
        page.section(title)
        if f.models or section in (summary_section, metrics_section, gallery_section):
            section(page, f)
        else:
            page.text("No model found in config.json, metrics.json or the run folder.")
    page.provenance(config=f.cfg or None, extra={"run folder": str(run.path)})
    return page.save(run.report_path)
