"""The molecules app's config; `python -m apps.molecules <command> --help` is derived from it.

One `MoleculesConfig` drives every command, so prepare / train / sample / evaluate / interpolate / report of one
run see the same data, models and sampling settings. Three presets set the sizes: `tiny` (tests, seconds),
`default` (`make molecules`, about 20 minutes on 2 CPU cores), `full` (all 1.58M MOSES molecules, a GPU). Options
on the command line override the preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.config import replace
from shared.errors import ConfigError
from shared.training import TrainConfig

PROPERTY_NAMES = ("logp", "sa", "qed", "weight")


@dataclass
class DataConfig:
    """Which molecules to train on."""

    source: str = "moses"
    """'moses' (the MOSES training set, prepared from the molsets wheel) or a path to your own .smi/.csv/.sdf
    (optionally .gz) file of molecules."""
    n_train: int = 200_000
    """Molecules drawn at random from the source to train on (0 = all of them)."""
    n_props: int = 60_000
    """Training molecules whose properties are computed for conditioning (0 = all); the rest train with every
    property hidden. Properties cost about 1 ms per molecule (QED most), so this bounds set-up time."""
    max_tokens: int = 100
    """Longest molecule kept, in tokens (BOS and EOS included); longer ones are skipped and counted."""
    holdout: float = 0.05
    """For your own file: the fraction held out as the reference set for FCD / SNN / Frag / Scaf and for
    reconstruction (MOSES has its own test sets)."""
    seed: int = 0
    """Seed of the subsample and the hold-out split."""

    def __post_init__(self):
        if self.n_train < 0 or self.n_props < 0 or self.max_tokens < 8 or not 0.0 < self.holdout < 0.5:
            raise ConfigError(
                f"--data.n-train={self.n_train} must be >= 0, --data.max-tokens={self.max_tokens} >= 8 and "
                f"--data.holdout={self.holdout} in (0, 0.5)"
            )


@dataclass
class LMConfig:
    """The autoregressive language model (the CharRNN-class generator), conditioned on properties."""

    representation: str = "smiles"
    """smiles (atom-level regex tokens) or selfies (every decoded string is a valid molecule)."""
    arch: str = "lstm"
    """lstm or transformer."""
    d_model: int = 256
    """Hidden width (LSTM units / transformer width)."""
    n_layers: int = 2
    """Stacked LSTM layers / transformer blocks."""
    n_heads: int = 4
    """Attention heads (transformer only)."""
    dropout: float = 0.0
    """Dropout; 0 at the CPU budget (less than a few epochs), 0.2 for the full data."""
    p_keep: float = 0.5
    """While training, each of the four properties is shown to the model with this probability (hidden ones
    are marked as such), so one model serves any subset of targets."""
    p_uncond: float = 0.25
    """...and with this probability all properties are hidden: the unconditional model, used for MOSES sampling."""

    def __post_init__(self):
        if self.representation not in ("smiles", "selfies"):
            raise ConfigError(f"--lm.representation must be smiles or selfies, got {self.representation!r}")
        if self.arch not in ("lstm", "transformer"):
            raise ConfigError(f"--lm.arch must be lstm or transformer, got {self.arch!r}")
        if self.d_model < 8 or self.n_layers < 1 or not 0 <= self.dropout < 1:
            raise ConfigError(f"--lm sizes must be positive and dropout in [0, 1): {self}")
        if not (0 <= self.p_keep <= 1 and 0 <= self.p_uncond <= 1):
            raise ConfigError(f"--lm.p-keep={self.p_keep} and --lm.p-uncond={self.p_uncond} must be in [0, 1]")


@dataclass
class VAEConfig:
    """The SMILES VAE (bidirectional GRU encoder, LSTM decoder conditioned on the latent code)."""

    latent_dim: int = 64
    """Latent code width."""
    d_model: int = 256
    """Encoder and decoder width."""
    n_layers: int = 1
    """Encoder GRU and decoder LSTM layers."""
    beta: float = 0.1
    """KL weight; below 1 keeps the code informative (reconstruction), at the price of a looser prior fit."""

    def __post_init__(self):
        if self.latent_dim < 2 or self.d_model < 8 or self.n_layers < 1 or self.beta < 0:
            raise ConfigError(f"--vae sizes must be positive and beta >= 0: {self}")


def _lm_train() -> TrainConfig:
    return TrainConfig(
        steps=4000,
        batch_size=128,
        lr=2e-3,
        lr_schedule="cosine",
        final_lr_ratio=0.05,
        warmup_steps=100,
        checkpoint_every=500,
    )


def _vae_train() -> TrainConfig:
    return TrainConfig(
        steps=2000,
        batch_size=128,
        lr=2e-3,
        lr_schedule="cosine",
        final_lr_ratio=0.05,
        warmup_steps=100,
        checkpoint_every=500,
    )


@dataclass
class MoleculesConfig:
    """One run of the molecules app: data, models, sampling and evaluation."""

    run_name: str = "default"
    """Outputs go to <runs-dir>/molecules/<run-name>/; the same name resumes."""
    runs_dir: str = "runs"
    """Root folder of run outputs."""
    preset: str = "default"
    """tiny | default | full: the sizes this run started from (options override them)."""
    models: tuple[str, ...] = ("lm", "vae")
    """Models to train: lm (language model, conditional) and/or vae (latent space)."""
    data: DataConfig = field(default_factory=DataConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    lm_train: TrainConfig = field(default_factory=_lm_train)
    vae_train: TrainConfig = field(default_factory=_vae_train)
    n_samples: int = 30_000
    """Molecules sampled for the MOSES evaluation (the benchmark's N; FCD depends on it)."""
    temperature: float = 1.0
    """Sampling temperature (1 = the model's distribution; below 1 is more conservative, less diverse)."""
    top_k: int = 0
    """Sample only among the k most likely tokens (0 = all)."""
    target_temperature: float = 0.8
    """Sampling temperature for property targets (`sample --target`, the conditional check): far from the
    training distribution (e.g. qed=0.5, logp=5) the model's own temperature gives too many invalid molecules."""
    target: tuple[str, ...] = ()
    """Property targets for `sample`, e.g. `--target qed=0.9 logp=2.5` (properties: logp, sa, qed, weight);
    a range `qed=0.6:0.9` spreads the batch over it by stratified sampling."""
    rerank: bool = True
    """With --target: sample a larger pool and keep the molecules nearest the targets by importance resampling."""
    n: int = 1000
    """Molecules written by `sample` (valid ones)."""
    interpolate: tuple[str, ...] = ()
    """`interpolate`: two SMILES to morph between (default: two test molecules)."""
    steps: int = 9
    """Points on an interpolation path, ends included."""
    interp_tries: int = 16
    """Where the greedy decode of an interpolation point is not a valid molecule, decode it this many times at
    temperature 0.7 and keep the most frequent valid one (Gomez-Bombarelli et al. 2018); 0 = greedy only."""
    cond_targets: tuple[str, ...] = ("qed=0.5", "qed=0.7", "qed=0.9", "logp=1", "logp=3", "logp=5")
    """Targets of the conditional-generation check in `evaluate` (1,000 valid molecules each)."""
    n_recon: int = 1000
    """Held-out molecules reconstructed through the VAE in `evaluate`."""
    seed: int = 0
    """Seed of sampling (training seeds are --lm-train.seed and --vae-train.seed)."""
    threads: int = 0
    """CPU threads for torch (0 = all cores)."""

    def __post_init__(self):
        bad = [m for m in self.models if m not in ("lm", "vae")]
        if bad or not self.models:
            raise ConfigError(f"--models must name lm and/or vae, got {','.join(self.models) or 'nothing'}")
        if self.n_samples < 1 or self.n < 1 or self.n_recon < 0 or self.steps < 2 or self.interp_tries < 0:
            raise ConfigError("--n-samples, --n must be >= 1, --n-recon and --interp-tries >= 0 and --steps >= 2")
        if self.temperature < 0 or self.target_temperature < 0 or self.top_k < 0:
            raise ConfigError(f"--temperature={self.temperature} and --top-k={self.top_k} must be >= 0")


def preset(name: str) -> MoleculesConfig:
    """The named preset (see the module docstring)."""
    if name == "default":
        return MoleculesConfig()
    if name == "tiny":
        return replace(
            MoleculesConfig(preset="tiny"),
            data=DataConfig(n_train=2000),
            lm=LMConfig(d_model=32, n_layers=1),
            vae=VAEConfig(latent_dim=8, d_model=32, n_layers=1),
            lm_train=replace(_lm_train(), steps=30, batch_size=32, warmup_steps=0, checkpoint_every=20),
            vae_train=replace(_vae_train(), steps=20, batch_size=32, warmup_steps=0, checkpoint_every=20),
            n_samples=300,
            n=50,
            cond_targets=("qed=0.7", "logp=3"),
            n_recon=50,
        )
    if name == "full":
        return replace(
            MoleculesConfig(preset="full"),
            data=DataConfig(n_train=0),
            lm=LMConfig(d_model=768, n_layers=3, dropout=0.2),
            vae=VAEConfig(latent_dim=128, d_model=512, n_layers=2, beta=0.1),
            lm_train=replace(
                _lm_train(), steps=120_000, batch_size=256, lr=1e-3, warmup_steps=1000, checkpoint_every=5000
            ),
            vae_train=replace(
                _vae_train(), steps=80_000, batch_size=256, lr=1e-3, warmup_steps=1000, checkpoint_every=5000
            ),
        )
    raise ConfigError(f"unknown --preset {name!r}: choose tiny, default or full")
