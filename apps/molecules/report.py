"""The molecules report (runs/molecules/<run>/report.html): MOSES metrics beside the published baselines, drawn
samples, property distributions, conditional generation, the VAE latent space and the training curves.

Everything is read from what `python -m apps.molecules evaluate` left in the run folder (metrics.json,
samples/generated.csv, conditional.csv, interpolation.csv, train-*/train.jsonl); a missing file or key drops its
section (with a one-line note) instead of failing, so the page also works for a run with only one model.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from apps.molecules import chem
from apps.molecules import data as moldata
from apps.molecules.config import MoleculesConfig
from shared.errors import DataError
from shared.report import figures
from shared.report.page import Page
from shared.runs import RunDir
from shared.training.metrics_log import read_records

# Published MOSES results: README table of molecularsets/moses (mean of 3 runs, N = 30,000 samples), copied in
# ../shared/notes/metrics.md beside the repo ("Molecules"); TestSF / IntDiv2 columns from the same README table.
COLUMNS = {  # table column -> metrics.json key
    "Valid": "valid", "Unique@10k": "unique_10k", "FCD/Test": "fcd_test", "FCD/TestSF": "fcd_testsf",
    "SNN/Test": "snn_test", "Frag/Test": "frag_test", "Scaf/Test": "scaf_test", "IntDiv": "intdiv",
    "Filters": "filters", "Novelty": "novelty",
    "SNN/TestSF": "snn_testsf", "Frag/TestSF": "frag_testsf", "Scaf/TestSF": "scaf_testsf", "IntDiv2": "intdiv2",
}  # fmt: skip
MAIN = list(COLUMNS)[:10]
SCAFFOLD = ["FCD/TestSF", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF", "IntDiv2"]
PUBLISHED = {  # values in the order of COLUMNS
    "Train": (1.0, 1.0, 0.008, 0.4755, 0.6419, 1.0, 0.9907, 0.8567, 1.0, 1.0, 0.5859, 0.9986, 0.0, 0.8508),
    "CharRNN": (0.9748, 0.9994, 0.0732, 0.5204, 0.6015, 0.9998, 0.9242, 0.8562, 0.9943, 0.8419, 0.5649, 0.9983,
                0.1101, 0.8503),
    "VAE": (0.9767, 0.9984, 0.099, 0.567, 0.6257, 0.9994, 0.9386, 0.8558, 0.997, 0.6949, 0.5783, 0.9984, 0.0588,
            0.8498),
    "JTN-VAE": (1.0, 0.9996, 0.3954, 0.9382, 0.5477, 0.9965, 0.8964, 0.8551, 0.976, 0.9143, 0.5194, 0.9947, 0.1009,
                0.8493),
    "LatentGAN": (0.8966, 0.9968, 0.2968, 0.8281, 0.5371, 0.9986, 0.8867, 0.8565, 0.9735, 0.9498, 0.5132, 0.9972,
                  0.1072, 0.8505),
    "AAE": (0.9368, 0.9973, 0.5555, 1.0572, 0.6081, 0.991, 0.9022, 0.8557, 0.996, 0.7931, 0.5677, 0.9905, 0.0789,
            0.8499),
}  # fmt: skip
PUBLISHED_ROWS = {model: dict(zip(COLUMNS.values(), v)) for model, v in PUBLISHED.items()}  # model -> key -> value
PUBLISHED_SOURCE = "published (MOSES paper, mean of 3 runs)"
PUBLISHED_N = 30_000
BASELINES = [m for m in PUBLISHED if m != "Train"]
TOLERANCE = {"qed": 0.05, "logp": 0.5, "sa": 0.5, "weight": 25.0}  # |median - target| counted as on target
N_DRAWN, N_STRIPS, N_HOLDOUT_PROPS = 24, 3, 3000


def _csv(path: Path, columns: set[str]) -> pd.DataFrame | None:
    """The CSV, or None when it is missing, unreadable, empty or lacks one of `columns`."""
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    return df if len(df) and columns <= set(df.columns) else None


def _mol_grid_png(smiles: list, legends: list[str], per_row: int, size=(200, 160)) -> bytes:
    """RDKit drawings of molecules in a grid, each scaled on its own (bond length capped so small molecules are
    not blown up), as PNG bytes. A cell whose SMILES is None or does not parse reads "invalid" in grey."""
    from PIL import Image, ImageDraw, ImageFont
    from rdkit.Chem.Draw import rdMolDraw2D

    w, h = size
    grid = Image.new("RGB", (per_row * w, -(-len(smiles) // per_row) * h), "white")
    pen, font = ImageDraw.Draw(grid), ImageFont.load_default(size=14)
    for i, (s, legend) in enumerate(zip(smiles, legends)):
        x, y, m = (i % per_row) * w, (i // per_row) * h, chem.mol(s) if isinstance(s, str) else None
        if m is not None:
            d = rdMolDraw2D.MolDraw2DCairo(w, h)
            d.drawOptions().fixedBondLength, d.drawOptions().legendFontSize = 28, 14
            d.DrawMolecule(m, legend=legend)
            d.FinishDrawing()
            grid.paste(Image.open(io.BytesIO(d.GetDrawingText())).convert("RGB"), (x, y))
        elif legend:
            pen.text((x + w / 2, y + h * 0.45), "invalid", fill=(140, 140, 140), font=font, anchor="mm")
            pen.text((x + w / 2, y + h * 0.905), legend, fill=(140, 140, 140), font=font, anchor="mm")
    buf = io.BytesIO()
    grid.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def reference_properties(cfg: MoleculesConfig, run: RunDir) -> tuple[dict[str, np.ndarray] | None, str]:
    """(property -> values of the test molecules, their name), or (None, why not)."""
    if cfg.data.source == "moses":
        from apps.molecules import reference  # torch + ChemNet imports: only when needed

        try:
            ref = reference.load_reference(moldata.PREPARED_DIR / "test_stats.npz")
        except (DataError, OSError) as e:
            return None, f"no MOSES test statistics ({e})"
        return {p: np.asarray(getattr(ref, p), float) for p in chem.PROPERTIES}, "MOSES test"
    try:
        held = [s for s in (run.path / "holdout.smi").read_text().splitlines() if s][:N_HOLDOUT_PROPS]
    except OSError:
        return None, "no holdout.smi in the run folder"
    table = chem.property_table(held)
    return {p: table[:, j] for j, p in enumerate(chem.PROPERTIES)}, f"held-out molecules (n={len(held):,})"


def _num(v) -> float | None:
    """A finite float, or None for a missing / NaN / non-numeric metric (json can hold NaN, e.g. Scaf without
    any >= 2-ring scaffold)."""
    return float(v) if isinstance(v, (int, float)) and np.isfinite(v) else None


def _four(v) -> str:
    # MOSES-table style: up to 4 decimals, trailing zeros dropped (1.0572, 0.008, 1); NaN / None as a dash.
    return "–" if _num(v) is None else f"{v:.4f}".rstrip("0").rstrip(".")


def _row(values, name: str, source: str, columns: list[str]) -> dict:
    return {"model": name, **{c: values.get(COLUMNS[c]) for c in columns}, "source": source}


def moses_section(page: Page, m: dict, moses: bool, n: int, name: str, data_name: str) -> None:
    """Our MOSES metrics beside the published rows, then the scaffold-split, property and GuacaMol numbers."""
    ours = f"this run (N={n:,})"
    published = PUBLISHED_ROWS if moses else {}
    for columns, caption in (
        (MAIN, "MOSES metrics: FCD lower is better, all others higher."),
        (SCAFFOLD, "Scaffold test set (scaffolds absent from train; Scaf/TestSF is low by design) and IntDiv2."),
    ):
        if not any(COLUMNS[c] in m for c in columns):
            continue
        rows = [_row(m, name, ours, columns)] + [_row(v, k, PUBLISHED_SOURCE, columns) for k, v in published.items()]
        formats = dict.fromkeys(columns, _four)
        page.table(rows, ["model", *columns, "source"], caption, muted=(PUBLISHED_SOURCE,), formats=formats)
    if moses:
        page.callout(
            "FCD depends on the sample size N: compare only at equal N (published: N=30,000). The training set "
            "itself does not reach the published 0.008 (computed on all 1.58M molecules): a random 30,000-molecule "
            "sample of MOSES train reads FCD/Test 0.048 (measured), and Scaf/Test 0.948."
        )
    else:
        page.callout(
            f"Reference set: molecules held out from {data_name}; the published MOSES rows are on another "
            "test set and are not shown."
        )
    props = {f"Wasserstein {chem.PROPERTY_LABELS[p]}": m[f"{p}_w"] for p in chem.PROPERTIES if f"{p}_w" in m}
    if props:
        page.metrics(props, title="Property distributions: Wasserstein-1 distance to the test set (lower is better)")
    guaca = {"KL divergence score": m.get("guacamol_kl_score"), "FCD score, exp(-0.2 FCD)": m.get("guacamol_fcd_score")}
    guaca = {k: v for k, v in guaca.items() if v is not None}
    if guaca:
        page.metrics(guaca, title="GuacaMol definitions (reference: MOSES test, not ChEMBL); higher is better")


def property_figure(gen: pd.DataFrame, ref: dict | None, ref_name: str):
    """Four density panels: generated (valid) vs reference values of logP, SA, QED and weight."""
    fig, axes = figures.new_figure(1, 4, figsize=(12, 2.9))
    with figures.style():
        for ax, p in zip(axes, chem.PROPERTIES):
            g = gen[p].to_numpy(float)
            g = g[np.isfinite(g)]
            r = None if ref is None else ref[p][np.isfinite(ref[p])]
            edges = np.histogram_bin_edges(np.concatenate([g, r]) if r is not None else g, bins=50)
            ax.hist(g, bins=edges, density=True, histtype="step", linewidth=1.5, label="generated")
            if r is not None:
                ax.hist(r, bins=edges, density=True, histtype="step", linewidth=1.5, label=ref_name)
            ax.set(title=chem.PROPERTY_LABELS[p], ylabel="density" if p == "logp" else "")
        axes[0].legend()
    return fig


def _on_target(v, target: float, tol: float) -> str:
    return "–" if _num(v) is None else "yes" if abs(v - target) <= tol else "no"


def conditional_section(page: Page, m: dict, cond: pd.DataFrame | None, gen: pd.DataFrame | None) -> None:
    """Median property per target (conditioned / re-ranked) and the achieved distributions."""
    rows = []
    for key in [k for k in m if re.fullmatch(r"cond_(logp|sa|qed|weight)_.+_median", k)]:  # evaluation order
        prop, target = re.fullmatch(r"cond_([a-z]+)_(.+)_median", key).groups()
        med, rer, tol = m[key], m.get(key + "_reranked"), TOLERANCE[prop]
        hit = [_on_target(v, float(target), tol) for v in (med, rer)]
        rows.append(
            {
                "target": f"{prop}={target}",
                "median conditioned": med,
                "median re-ranked": rer,
                "valid": m.get(f"cond_{prop}_{target}_valid"),
                "tolerance": f"±{tol:g}",
                "within tolerance (cond. / re-ranked)": " / ".join(hit),
            }
        )
    if not rows:
        page.text("No conditional-generation results in metrics.json (the language model was not evaluated).")
        return
    page.table(
        rows,
        caption="Median property of valid molecules sampled for each target: conditioned on it only, "
        "and re-ranked (importance resampling from a 4x pool).",
        formats={"valid": "{:.1%}"},
    )
    props = [] if cond is None else [p for p in dict.fromkeys(cond["property"]) if p in chem.PROPERTIES]
    if not props:
        page.text("samples/conditional.csv is missing or empty: no distribution plot.")
        return
    fig, axes = figures.new_figure(1, len(props), figsize=(4.6 * len(props), 3.2), squeeze=False)
    with figures.style():
        for ax, p in zip(axes[0], props):
            sub = cond[cond["property"] == p]
            sub = sub[np.isfinite(sub["value"].to_numpy(float))]
            uncond = gen[p].dropna().to_numpy(float) if gen is not None else np.array([])
            edges = np.histogram_bin_edges(np.concatenate([sub["value"].to_numpy(float), uncond]), bins=40)
            if len(uncond):
                ax.hist(uncond, bins=edges, density=True, color="#bbbbbb", alpha=0.6, label="unconditional")
            for i, (target, t) in enumerate(sub.groupby("target", sort=False)):
                colour = figures.PALETTE[i % len(figures.PALETTE)]
                for mode, ls in (("conditioned", "-"), ("reranked", "--")):
                    v = t.loc[t["mode"] == mode, "value"].to_numpy(float)
                    if len(v):
                        ax.hist(v, edges, density=True, histtype="step", color=colour, ls=ls, label=f"{target} {mode}")
                ax.axvline(float(t["target_value"].iloc[0]), color=colour, linestyle=":", linewidth=1.4)
            ax.set(title=chem.PROPERTY_LABELS.get(p, p), ylabel="density")
            ax.legend(fontsize=7)
    page.figure(
        fig,
        caption="Achieved property per target (solid: conditioned, dashed: re-ranked; dotted line: "
        "the target; grey: unconditional samples).",
    )


def latent_section(page: Page, m: dict, interp: pd.DataFrame | None) -> None:
    """VAE reconstruction / interpolation rates and the first interpolation paths drawn as strips."""
    keys = {
        "recon_exact": "exact reconstruction of held-out molecules",
        "recon_valid": "valid reconstructions",
        "interp_valid": "valid molecules inside interpolation paths (greedy, then --interp-tries sampled decodes)",
        "interp_valid_greedy": "... with greedy decoding only",
        "interp_distinct": "distinct molecules among the interpolation points",
        "recon_n": "held-out molecules encoded",
    }
    if not any(k in m for k in keys):
        page.text("No VAE results in metrics.json (the VAE was not trained or evaluated).")
        return
    page.metrics({label: f"{m[k]:.1%}" if k != "recon_n" else int(m[k]) for k, label in keys.items() if k in m})
    if interp is None:
        page.text("samples/interpolation.csv is missing: no interpolation paths to draw.")
        return
    if "pair" not in interp.columns:  # written by the `interpolate` command: a single path
        interp = interp.assign(pair=0)
    pairs = list(dict.fromkeys(interp["pair"]))[:N_STRIPS]
    smiles, legends, per_row = [], [], int(interp.groupby("pair").size().max())
    for k in pairs:
        path = interp[interp["pair"] == k].sort_values("t")
        for t, s, ok in zip(path["t"], path["smiles"], path["valid"].astype(bool)):
            good = ok and isinstance(s, str) and chem.mol(s) is not None
            smiles.append(s if good else None)
            legends.append(f"t={t:.2f}")
        smiles += [None] * (per_row - len(path))
        legends += [""] * (per_row - len(path))
    page.figure(
        _mol_grid_png(smiles, legends, per_row, size=(160, 130)),
        caption="Decoded molecules along straight lines in latent space between two held-out molecules "
        "(one row per pair; blank cells: invalid decodes).",
    )


def curves_section(page: Page, run: RunDir) -> None:
    """Training loss (and the VAE's reconstruction / KL terms) against the step."""
    wanted = {"lm": ["loss/loss", "bits_per_token", "accuracy"], "vae": ["loss/loss", "recon", "kl"]}
    shown = False
    for kind, keys in wanted.items():
        path = run.path / f"train-{kind}" / "train.jsonl"
        try:
            records = read_records(path)
        except (DataError, OSError):
            continue
        keys = [k for k in keys if any(k in r for r in records)]
        if keys:
            page.figure(
                figures.training_curves(records, keys=keys, smooth=0.9),
                caption=f"{'Language model' if kind == 'lm' else 'VAE'} training ({path.parent.name}/train.jsonl).",
            )
            shown = True
    if not shown:
        page.text("No training logs (train-lm/train.jsonl, train-vae/train.jsonl) in the run folder.")


def build_report(cfg: MoleculesConfig, run: RunDir) -> Path:
    """Write run.report_path from the run's evaluation outputs; returns the path."""
    m = run.read_metrics()
    moses = cfg.data.source == "moses"
    n = int(m.get("n_generated", cfg.n_samples))
    arch = "LSTM" if cfg.lm.arch == "lstm" else "transformer"
    name = f"{arch} {cfg.lm.representation.upper()} LM" if "lm" in cfg.models else "SMILES VAE"
    data_name = "MOSES" if moses else Path(cfg.data.source).name
    page = Page(f"Molecules: {name} on {data_name}", subtitle=f"run {run.path.name}, preset {cfg.preset}")
    gen = _csv(run.samples / "generated.csv", {"smiles", "valid", "novel", *chem.PROPERTIES})
    valid = gen[gen["valid"].astype(bool)] if gen is not None else None

    # Summary: the headline numbers and how they compare with the published generators.
    if "valid" in m:
        fcd = _num(m.get("fcd_test"))
        beat = [b for b in BASELINES if fcd is not None and fcd < PUBLISHED_ROWS[b]["fcd_test"]]

        def fmt(k: str, spec: str) -> str:
            return "–" if _num(m.get(k)) is None else format(m[k], spec)

        text = (
            f"The {name} trained on {int(m.get('n_train', 0)):,} {data_name} molecules generated {n:,} SMILES: "
            f"**{fmt('valid', '.1%')} valid**, unique@10k {fmt('unique_10k', '.4f')}, novelty "
            f"{fmt('novelty', '.3f')}, **FCD/Test {fmt('fcd_test', '.3f')}** at N={n:,}."
        )
        if moses and fcd is not None and n == PUBLISHED_N:
            text += (
                f" Its FCD/Test is lower than that of {len(beat)} of the {len(BASELINES)} published MOSES "
                f"generators ({', '.join(beat) or 'none'})."
            )
        elif moses and fcd is not None:
            text += f" The published FCDs are at N={PUBLISHED_N:,}, so this N={n:,} run is not ranked against them."
        page.text(text)
    if cfg.preset == "tiny":
        page.callout("Preset `tiny`: a smoke-test budget; the numbers say nothing about the method.", "warning")

    page.section("MOSES metrics")
    if any(COLUMNS[c] in m for c in MAIN):
        moses_section(page, m, moses, n, name, data_name)
    else:
        page.text("metrics.json has no MOSES metrics (the language model was not evaluated).")

    page.section("Generated molecules")
    if valid is not None and len(valid):
        pool = valid[valid["novel"].astype(bool)] if valid["novel"].astype(bool).any() else valid
        pick = pool.sample(min(N_DRAWN, len(pool)), random_state=0)
        page.figure(
            _mol_grid_png(list(pick["smiles"]), [f"QED {q:.2f}" for q in pick["qed"]], per_row=6),
            caption=f"{len(pick)} random valid{' novel' if pool is not valid else ''} generated molecules "
            "(seed 0) with their QED.",
        )
        ref, ref_name = reference_properties(cfg, run)
        page.figure(
            property_figure(valid, ref, ref_name),
            caption=f"Property densities of {len(valid):,} valid generated molecules vs {ref_name}."
            if ref is not None
            else f"Property densities of generated molecules ({ref_name}).",
        )
    else:
        page.text("samples/generated.csv is missing or has no valid molecules.")

    page.section("Conditional generation")
    conditional_section(
        page, m, _csv(run.samples / "conditional.csv", {"target", "property", "target_value", "mode", "value"}), valid
    )
    page.section("Latent space (VAE)")
    latent_section(page, m, _csv(run.samples / "interpolation.csv", {"t", "smiles", "valid"}))
    page.section("Training")
    curves_section(page, run)
    page.provenance(
        config=cfg,
        extra={"run folder": str(run.path), "molecules sampled": n, "training molecules": int(m.get("n_train", 0))},
    )
    return page.save(run.report_path)
