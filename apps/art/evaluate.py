"""The evaluate step: sample every trained model, measure it beside real and degraded images, write the figures.

Sets, all of one size n (the held-out count unless --eval.n-samples says otherwise), each compared with the
training images as the reference:
    real       held-out real images (the real-vs-real figure: what "as good as the data" reads as)
    noise      the held-out images with Gaussian noise (sd --eval.noise-sigma)
    blur       the held-out images blurred (sd --eval.blur-sigma px)
    <model>    n samples per model, with the held-out images' labels (so the class mix is the real one), drawn
               --eval.draws times with different seeds: its figures are the means over the draws, and the sd
               across draws (`<metric>_sd_draws`) says how far one draw's reading can be trusted
Metrics per set: KID on fixed random features standardised with the reference, SWD per Laplacian-pyramid level
(apps.art.metrics). Memorisation: every sample's nearest training image against the held-out images' own
distances. Class recognition: a small CNN trained on the training images labels --eval.per-class samples of each
class; its accuracy on them is compared with chance (1 / classes) and with its accuracy on held-out real images.

Outputs: metrics.json (flat keys such as `diffusion_kid`, `diffusion_swd_16`, `diffusion_class_acc`,
`diffusion_mem_ratio`), eval.json (the full tables for the report), and under samples/<model>/ the sample grids
(eval.png, per class galleries) and the samples themselves (eval.safetensors, uint8) for later re-measurement.
"""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from apps.art.classifier import accuracy, predict, train_classifier
from apps.art.config import ArtConfig
from apps.art.metrics import (
    closer_to_real,
    degrade_blur,
    degrade_noise,
    mean_over_draws,
    memorisation,
    nearest_distances,
    quality_keys,
    quality_table,
)
from apps.art.models import Trained, generate
from apps.art.training import RunData
from shared.atomic import atomic_path, atomic_write_bytes, atomic_write_json
from shared.cli import say
from shared.errors import ConfigError
from shared.report.figures import image_grid_array, png_bytes
from shared.runs import RunDir

GALLERY_PER_CLASS = 8
NEAREST_PAIRS = 8  # closest sample / training-image pairs kept for the report


def _save_grid(path, images: torch.Tensor, nrow: int, size: int) -> None:
    atomic_write_bytes(path, png_bytes(image_grid_array(images, nrow=nrow, scale=max(1, 64 // size))))


def _save_tensor(path, **tensors: torch.Tensor) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))


def _save_nearest(path, samples: torch.Tensor, train: torch.Tensor, k: int = NEAREST_PAIRS) -> None:
    """The k samples closest to a training image, with that image and the distance (the memorisation figure)."""
    dist, idx = nearest_distances(samples, train)
    order = torch.argsort(dist)[:k]
    _save_tensor(path, samples=samples[order], nearest=train[idx[order]], distance=dist[order].float())


def _draw_name(kind: str, i: int) -> str:
    return f"{kind}#{i}"


def balanced_labels(num_classes: int, per_class: int) -> torch.Tensor:
    """(num_classes * per_class,) labels, class-major."""
    return torch.arange(num_classes).repeat_interleave(per_class)


def evaluate(cfg: ArtConfig, run: RunDir, data: RunData, models: dict[str, Trained]) -> dict:
    """Sample, measure and write metrics.json / eval.json; returns the flat metrics."""
    e, size = cfg.eval, cfg.data.image_size
    held, train = data.held, data.train
    n = e.n_samples or held.n
    # Labels of the sample sets: the held-out labels (repeated if more samples are asked for), so every set has
    # the real class mix.
    set_labels = held.labels.repeat((n + held.n - 1) // held.n)[:n]
    real = held.images.repeat((n + held.n - 1) // held.n, 1, 1, 1)[:n]
    sets = {
        "real": real,
        "noise": degrade_noise(real, e.noise_sigma, seed=e.seed),
        "blur": degrade_blur(real, e.blur_sigma),
    }
    k = data.full.num_classes
    recog_labels = balanced_labels(k, e.per_class)
    samples, recog = {}, {}
    for kind, trained in models.items():
        say(f"evaluate: sampling {e.draws} x {n} + {len(recog_labels)} images from the {kind} (step {trained.step})")
        # draw 0 keeps seed e.seed (and recognition e.seed + 1) whatever --eval.draws is
        seeds = [e.seed] + [e.seed + 1 + i for i in range(1, e.draws)]
        draws = [generate(trained, set_labels, cfg, seed=s) for s in seeds]
        recog[kind] = generate(trained, recog_labels, cfg, seed=e.seed + 1)
        samples[kind] = torch.cat(draws)  # memorisation reads every draw
        sets |= {_draw_name(kind, i): x for i, x in enumerate(draws)}
        folder = run.samples / kind
        folder.mkdir(parents=True, exist_ok=True)
        _save_tensor(folder / "eval.safetensors", images=samples[kind], labels=set_labels.repeat(e.draws))
        _save_tensor(folder / "recognition.safetensors", images=recog[kind], labels=recog_labels)
        _save_grid(folder / "eval.png", samples[kind][:64], 8, size)
        per = min(GALLERY_PER_CLASS, e.per_class)
        gallery = recog[kind].view(k, e.per_class, *recog[kind].shape[1:])[:, :per].reshape(-1, 3, size, size)
        _save_grid(folder / "gallery.png", gallery, per, size)
        _save_nearest(folder / "nearest.safetensors", samples[kind], train.images)
    (run.samples / "real").mkdir(exist_ok=True)
    _save_tensor(run.samples / "real" / "eval.safetensors", images=held.images, labels=held.labels)

    say(f"evaluate: KID and SWD of {len(sets)} sets of {n} against {train.n} training images")
    per_set = quality_table(sets, train.images, seed=e.seed)
    table = {name: row for name, row in per_set.items() if name in ("real", "noise", "blur")}
    table |= {kind: mean_over_draws([per_set[_draw_name(kind, i)] for i in range(e.draws)]) for kind in models}

    say(f"evaluate: class recognition ({k} classes, classifier trained {e.classifier_steps} steps on real images)")
    clf = train_classifier(train.images, train.labels, k, steps=e.classifier_steps, seed=e.seed)
    chance = 1.0 / k
    metrics: dict = {
        "n_train": train.n,
        "n_held": held.n,
        "n_samples": n,
        "num_classes": k,
        "chance": chance,
        "classifier_real_acc": accuracy(clf, held.images, held.labels),
    }
    for name, row in table.items():
        for key, value in row.items():
            metrics[f"{name}_{key}"] = value
    mem, confusion = {}, {}
    for kind in models:
        metrics[f"{kind}_class_acc"] = acc = accuracy(clf, recog[kind], recog_labels)
        metrics[f"{kind}_class_acc_x_chance"] = acc / chance
        pred = predict(clf, recog[kind])
        confusion[kind] = torch.bincount(recog_labels * k + pred, minlength=k * k).view(k, k).tolist()
        mem[kind] = memorisation(samples[kind], train.images, held.images)
        metrics[f"{kind}_mem_ratio"] = mem[kind]["ratio"]
        metrics[f"{kind}_mem_median"] = mem[kind]["median_sample"]
        for metric, ok in closer_to_real(table, kind).items():
            metrics[f"{kind}_{metric}_closer_to_real"] = bool(ok)
    metrics["held_mem_median"] = next(iter(mem.values()))["median_held"] if mem else None
    if "diffusion" in models and "vae" in models:
        for key in quality_keys(table["diffusion"]):
            metrics[f"diffusion_beats_vae_{key}"] = bool(
                abs(table["diffusion"][key] - table["real"][key]) < abs(table["vae"][key] - table["real"][key])
            )
    metrics = {k_: v for k_, v in metrics.items() if v is not None}
    run.write_metrics(metrics)
    atomic_write_json(
        run.path / "eval.json",
        {"table": table, "memorisation": mem, "confusion": confusion, "classes": data.full.classes,
         "steps": {kind: t.step for kind, t in models.items()}, "recognition_per_class": e.per_class,
         "degradations": {"noise_sigma": e.noise_sigma, "blur_sigma_px": e.blur_sigma}, "draws": e.draws,
         "per_draw": {name: row for name, row in per_set.items() if "#" in name}},
    )  # fmt: skip
    return metrics


def interpolation_pairs(data: RunData, pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`pairs` pairs of real images of one class each (random classes with >= 2 images): uint8 a, b
    (pairs, 3, S, S) and labels (pairs,)."""
    g = torch.Generator().manual_seed(int(seed))
    source = data.full
    eligible = torch.nonzero(torch.bincount(source.labels, minlength=source.num_classes) >= 2).flatten()
    if not len(eligible):
        raise ConfigError("interpolation needs a class with at least two images; add images to one class")
    a_idx, b_idx, labels = [], [], []
    for _ in range(pairs):
        c = int(eligible[torch.randint(len(eligible), (1,), generator=g)])
        members = torch.nonzero(source.labels == c).flatten()
        pick = members[torch.randperm(len(members), generator=g)[:2]]
        a_idx.append(int(pick[0]))
        b_idx.append(int(pick[1]))
        labels.append(c)
    return source.images[a_idx], source.images[b_idx], torch.tensor(labels)
