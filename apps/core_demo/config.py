"""The core demo's config: which families to train, at what size, where the run goes.

The command line (`python -m apps.core_demo --help`) is derived from these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.errors import ConfigError

FAMILIES = ("vae", "diffusion", "gan", "rbm", "ar")


@dataclass
class DemoConfig:
    """Train every generative family of the shared core on real small data and write one report."""

    run_name: str = "demo"
    """Name of the run folder runs/core-demo/<run-name>/; re-running with the same name resumes it."""
    runs_dir: str = "runs"
    """Root folder of all runs."""
    families: tuple[str, ...] = FAMILIES
    """Families to train, comma-separated: vae (conditional VAE on digits), diffusion (class-conditional DDPM on
    digits), gan (ring of 8 Gaussians), rbm (3x3 bars-and-stripes), ar (autoregressive pixel model of digits)."""
    preset: Literal["tiny", "default"] = "default"
    """Size of models and training budgets: 'tiny' for tests (seconds), 'default' for the demo (minutes)."""
    data: str = ""
    """Optional .npz with an `images` array (N,H,W) or (N,1,H,W) of values in [0,1] and optional integer `labels`,
    used instead of the bundled digits for the vae/diffusion/ar families (H=W, a multiple of 4)."""
    steps: int = 0
    """Override every family's training steps (0 = the preset's)."""
    checkpoint_every: int = 0
    """Override the checkpoint interval (0 = the preset's)."""
    log_every: int = 0
    """Override the logging interval (0 = the preset's)."""
    seed: int = 0
    """Seed of every random stream."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N'."""
    evaluate: bool = True
    """Evaluate the trained models and write metrics.json and report.html."""
    eval_samples: int = 1000
    """Samples drawn per family for evaluation."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self):
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ConfigError(
                f"unknown family {unknown[0] if unknown else '(none)'!r}; choose from {','.join(FAMILIES)}"
            )
        if self.steps < 0 or self.checkpoint_every < 0 or self.log_every < 0:
            raise ConfigError("steps, checkpoint_every and log_every must be >= 0 (0 keeps the preset's value)")
        if self.eval_samples < 10:
            raise ConfigError(f"eval_samples must be at least 10, got {self.eval_samples}")


@dataclass
class SampleConfig:
    """Draw samples from a trained core-demo checkpoint and save them as a PNG grid (images) or CSV (points)."""

    checkpoint: str = ""
    """A checkpoint folder, or a family's run folder (the newest valid checkpoint is used)."""
    n: int = 64
    """Number of samples."""
    out: str = "samples.png"
    """Output file: .png for image grids, .csv for points / patterns."""
    label: int = -1
    """Class to condition on for conditional families (-1 = cycle through all classes)."""
    seed: int = 0
    """Seed of the sampling generator."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N'."""

    def __post_init__(self):
        if not self.checkpoint:
            raise ConfigError("--checkpoint is required (e.g. runs/core-demo/demo/diffusion)")
        if self.n < 1:
            raise ConfigError(f"--n must be at least 1, got {self.n}")
