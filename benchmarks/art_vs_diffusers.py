"""Sample quality of the art app's diffusion model against the `diffusers` DDPM, trained the same way in one process.

    python -m benchmarks.art_vs_diffusers --preset portraits --device cuda     # the 64 px GPU configuration
    python -m benchmarks.art_vs_diffusers --preset tiny --steps 40             # the plumbing, ~1 min on a CPU

Both models get the app's data (`apps.art.training.load_run_data`: the same training / held-out split), the same
parameter count (`benchmarks.art.diffusers_unet`: our UNet's layout rebuilt from diffusers blocks), and one
training loop (`train` below, not the app's `fit`): AdamW with cfg.diffusion_train's lr, betas and weight decay,
warm-up and cosine decay (`shared.training.loop.lr_at`), gradient clipping, EMA, batch size and steps, the same
batches and flips, and the same timesteps, noise and label dropout at every step (the global RNG is reseeded before
each model trains, and both objectives draw in the same order). ours: `shared.generative.Diffusion` around
`shared.nets.UNet`. peer: diffusers `UNet2DModel` + `DDPMScheduler` ("squaredcos_cap_v2" = our cosine schedule,
same T). Each model's EMA weights then draw as many images as there are held-out ones, with the held-out labels and
the same starting noise: 50 DDIM steps (eta 0), classifier-free guidance cfg.diffusion.guidance; ours with
`Diffusion.sample`, diffusers with `DDIMScheduler` from the DDPM config. `apps.art.metrics.quality_table` scores
the held-out images ("real", the floor), ours and diffusers against the training images: KID and SWD, lower is
better. Results: benchmarks/results/art-vs-diffusers-<preset>-<device>-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import torch
from tqdm.auto import tqdm

from apps.art.config import PRESETS, ArtConfig, preset
from benchmarks.art import SAMPLE_STEPS, DiffusersDDPM, count_parameters
from benchmarks.harness import RESULTS, machine
from shared.atomic import atomic_write_json, atomic_write_text
from shared.cli import OneLineParser, run_main
from shared.config import replace, to_dict
from shared.errors import ConfigError
from shared.runtime import bf16_autocast, resolve_device, seed_everything, set_cpu_threads, use_bf16
from shared.training import TrainConfig
from shared.training.ema import EMA
from shared.training.loop import lr_at


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(model: torch.nn.Module, batches, tcfg: TrainConfig, device: torch.device, seed: int, desc: str):
    """Train `model` (forward((x, y)) -> loss) for tcfg.steps steps; returns (sampling model, wall seconds, last
    loss). The sampling model is the EMA copy when tcfg.ema_decay > 0. The global RNG is seeded with `seed` first,
    so two models trained with the same seed see the same flips, timesteps, noise and label dropout."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay)
    ema = EMA(model, tcfg.ema_decay) if tcfg.ema_decay > 0 else None
    seed_everything(seed)
    _sync(device)
    t0 = time.perf_counter()
    bar = tqdm(range(tcfg.steps), desc=desc, file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    loss = torch.zeros(())
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tcfg)
        x, y = (t.to(device, non_blocking=True) for t in batches.batch(step))
        opt.zero_grad(set_to_none=True)
        with bf16_autocast(device, tcfg.amp):
            loss = model((x, y))
        loss.backward()
        if tcfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        if ema is not None:
            ema.update(model)
        if step % 25 == 0 or step + 1 == tcfg.steps:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    _sync(device)
    wall = time.perf_counter() - t0
    sampler = (ema.model if ema is not None else model).eval()
    return sampler, wall, loss.item()


@torch.no_grad()
def draw(model, x_T: torch.Tensor, labels: torch.Tensor, steps: int, guidance: float, amp: bool, batch: int):
    """uint8 (N, 3, S, S) images from x_T (N, 3, S, S) and labels (N,): DDIM, eta 0, guidance w, `batch` at a time;
    returns (images, wall seconds)."""
    from apps.art.data import from_unit

    device = next(model.parameters()).device
    _sync(device)
    t0 = time.perf_counter()
    out = []
    for x, y in zip(x_T.split(batch), labels.split(batch)):
        with bf16_autocast(device, amp):
            img = model.sample(len(y), cond=y.to(device), x_T=x.to(device), steps=steps, eta=0.0, guidance=guidance)
        out.append(from_unit(img.float().cpu()))
    _sync(device)
    return torch.cat(out), time.perf_counter() - t0


def compare(cfg: ArtConfig, device: torch.device, sample_steps: int, guidance: float, sample_batch: int) -> dict:
    """Train both models on the run's data, sample both, score them; returns the results dict."""
    from apps.art.metrics import quality_table
    from apps.art.models import build_model
    from apps.art.training import ImageBatches, load_run_data

    tcfg = cfg.diffusion_train
    data = load_run_data(cfg)
    train_set, held = data.train, data.held
    k = len(data.full.classes)
    if held.n < 2:
        raise ConfigError(f"only {held.n} held-out images in {data.source}; raise --data.holdout or add images")
    print(
        f"data: {train_set.n} training and {held.n} held-out {cfg.data.image_size} px images, {k} classes "
        f"({data.source})",
        file=sys.stderr,
    )
    seed_everything(tcfg.seed)
    ours = build_model("diffusion", cfg, k)
    seed_everything(tcfg.seed)
    peer = DiffusersDDPM(cfg, k)
    params = {"ours": count_parameters(ours), "diffusers": count_parameters(peer)}
    print(f"parameters: ours {params['ours']:,}, diffusers {params['diffusers']:,}", file=sys.stderr)

    g = torch.Generator().manual_seed(cfg.eval.seed)
    s = cfg.data.image_size
    x_T = torch.randn(held.n, 3, s, s, generator=g)  # the same starting noise for both samplers
    sets, timing = {"real": held.images}, {}
    for name, model in (("ours", ours), ("diffusers", peer)):
        batches = ImageBatches(train_set.images, train_set.labels, tcfg.batch_size, tcfg.seed, cfg.data.flip)
        sampler, wall, loss = train(model, batches, tcfg, device, tcfg.seed + 1, desc=f"train {name}")
        images, sample_wall = draw(sampler, x_T, held.labels, sample_steps, guidance, tcfg.amp, sample_batch)
        sets[name] = images
        timing[name] = {
            "train_s": wall,
            "train_img_per_s": tcfg.steps * tcfg.batch_size / wall,
            "final_loss": loss,
            "sample_s": sample_wall,
            "sample_img_per_s": held.n / sample_wall,
        }
        print(f"{name}: trained in {wall:.1f} s (loss {loss:.4f}), sampled {held.n} in {sample_wall:.1f} s",
              file=sys.stderr)  # fmt: skip
        model.cpu()
    table = quality_table(sets, train_set.images, seed=cfg.eval.seed)
    metrics = [m for m in table["ours"] if m == "kid" or m.startswith("swd")]
    return {
        "machine": machine(),
        "device": _device_name(device),
        "date": date.today().isoformat(),
        "preset": cfg.preset,
        "data": {"source": data.source, "train": train_set.n, "held": held.n, "classes": data.full.classes},
        "parameters": params,
        "train": {
            "steps": tcfg.steps,
            "batch_size": tcfg.batch_size,
            "lr": tcfg.lr,
            "warmup_steps": tcfg.warmup_steps,
            "lr_schedule": tcfg.lr_schedule,
            "ema_decay": tcfg.ema_decay,
            "grad_clip": tcfg.grad_clip,
            "amp_bf16": use_bf16(device, tcfg.amp),
            "seed": tcfg.seed,
        },
        "sampling": {"sampler": "DDIM", "steps": sample_steps, "eta": 0.0, "guidance": guidance, "n": held.n},
        "timing": timing,
        "quality": table,
        "ours_better": {m: table["ours"][m] < table["diffusers"][m] for m in metrics},
        "config": to_dict(cfg),
    }


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def markdown(r: dict) -> str:
    """The results as a short Markdown report."""
    t, tr, sp = r["timing"], r["train"], r["sampling"]
    cols = [m for m in r["quality"]["ours"] if m == "kid" or m.startswith("swd")]
    lines = [
        f"# Art diffusion vs diffusers DDPM: preset {r['preset']}, {r['device']}, {r['date']}",
        "",
        f"Data: {r['data']['train']} training / {r['data']['held']} held-out images, {len(r['data']['classes'])} "
        f"classes ({r['data']['source']}). Parameters: ours {r['parameters']['ours']:,}, diffusers "
        f"{r['parameters']['diffusers']:,}. Both: {tr['steps']} steps of batch {tr['batch_size']}, AdamW lr "
        f"{tr['lr']} ({tr['warmup_steps']} warm-up, {tr['lr_schedule']}), EMA {tr['ema_decay']}, clip "
        f"{tr['grad_clip']}, bf16 autocast {tr['amp_bf16']}, seed {tr['seed']}; {sp['n']} samples each with "
        f"{sp['steps']} DDIM steps, guidance {sp['guidance']}, the held-out labels and the same starting noise.",
        "",
        "Quality against the training images (lower is better; `real` = the held-out images themselves):",
        "",
        "| set | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name, row in r["quality"].items():
        cells = []
        for m in cols:
            std = row.get(f"{m}_std")
            cells.append(f"{row[m]:.4g}" + (f" ± {std:.2g}" if std is not None else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| model | parameters | train (s) | train img/s | sample (s) | sample img/s | final loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, x in t.items():
        lines.append(
            f"| {name} | {r['parameters'][name]:,} | {x['train_s']:.1f} | {x['train_img_per_s']:.1f} | "
            f"{x['sample_s']:.1f} | {x['sample_img_per_s']:.2f} | {x['final_loss']:.4f} |"
        )
    better = ", ".join(f"{m} {'yes' if ok else 'no'}" for m, ok in r["ours_better"].items())
    lines += ["", f"Ours better than diffusers: {better}.", ""]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m benchmarks.art_vs_diffusers",
        description=(
            "Train the art app's diffusion model and a diffusers UNet2DModel + DDPMScheduler of the same parameter "
            "count on the same data with the same loop, sample both with DDIM and classifier-free guidance, and "
            "write their KID / SWD to benchmarks/results/art-vs-diffusers-<preset>-<device>-<date>.json and .md. "
            "Needs diffusers (pip install -e .[bench]); builds models from configs only (never the Hub)."
        ),
    )
    p.add_argument("--preset", default="portraits", choices=PRESETS,
                   help="the app preset whose data, model and training budget both models use (default portraits: "
                        "64 px, 35M parameters, 30,000 steps of 64: a GPU job)")  # fmt: skip
    p.add_argument("--steps", type=int, default=0, help="training steps for each model (0 = the preset's)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or cuda:N")
    p.add_argument("--sample-steps", type=int, default=SAMPLE_STEPS, help="DDIM steps when sampling (default 50)")
    p.add_argument("--guidance", type=float, default=None, help="CFG weight (default: the preset's, 1.5)")
    p.add_argument("--sample-batch", type=int, default=256, help="images per sampling call")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the .json and .md (default %(default)s)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.steps < 0 or args.sample_steps < 1 or args.sample_batch < 1:
        raise ConfigError("--steps must be >= 0, --sample-steps and --sample-batch >= 1")
    set_cpu_threads(args.threads)
    cfg = preset(args.preset)
    if args.steps:
        cfg = replace(cfg, diffusion_train=replace(cfg.diffusion_train, steps=args.steps))
    device = resolve_device(args.device)
    guidance = cfg.diffusion.guidance if args.guidance is None else args.guidance
    result = compare(cfg, device, args.sample_steps, guidance, args.sample_batch)
    stem = f"art-vs-diffusers-{cfg.preset}-{result['device']}-{result['date']}".replace(" ", "_")
    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
    atomic_write_json(json_path, result)
    report = markdown(result)
    atomic_write_text(md_path, report)
    print(report)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
