"""Training the art models: the run's data (loaded once, split once), batches with flips, fixed-seed progress grids.

Every model trains through the shared loop (`shared.training.fit`), so checkpoints are atomic safetensors, a rerun
with the same run name resumes, and Ctrl-C checkpoints the step in progress. During training, every
`eval_every` steps, the same seeded noise and labels are sampled into `runs/art/<run>/<model>/progress/
step_<N>.png`: one row per class (up to 10 classes), so the report can show how samples sharpen over training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from apps.art.collections import prepare_collection
from apps.art.config import ArtConfig
from apps.art.data import ImageSet, load_folder, split_holdout, to_unit
from apps.art.models import Trained, build_model, generate
from shared.atomic import atomic_write_bytes
from shared.cli import say
from shared.config import to_dict
from shared.report.figures import image_grid_array, png_bytes
from shared.runs import RunDir
from shared.training import StepBatches, fit

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / "data" / "art" / "cache"  # gitignored (data/*/cache/)
PROGRESS_CLASSES, PROGRESS_COLUMNS = 10, 6


@dataclass
class RunData:
    """The run's images: all of them, and the stratified training / held-out split (fixed by cfg.data.seed)."""

    full: ImageSet
    train: ImageSet
    held: ImageSet
    source: str


def image_folder(cfg: ArtConfig) -> Path:
    """The folder to read: --data.folder, or the default collection (prepared from Debian packages on first use)."""
    if cfg.data.folder:
        return Path(cfg.data.folder).expanduser()
    return prepare_collection(cfg.data.collection)


def load_run_data(cfg: ArtConfig) -> RunData:
    folder = image_folder(cfg)
    full = load_folder(
        folder, cfg.data.image_size, fit=cfg.data.fit, background=tuple(cfg.data.background), cache_dir=CACHE_DIR
    )
    if full.skipped:
        say(f"skipped {len(full.skipped)} unreadable files in {folder} (first: {full.skipped[0][0]}: "
            f"{full.skipped[0][1]})")  # fmt: skip
    train, held = split_holdout(full, cfg.data.holdout, seed=cfg.data.seed)
    return RunData(full, train, held, str(folder))


class ImageBatches(StepBatches):
    """Batches (x in [-1, 1] (B, 3, S, S), y (B,)) from uint8 images, with random horizontal flips when asked.

    The flips draw from torch's global RNG, which checkpoints save, so a resumed run sees the same batches."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, flip: bool):
        super().__init__((images, labels), batch_size, seed=seed)
        self.flip = flip

    def shard(self, rank: int, world_size: int) -> ImageBatches:
        out = ImageBatches(*self.tensors, self.batch_size, self.seed, self.flip)
        out.rank, out.world_size = rank, world_size
        return out

    def batch(self, step: int):
        x, y = super().batch(step)
        x = to_unit(x)
        if self.flip:
            mirror = torch.rand(len(x)) < 0.5
            x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        return x, y


def progress_labels(num_classes: int) -> torch.Tensor:
    """(rows * PROGRESS_COLUMNS,) labels: class c fills row c, for the first PROGRESS_CLASSES classes."""
    rows = min(num_classes, PROGRESS_CLASSES)
    return torch.arange(rows).repeat_interleave(PROGRESS_COLUMNS)


def progress_dir(run: RunDir, kind: str) -> Path:
    return run.path / kind / "progress"


def train_model(cfg: ArtConfig, run: RunDir, kind: str, data: RunData) -> Trained:
    """Train (or resume) model `kind` on the run's training images; returns the weights to sample from."""
    tcfg = cfg.train_config(kind)
    classes = data.full.classes
    model = build_model(kind, cfg, len(classes))
    n_params = sum(p.numel() for p in model.parameters())
    say(f"{kind}: {n_params / 1e6:.2f}M parameters, {data.train.n} training images in {len(classes)} classes, "
        f"{tcfg.steps} steps of {tcfg.batch_size}")  # fmt: skip
    batches = ImageBatches(data.train.images, data.train.labels, tcfg.batch_size, tcfg.seed, cfg.data.flip)
    out_dir = progress_dir(run, kind)
    labels = progress_labels(len(classes))

    def progress(sampler, step: int) -> dict:
        trained = Trained(kind, sampler, classes, step, tcfg.amp)
        x = generate(trained, labels, cfg, seed=cfg.eval.seed)  # the same noise at every step
        grid = image_grid_array(x, nrow=PROGRESS_COLUMNS, scale=max(1, 64 // cfg.data.image_size))
        atomic_write_bytes(out_dir / f"step_{step:06d}.png", png_bytes(grid))
        return {}

    out_dir.mkdir(parents=True, exist_ok=True)
    result = fit(
        model,
        batches,
        tcfg,
        run.sub(kind),
        eval_fn=progress,
        config={"art": to_dict(cfg), "kind": kind, "classes": classes, "source": data.source},
        desc=f"train {kind}",
    )
    return Trained(kind, result.sampling_model, classes, result.step, tcfg.amp)
