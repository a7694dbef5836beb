"""`python -m apps.art <command>`: few-shot art synthesis with diffusion, a GAN and a VAE on the shared core.

    python -m apps.art all                           # prepare, train, interpolate, evaluate, report (make art)
    python -m apps.art prepare                       # the emoji collection from Debian packages into data/art/
    python -m apps.art train --models diffusion      # train (or resume) one model
    python -m apps.art sample --model diffusion --n 16 --cls flags --guidance 3   # PNGs + a grid
    python -m apps.art interpolate --model vae       # morphing strips between pairs of real images
    python -m apps.art evaluate                      # KID / SWD / memorisation / class recognition -> metrics.json
    python -m apps.art report                        # report.html: galleries, strips, progress, metrics, pairs
    python -m apps.art all --data.folder ~/my-art --data.image-size 64 --run-name mine   # your own images
    python -m apps.art all --preset portraits-cpu --run-name portraits                   # the Wesnoth portraits

Every command takes the same options (`python -m apps.art all --help`) plus `--preset default|portraits|
portraits-cpu|demo|tiny`; outputs go to runs/art/<run-name>/. Your own folder: PNG/JPEG/WebP files, one subfolder
per class (or none: one class); transparent images are composited onto --data.background.
"""

from __future__ import annotations

import argparse
import re
import time

import torch
from safetensors.torch import save_file

from apps.art.config import MODELS, ArtConfig, preset
from apps.art.evaluate import evaluate, interpolation_pairs
from apps.art.models import Trained, generate, interpolate, load_trained
from apps.art.training import RunData, load_run_data, train_model
from shared.atomic import atomic_path, atomic_write_bytes
from shared.cli import command_parser, early_options, parse_config, run_main, say, split_command
from shared.errors import ConfigError
from shared.report.figures import image_grid_array, png_bytes
from shared.runs import RunDir
from shared.runtime import resolve_device, set_cpu_threads

APP = "art"


def open_run(cfg: ArtConfig) -> RunDir:
    run = RunDir.for_config(APP, cfg)
    if cfg.threads:
        set_cpu_threads(cfg.threads)
    return run


def check_image_size(cfg: ArtConfig) -> None:
    """The image size must suit every model asked for; say which sizes do."""
    s = cfg.data.image_size
    checks = {
        "diffusion": (2 ** (len(cfg.diffusion.channel_mult) - 1), "--diffusion.channel-mult"),
        "vae": (2 ** len(cfg.vae.channels), "--vae.channels"),
        "gan": (2 ** len(cfg.gan.channels), "--gan.channels"),
    }
    for kind in cfg.models:
        factor, option = checks[kind]
        if s % factor:
            sizes = ", ".join(str(factor * m) for m in (2, 4, 8) if factor * m >= 8)
            raise ConfigError(
                f"--data.image-size {s} does not suit the {kind}: it needs a multiple of {factor} (e.g. {sizes}); "
                f"change the size, or use fewer levels in {option}"
            )


def trained_models(cfg: ArtConfig, run: RunDir, kinds=None) -> dict[str, Trained]:
    device = resolve_device(cfg.diffusion_train.device)
    return {kind: load_trained(kind, cfg, run.path / kind / "checkpoints", device) for kind in (kinds or cfg.models)}


def _grid(path, images: torch.Tensor, nrow: int, size: int) -> None:
    atomic_write_bytes(path, png_bytes(image_grid_array(images, nrow=nrow, scale=max(1, 64 // size))))


# ------------------------------------------------------------------------------------------------- commands


def cmd_prepare(cfg: ArtConfig, extra) -> RunData:
    """Prepare the collection (or check your folder), load it at the training size and print the class counts."""
    t0 = time.perf_counter()
    data = load_run_data(cfg)
    counts = ", ".join(f"{c} {n}" for c, n in data.full.counts().items())
    say(f"{data.full.n} images in {data.full.num_classes} classes from {data.source} at "
        f"{cfg.data.image_size} px ({counts}); {data.train.n} train / {data.held.n} held out; "
        f"{len(data.full.skipped)} skipped; {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return data


def cmd_train(cfg: ArtConfig, extra, data: RunData | None = None) -> dict[str, Trained]:
    """Train (or resume) every model in --models; checkpoints and progress grids go to runs/art/<run>/<model>/."""
    check_image_size(cfg)
    data = data or load_run_data(cfg)  # before the run folder is touched: a bad folder leaves nothing behind
    run = open_run(cfg)
    out = {}
    for kind in cfg.models:
        t0 = time.perf_counter()
        out[kind] = train_model(cfg, run, kind, data)
        run.write_metrics({f"{kind}_train_s": time.perf_counter() - t0, f"{kind}_steps": out[kind].step})
    return out


def cmd_sample(cfg: ArtConfig, extra) -> None:
    """Draw --n images per class (or of --cls) from --model; PNG files and a grid under samples/<model>/."""
    run = open_run(cfg)
    trained = trained_models(cfg, run, [extra.model])[extra.model]
    classes = trained.classes
    if extra.cls:
        wanted = [c.strip() for c in extra.cls.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in classes and not (c.isdigit() and int(c) < len(classes))]
        if unknown:
            raise ConfigError(f"--cls {','.join(unknown)}: unknown class; the classes are {', '.join(classes)}")
        ids = [int(c) if c.isdigit() else classes.index(c) for c in wanted]
    else:
        ids = list(range(len(classes)))
    labels = torch.tensor(ids).repeat_interleave(extra.n)
    x = generate(trained, labels, cfg, seed=extra.seed, guidance=extra.guidance)
    folder = run.samples / extra.model / f"sample-seed{extra.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(x, labels.tolist())):
        atomic_write_bytes(folder / f"{classes[y]}-{i:04d}.png", png_bytes(img.permute(1, 2, 0).numpy()))
    _grid(folder / "grid.png", x, extra.n, cfg.data.image_size)
    say(f"wrote {len(x)} samples of {extra.model} (step {trained.step}) to {folder}")


def cmd_interpolate(cfg: ArtConfig, extra, data: RunData | None = None, models=None) -> None:
    """Morph between pairs of real images of one class (diffusion: DDIM inversion + slerp; VAE: latent slerp;
    GAN: slerp between two noises); strips go to samples/<model>/interpolation.png."""
    run = open_run(cfg)
    data = data or load_run_data(cfg)
    kinds = [extra.model] if getattr(extra, "model", None) and extra.model != "all" else list(cfg.models)
    models = models or trained_models(cfg, run, kinds)
    a, b, labels = interpolation_pairs(data, cfg.eval.interp_pairs, cfg.eval.seed)
    for kind in kinds:
        strips = interpolate(models[kind], a, b, labels, cfg.eval.interp_steps, cfg, seed=cfg.eval.seed)
        folder = run.samples / kind
        folder.mkdir(parents=True, exist_ok=True)
        if kind != "gan":  # real endpoints on both sides of each strip, for comparison with the reconstructions
            strips = torch.cat([a[:, None], strips, b[:, None]], dim=1)
        n_cols = strips.shape[1]
        _grid(folder / "interpolation.png", strips.flatten(0, 1), n_cols, cfg.data.image_size)
        with atomic_path(folder / "interpolation.safetensors") as tmp:
            save_file({"strips": strips.contiguous(), "labels": labels}, str(tmp))
        say(f"{kind}: {len(labels)} interpolation strips -> {folder / 'interpolation.png'}")


def cmd_evaluate(cfg: ArtConfig, extra, data: RunData | None = None, models=None) -> dict:
    """Sample each model and measure KID, SWD per level, memorisation and class recognition -> metrics.json."""
    run = open_run(cfg)
    data = data or load_run_data(cfg)
    models = models or trained_models(cfg, run)
    metrics = evaluate(cfg, run, data, models)
    for kind in models:
        levels = sorted(
            (int(k.rsplit("_", 1)[1]) for k in metrics if re.fullmatch(rf"{kind}_swd_\d+", k)), reverse=True
        )
        swd = ", ".join(
            f"{px} px {metrics[f'{kind}_swd_{px}']:.1f} (real {metrics[f'real_swd_{px}']:.1f})" for px in levels
        )
        spread = f" ± {metrics[f'{kind}_kid_sd_draws']:.4f}" if metrics.get(f"{kind}_draws", 1) > 1 else ""
        say(f"{kind}: KID {metrics[f'{kind}_kid']:.4f}{spread} (real {metrics['real_kid']:.4f}, noise "
            f"{metrics['noise_kid']:.4f}, blur {metrics['blur_kid']:.4f}); SWD x1e3 {swd}; class accuracy "
            f"{metrics[f'{kind}_class_acc']:.2f} (chance {metrics['chance']:.2f}); memorisation ratio "
            f"{metrics[f'{kind}_mem_ratio']:.2f}")  # fmt: skip
    return metrics


def cmd_report(cfg: ArtConfig, extra) -> None:
    """Write runs/art/<run>/report.html from what the other commands left in the run folder."""
    from apps.art.report import build_report

    run = open_run(cfg)
    path = build_report(run)
    say(f"report: {path}")


def cmd_all(cfg: ArtConfig, extra) -> None:
    """prepare -> train -> interpolate -> evaluate -> report, in one process (a rerun resumes)."""
    t0 = time.perf_counter()
    check_image_size(cfg)
    data = cmd_prepare(cfg, extra)
    models = cmd_train(cfg, extra, data)
    extra.model = "all"
    cmd_interpolate(cfg, extra, data, models)
    cmd_evaluate(cfg, extra, data, models)
    run = open_run(cfg)
    run.write_metrics({"wall_s": time.perf_counter() - t0})
    cmd_report(cfg, extra)


COMMANDS = {
    "prepare": cmd_prepare,
    "train": cmd_train,
    "sample": cmd_sample,
    "interpolate": cmd_interpolate,
    "evaluate": cmd_evaluate,
    "report": cmd_report,
    "all": cmd_all,
}


def _extra_options(command: str, parser: argparse.ArgumentParser) -> None:
    if command == "sample":
        parser.add_argument("--model", choices=MODELS, default="diffusion", help="model to sample (diffusion)")
        parser.add_argument("--n", type=int, default=8, help="images per class (8)")
        parser.add_argument("--cls", default="", help="class names or ids, comma-separated (default: every class)")
        parser.add_argument("--seed", type=int, default=0, help="noise seed (0)")
        parser.add_argument("--guidance", type=float, default=None, help="diffusion guidance weight (config's)")
    if command == "interpolate":
        parser.add_argument("--model", choices=(*MODELS, "all"), default="all", help="model to interpolate (all)")


def main(argv=None) -> int:
    got = split_command(argv, COMMANDS, "apps.art", __doc__, "all")
    if got is None:
        return 0
    command, rest = got
    fn = COMMANDS[command]
    defaults = preset(early_options(rest, preset="default").preset)
    extras = argparse.ArgumentParser(add_help=False)
    _extra_options(command, extras)
    extra, _ = extras.parse_known_args(rest)
    if getattr(extra, "n", 1) < 1:
        raise ConfigError(f"--n {extra.n}: ask for at least one image per class")
    parser = command_parser("apps.art", command, fn)
    _extra_options(command, parser)
    cfg = parse_config(ArtConfig, rest, defaults=defaults, parser=parser)
    fn(cfg, extra)
    return 0


if __name__ == "__main__":
    run_main(main)
