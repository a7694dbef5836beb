"""`python -m apps.molecules <command>`: drug-like molecule generation, scored with the MOSES benchmark.

    python -m apps.molecules all                              # prepare, train, evaluate, report (make molecules)
    python -m apps.molecules prepare                          # MOSES from the molsets wheel into data/molecules/
    python -m apps.molecules train                            # the language model and the VAE (resumable)
    python -m apps.molecules sample --n 1000                  # samples/sample.csv and .sdf
    python -m apps.molecules sample --target qed=0.9 logp=2.5 # molecules near property targets
    python -m apps.molecules sample --target qed=0.6:0.9      # ... spread over a range (stratified)
    python -m apps.molecules evaluate                         # MOSES metrics on 30,000 samples, conditional and
                                                              # latent-space checks -> metrics.json
    python -m apps.molecules interpolate --interpolate "CCO c1ccccc1O"   # a path through the VAE latent space
    python -m apps.molecules report                           # report.html
    python -m apps.molecules train --data.source my.smi       # your own molecules (.smi/.csv/.sdf, .gz too)

Every command takes the same options (`python -m apps.molecules all --help`) plus `--preset tiny|default|full`;
outputs go to runs/molecules/<run-name>/.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from apps.molecules import chem
from apps.molecules import data as moldata
from apps.molecules.conditioning import ConditionedBatches, PropertyScaler, parse_targets
from apps.molecules.config import MoleculesConfig, preset
from apps.molecules.generate import (
    interpolate,
    reconstruction,
    sample_lm,
    sample_near,
    valid_unique,
)
from apps.molecules.models import Bundle, build_lm, build_vae
from apps.molecules.tokens import Tokenizer, Vocab
from shared.atomic import atomic_path, atomic_write_json
from shared.cli import command_parser, early_options, parse_config, run_main, say, split_command
from shared.config import to_dict
from shared.errors import ConfigError, DataError
from shared.runs import RunDir
from shared.runtime import set_cpu_threads
from shared.training import fit

APP = "molecules"


# ---------------------------------------------------------------------------------------------------- data


def open_run(cfg: MoleculesConfig) -> RunDir:
    run = RunDir.for_config(APP, cfg)
    if cfg.threads:
        set_cpu_threads(cfg.threads)
    return run


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{s}\n" for s in lines))


def _read_lines(path: Path) -> list[str]:
    return [s for s in path.read_text().splitlines() if s]


def molecule_sets(cfg: MoleculesConfig, run: RunDir) -> tuple[list[str], list[str]]:
    """(training molecules, held-out molecules) of the run, chosen once and kept in the run folder.

    MOSES: a random subsample of its training set (the file is ordered, never take its head) and its test set.
    Your own file: read, cleaned (skipped entries counted), shuffled and split by --data.holdout."""
    train_file, held_file = run.path / "train.smi", run.path / "holdout.smi"
    if train_file.is_file() and held_file.is_file():
        return _read_lines(train_file), _read_lines(held_file)
    if cfg.data.source == "moses":
        train = moldata.subsample(moldata.load_split("train"), cfg.data.n_train or 10**9, cfg.data.seed)
        held = moldata.subsample(moldata.load_split("test"), 10_000, cfg.data.seed)
        say(f"MOSES: {len(train):,} training molecules drawn at random (seed {cfg.data.seed})")
    else:
        mf = moldata.read_molecules(cfg.data.source)
        say(mf.summary())
        mols = moldata.subsample(mf.smiles, len(mf.smiles), cfg.data.seed)  # shuffled
        n_held = max(1, int(round(cfg.data.holdout * len(mols))))
        if len(mols) - n_held < 10:
            raise DataError(f"{cfg.data.source}: only {len(mols)} usable molecules; bring at least 20")
        held, train = mols[:n_held], mols[n_held:]
        if cfg.data.n_train:
            train = train[: cfg.data.n_train]
    _write_lines(train_file, train)
    _write_lines(held_file, held)
    return train, held


def tokenise(smiles: Sequence[str], tokenizer: Tokenizer, vocab: Vocab | None, max_len: int):
    """Token ids (N, max_len), the vocabulary, and which molecules were kept (too long / unknown tokens dropped)."""
    token_lists = []
    for s in smiles:
        try:
            token_lists.append(tokenizer.split(s))
        except ValueError:
            token_lists.append(None)
    vocab = vocab or Vocab.build([t for t in token_lists if t is not None])
    ids, kept = vocab.encode([t or [] for t in token_lists], max_len)
    kept &= np.array([t is not None for t in token_lists])
    dropped = int((~kept).sum())
    if dropped:
        say(f"skipped {dropped:,} of {len(smiles):,} molecules: longer than {max_len - 2} tokens or not tokenisable")
    return ids[torch.from_numpy(kept)], vocab, kept


def training_properties(run: RunDir, smiles: list[str], n_props: int) -> np.ndarray:
    """(N, 4) logp, sa, qed, weight of the first n_props training molecules (they are in random order), NaN for
    the rest; computed once over all cores and cached in the run."""
    path = run.path / "train_props.npy"
    if path.is_file():
        props = np.load(path, allow_pickle=False)
        if len(props) == len(smiles):
            return props
    n_props = min(n_props or len(smiles), len(smiles))
    rest = smiles[n_props:]
    smiles = smiles[:n_props]
    workers = max(1, min(os.cpu_count() or 1, 8))
    say(f"computing logP, SA, QED and weight of {len(smiles):,} training molecules on {workers} processes")
    chunks = [smiles[i : i + 5000] for i in range(0, len(smiles), 5000)]
    if workers > 1 and len(chunks) > 1:
        with get_context("spawn").Pool(workers) as pool:
            props = np.concatenate(pool.map(chem.property_table, chunks))
    else:
        props = np.concatenate([chem.property_table(c) for c in chunks])
    props = np.concatenate([props, np.full((len(rest), props.shape[1]), np.nan)])
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, props)
    return props


# ---------------------------------------------------------------------------------------------------- train


def model_dir(run: RunDir, kind: str) -> Path:
    return run.path / "models" / kind


def train_model(cfg: MoleculesConfig, run: RunDir, kind: str) -> Bundle:
    """Train (or resume) the language model or the VAE; the final weights go to models/<kind>/."""
    train_cfg = cfg.lm_train if kind == "lm" else cfg.vae_train
    folder = model_dir(run, kind)
    if (folder / "model.json").is_file():
        bundle = Bundle.load(folder)
        if bundle_steps(folder) >= train_cfg.steps:
            say(f"{kind}: already trained ({folder})")
            return bundle
    train, _ = molecule_sets(cfg, run)
    tokenizer = Tokenizer(cfg.lm.representation if kind == "lm" else "smiles")
    ids, vocab, kept = tokenise(train, tokenizer, None, cfg.data.max_tokens)
    scaler, props = None, None
    if kind == "lm":
        props = training_properties(run, train, cfg.data.n_props)[kept]
        scaler = PropertyScaler.fit(props)
        model = build_lm(cfg.lm, len(vocab), cfg.data.max_tokens, vocab.pad_id, vocab.bos_id, vocab.eos_id)
        batches = ConditionedBatches(
            ids, props, scaler, train_cfg.batch_size, train_cfg.seed, cfg.lm.p_keep, cfg.lm.p_uncond, vocab.pad_id
        )
    else:
        model = build_vae(cfg.vae, len(vocab), cfg.data.max_tokens, vocab.pad_id, vocab.bos_id, vocab.eos_id)
        batches = ConditionedBatches(ids, None, None, train_cfg.batch_size, train_cfg.seed, pad_id=vocab.pad_id)
    n_params = sum(p.numel() for p in model.parameters())
    epochs = train_cfg.steps * train_cfg.batch_size / len(ids)
    say(
        f"{kind}: {n_params / 1e6:.2f}M parameters, {len(ids):,} molecules, vocabulary {len(vocab)}, "
        f"{train_cfg.steps} steps of {train_cfg.batch_size} ({epochs:.1f} epochs)"
    )
    result = fit(
        model,
        batches,
        train_cfg,
        run_dir=run.sub(f"train-{kind}"),
        config={"molecules": to_dict(cfg)},
        desc=f"train {kind}",
    )
    bundle = Bundle(
        kind,
        result.sampling_model.cpu(),
        vocab,
        tokenizer,
        cfg.data.max_tokens,
        cfg.lm if kind == "lm" else cfg.vae,
        scaler,
    )
    bundle.save(folder)
    atomic_write_json(folder / "trained.json", {"steps": result.step})
    return bundle


def bundle_steps(folder: Path) -> int:
    import json

    try:
        return int(json.loads((folder / "trained.json").read_text())["steps"])
    except (OSError, ValueError, KeyError):
        return 0


def load_model(cfg: MoleculesConfig, run: RunDir, kind: str) -> Bundle:
    folder = model_dir(run, kind)
    if not (folder / "model.json").is_file():
        raise ConfigError(f"run {cfg.run_name!r} has no trained {kind}: run `python -m apps.molecules train` first")
    return Bundle.load(folder)


def train_cmd(cfg: MoleculesConfig) -> dict:
    run = open_run(cfg)
    for kind in cfg.models:
        train_model(cfg, run, kind)
    return {"trained": list(cfg.models)}


# ---------------------------------------------------------------------------------------------------- sample


def sample_table(smiles: Sequence[str], train: set[str]) -> pd.DataFrame:
    """One row per sample: smiles (canonical when valid), valid, novel, and the four properties."""
    canon = [chem.canonical(s) for s in smiles]
    props = chem.property_table([c or "" for c in canon])
    df = pd.DataFrame({"smiles": [c or s for c, s in zip(canon, smiles)], "valid": [c is not None for c in canon]})
    df["novel"] = [c is not None and c not in train for c in canon]
    for j, name in enumerate(chem.PROPERTIES):
        df[name] = props[:, j]
    return df


def write_samples(df: pd.DataFrame, stem: Path) -> None:
    """stem.csv (all samples) and stem.sdf (valid ones, properties as SD fields), both atomic."""
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp, index=False)
    from rdkit import Chem

    with atomic_path(stem.with_suffix(".sdf")) as tmp:
        writer = Chem.SDWriter(str(tmp))
        for row in df[df["valid"]].itertuples(index=False):
            m = chem.mol(row.smiles)
            m.SetProp("_Name", row.smiles)
            for name in chem.PROPERTIES:
                m.SetDoubleProp(name, float(getattr(row, name)))
            m.SetProp("novel", str(bool(row.novel)))
            writer.write(m)
        writer.close()


def sample_cmd(cfg: MoleculesConfig) -> dict:
    targets = parse_targets(cfg.target)  # bad targets fail before anything is loaded
    run = open_run(cfg)
    lm = load_model(cfg, run, "lm")
    train = set(molecule_sets(cfg, run)[0])
    g = torch.Generator().manual_seed(cfg.seed)
    if targets:
        out = sample_near(
            lm, targets, cfg.n, 4 if cfg.rerank else 1, cfg.target_temperature, cfg.top_k, g, progress=True
        )
        smiles = out.smiles
        say(
            f"{len(smiles)} molecules near {' '.join(cfg.target)} from {out.drawn} draws "
            f"(valid {out.valid_fraction:.1%}" + (f", re-ranking ESS {out.ess:.0f})" if out.ess else ")")
        )
    else:
        smiles = valid_unique(
            sample_lm(
                lm, int(cfg.n * 1.3) + 10, temperature=cfg.temperature, top_k=cfg.top_k, generator=g, progress=True
            )
        )[: cfg.n]
    df = sample_table(smiles, train)
    write_samples(df, run.samples / "sample")
    summary = {k: round(float(df[k].median()), 3) for k in chem.PROPERTIES}
    say(f"wrote {len(df)} molecules to {run.samples / 'sample.csv'} and .sdf; medians {summary}")
    return summary


# -------------------------------------------------------------------------------------------------- evaluate


def evaluate_cmd(cfg: MoleculesConfig) -> dict:
    from apps.molecules.metrics import moses_metrics
    from apps.molecules.reference import load_filters, load_reference, reference_from_smiles

    run = open_run(cfg)
    train, held = molecule_sets(cfg, run)
    moldata.prepare()  # the MOSES filter SMARTS (and test sets) are needed for any source; a no-op once done
    metrics: dict = {"n_train": len(train)}
    g = torch.Generator().manual_seed(cfg.seed)
    if "lm" in cfg.models:
        lm = load_model(cfg, run, "lm")
        say(f"sampling {cfg.n_samples:,} molecules (temperature {cfg.temperature}, top-k {cfg.top_k or 'off'})")
        gen = sample_lm(lm, cfg.n_samples, temperature=cfg.temperature, top_k=cfg.top_k, generator=g, progress=True)
        if cfg.data.source == "moses":
            novelty_ref = set(moldata.load_split("train"))
            refs = {
                "test": load_reference(moldata.PREPARED_DIR / "test_stats.npz"),
                "testsf": load_reference(moldata.PREPARED_DIR / "test_scaffolds_stats.npz"),
            }
        else:
            novelty_ref = set(train)
            refs = {"test": reference_from_smiles(held)}
        df = sample_table(gen, novelty_ref)
        write_samples(df, run.samples / "generated")
        metrics.update(
            moses_metrics(
                gen,
                novelty_ref,
                refs,
                load_filters(moldata.PREPARED_DIR),
                n_jobs=min(os.cpu_count() or 1, 4),
                progress=True,
            )
        )
        metrics.update(conditional_check(cfg, lm, g, run))
    if "vae" in cfg.models:
        metrics.update(latent_check(cfg, load_model(cfg, run, "vae"), held, run))
    run.write_metrics(
        {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v) for k, v in metrics.items()}
    )
    say("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))[:2000])
    return metrics


def conditional_check(cfg: MoleculesConfig, lm: Bundle, g: torch.Generator, run: RunDir) -> dict:
    """For each target, the median property of 1,000 valid molecules: conditioned only, then re-ranked from a
    4x pool. All molecules go to samples/conditional.csv."""
    out, notes, rows = {}, [], []
    n = 1000 if cfg.preset != "tiny" else 50
    for item in cfg.cond_targets:
        (t,) = parse_targets([item])
        j = chem.PROPERTIES.index(t.name)
        key = f"cond_{t.name}_{t.lo:g}"
        for mode, pool in (("conditioned", 1), ("reranked", 4)):
            got = sample_near(lm, [t], n, rerank_pool=pool, temperature=cfg.target_temperature, generator=g)
            median = float(np.median(got.props[:, j]))
            out[f"{key}_median" + ("" if pool == 1 else "_reranked")] = median
            if pool == 1:
                out[f"{key}_valid"] = got.valid_fraction
            rows += [(item, t.name, t.lo, mode, s, v) for s, v in zip(got.smiles, got.props[:, j])]
        notes.append(
            f"{item}: median {out[f'{key}_median']:.3f} (re-ranked {out[f'{key}_median_reranked']:.3f}), "
            f"valid {out[f'{key}_valid']:.1%}"
        )
    df = pd.DataFrame(rows, columns=["target", "property", "target_value", "mode", "smiles", "value"])
    with atomic_path(run.samples / "conditional.csv") as tmp:
        df.to_csv(tmp, index=False)
    say("conditional generation: " + "; ".join(notes))
    return out


def latent_check(cfg: MoleculesConfig, vae: Bundle, held: list[str], run: RunDir) -> dict:
    """Exact reconstruction of held-out molecules, and the valid fraction inside interpolation paths between
    pairs of held-out molecules (samples/interpolation.csv)."""
    out = reconstruction(vae, held[: cfg.n_recon])
    rng = np.random.default_rng(cfg.seed)
    n_pairs = min(20, len(held) // 2)
    picks = rng.choice(len(held), size=2 * n_pairs, replace=False).reshape(n_pairs, 2)
    rows, inner, inner_greedy = [], [], []
    g = torch.Generator().manual_seed(cfg.seed)
    for k, (a, b) in enumerate(picks):
        path = interpolate(vae, held[a], held[b], cfg.steps, tries=cfg.interp_tries, generator=g)
        inner += path[1:-1]
        inner_greedy += interpolate(vae, held[a], held[b], cfg.steps, tries=0)[1:-1]
        rows += [(k, t, s, chem.mol(s) is not None) for t, s in zip(np.linspace(0, 1, len(path)), path)]
    out["interp_valid"] = sum(chem.mol(s) is not None for s in inner) / max(1, len(inner))
    out["interp_valid_greedy"] = sum(chem.mol(s) is not None for s in inner_greedy) / max(1, len(inner_greedy))
    out["interp_distinct"] = len(set(inner)) / max(1, len(inner))
    with atomic_path(run.samples / "interpolation.csv") as tmp:
        pd.DataFrame(rows, columns=["pair", "t", "smiles", "valid"]).to_csv(tmp, index=False)
    say(
        f"VAE: exact reconstruction {out['recon_exact']:.1%} of {out['recon_n']} held-out molecules, "
        f"valid decodes {out['recon_valid']:.1%}; interpolation valid {out['interp_valid']:.1%} "
        f"({out['interp_valid_greedy']:.1%} greedy only, {cfg.interp_tries} tries where invalid)"
    )
    return out


def interpolate_cmd(cfg: MoleculesConfig) -> dict:
    run = open_run(cfg)
    vae = load_model(cfg, run, "vae")
    if cfg.interpolate:
        if len(cfg.interpolate) != 2:
            raise ConfigError(f"--interpolate takes two SMILES, got {len(cfg.interpolate)}")
        a, b = cfg.interpolate
    else:
        held = molecule_sets(cfg, run)[1]
        a, b = held[0], held[1]
    path = interpolate(vae, a, b, cfg.steps, tries=cfg.interp_tries, generator=torch.Generator().manual_seed(cfg.seed))
    df = pd.DataFrame(
        {"t": np.linspace(0, 1, len(path)), "smiles": path, "valid": [chem.mol(s) is not None for s in path]}
    )
    with atomic_path(run.samples / "interpolate.csv") as tmp:
        df.to_csv(tmp, index=False)
    for t, s, v in df.itertuples(index=False):
        say(f"{t:4.2f}  {s}{'' if v else '   (invalid)'}")
    return {"path": path}


def prepare_cmd(cfg: MoleculesConfig) -> dict:
    path = moldata.prepare()
    say(f"MOSES prepared in {path}")
    return {"prepared": str(path)}


def report_cmd(cfg: MoleculesConfig) -> dict:
    from apps.molecules.report import build_report

    run = open_run(cfg)
    if not run.metrics_path.is_file():
        raise ConfigError(f"run {cfg.run_name!r} has no metrics.json: run `python -m apps.molecules evaluate` first")
    path = build_report(cfg, run)
    say(f"report: {path}")
    return {"report": str(path)}


def all_cmd(cfg: MoleculesConfig) -> dict:
    if cfg.data.source == "moses":
        prepare_cmd(cfg)
    train_cmd(cfg)
    evaluate_cmd(cfg)
    return report_cmd(cfg)


COMMANDS = {
    "all": all_cmd,
    "prepare": prepare_cmd,
    "train": train_cmd,
    "sample": sample_cmd,
    "evaluate": evaluate_cmd,
    "interpolate": interpolate_cmd,
    "report": report_cmd,
}


def main(argv=None) -> int:
    got = split_command(argv, COMMANDS, "apps.molecules", __doc__, "all")
    if got is None:
        return 0
    command, rest = got
    fn = COMMANDS[command]
    known = early_options(rest, preset="default")
    parser = command_parser("apps.molecules", command, fn)
    cfg = parse_config(MoleculesConfig, rest, defaults=preset(known.preset), parser=parser)
    fn(cfg)
    return 0


if __name__ == "__main__":
    run_main(main)
