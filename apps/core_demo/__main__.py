"""`python -m apps.core_demo`: train the core families, evaluate them, write metrics.json and report.html.

python -m apps.core_demo                                  # all families, default budgets (a few minutes)
python -m apps.core_demo --families gan,rbm --preset tiny
python -m apps.core_demo sample --checkpoint runs/core-demo/demo/diffusion --n 100 --out digits.png
torchrun --standalone --nproc_per_node 2 -m apps.core_demo --families ar --run-name ddp   # data-parallel
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from apps.core_demo import evaluate as ev
from apps.core_demo.config import DemoConfig, SampleConfig
from apps.core_demo.recipes import build_model, image_data, make_recipe, tokens_to_images
from apps.core_demo.report import build_report
from shared.atomic import atomic_path
from shared.cli import parse_config, run_main
from shared.config import to_dict
from shared.errors import CheckpointError
from shared.report import figures
from shared.runs import RunDir
from shared.runtime import resolve_device, set_cpu_threads
from shared.training import distributed, fit
from shared.training.checkpoint import open_checkpoint

APP = "core-demo"


def train_and_evaluate(cfg: DemoConfig) -> dict:
    run = RunDir.open(APP, cfg.run_name, cfg.runs_dir)
    images = image_data(cfg.data, cfg.seed) if {"vae", "diffusion", "ar"} & set(cfg.families) else None
    info = distributed.DistInfo()
    if distributed.launched_by_torchrun():
        info = distributed.init(resolve_device(cfg.device))
    if info.is_main:
        changed = run.save_config(cfg)
        if changed:
            print(
                f"note: run {cfg.run_name} continues with a changed config: {'; '.join(changed[:4])}", file=sys.stderr
            )
    results = {}
    for family in cfg.families:
        recipe = make_recipe(family, cfg.preset, cfg.seed, images)
        overrides = {
            k: v
            for k, v in (("steps", cfg.steps), ("checkpoint_every", cfg.checkpoint_every), ("log_every", cfg.log_every))
            if v
        }
        train = dataclasses.replace(recipe.train, device=cfg.device, progress=cfg.progress, **overrides)
        results[family] = fit(
            recipe.model, recipe.batches, train, run_dir=run.sub(family), config={"demo": recipe.meta}, desc=family
        )
    if not (cfg.evaluate and info.is_main):
        distributed.shutdown()
        return {}
    evaluations = {}
    metrics: dict = {}
    clf = ev.DigitClassifier(images) if images is not None else None
    if clf is not None:
        metrics["classifier_real_accuracy"] = clf.real_accuracy
    n = cfg.eval_samples
    for family, res in results.items():
        model = res.sampling_model
        if family == "vae":
            evaluations[family] = ev.evaluate_vae(model, images, clf, n, cfg.seed)
        elif family == "diffusion":
            evaluations[family] = ev.evaluate_diffusion(model, images, clf, n, cfg.seed)
        elif family == "gan":
            evaluations[family] = ev.evaluate_gan(model, n, cfg.seed)
        elif family == "rbm":
            evaluations[family] = ev.evaluate_rbm(model, cfg.seed)
        elif family == "ar":
            evaluations[family] = ev.evaluate_ar(model, images, clf, n, cfg.seed)
    evaluations["sampling"] = ev.evaluate_sampling(cfg.seed)
    for e in evaluations.values():
        metrics.update(e.metrics)
    metrics = run.write_metrics(metrics)
    build_report(run, evaluations, metrics, to_dict(cfg), images.source if images else "-").save(run.report_path)
    print(f"wrote {run.report_path} and {run.metrics_path}", file=sys.stderr)
    distributed.shutdown()
    return metrics


def sample(cfg: SampleConfig) -> Path:
    ckpt = open_checkpoint(cfg.checkpoint)
    meta = ckpt.config.get("demo")
    if not isinstance(meta, dict) or "family" not in meta:
        raise CheckpointError(
            f"{ckpt.path} is a genlab checkpoint but not one of the core demo's; "
            "use the sample command of the app that trained it"
        )
    device = resolve_device(cfg.device)
    model = build_model(meta["family"], meta["preset"], meta).to(device)
    ckpt.load_model(model, ema=True).eval()
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    family, k = meta["family"], meta.get("num_classes", 0)
    labels = (torch.full((cfg.n,), cfg.label) if cfg.label >= 0 else torch.arange(cfg.n) % max(k, 1)).to(device)
    with torch.no_grad():
        if family == "vae":
            x = model.sample(cfg.n, cond=labels, generator=g)
        elif family == "diffusion":
            x = (model.sample(cfg.n, cond=labels, steps=ev.DDIM_STEPS, guidance=ev.GUIDANCE, generator=g) + 1) / 2
        elif family == "ar":
            x = tokens_to_images(model.sample(cfg.n, cond=labels, generator=g).cpu(), meta["size"])
        elif family == "rbm":
            x = model.sample(cfg.n, steps=1000, generator=g).view(-1, 1, 3, 3)
        else:
            x = model.sample(cfg.n, generator=g)
    out = Path(cfg.out)
    x = x.detach().cpu()
    if out.suffix.lower() == ".csv":
        flat = x.flatten(1).numpy()
        header = ",".join(f"x{i}" for i in range(flat.shape[1]))
        with atomic_path(out) as tmp:
            np.savetxt(tmp, flat, delimiter=",", header=header, comments="", fmt="%.6g")
    elif out.suffix.lower() == ".png":
        if x.ndim != 4:
            raise CheckpointError(f"family {family!r} makes points, not images; use --out samples.csv")
        from PIL import Image

        grid = figures.image_grid_array(x.clamp(0, 1), nrow=min(10, cfg.n))
        with atomic_path(out) as tmp:
            Image.fromarray(grid).save(tmp, format="PNG")
    else:
        from shared.errors import ConfigError

        raise ConfigError(f"--out {out} must end in .png (image grid) or .csv (one sample per row)")
    print(f"wrote {cfg.n} {family} samples to {out}", file=sys.stderr)
    return out


def main(argv=None) -> int:
    set_cpu_threads()  # $GENLAB_THREADS: 1 when other processes share the cores (tests, torchrun on a small box)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sample":
        sample(
            parse_config(
                SampleConfig, argv[1:], prog="python -m apps.core_demo sample", description=SampleConfig.__doc__
            )
        )
        return 0
    if argv and argv[0] == "train":
        argv = argv[1:]
    cfg = parse_config(
        DemoConfig,
        argv,
        prog="python -m apps.core_demo",
        description=DemoConfig.__doc__ + " Subcommand: `sample --help` draws from a trained family.",
    )
    train_and_evaluate(cfg)
    distributed.exit_worker(0)  # under torchrun: end before Python's finalizer races gloo's threads (see there)
    return 0


if __name__ == "__main__":
    run_main(main)
