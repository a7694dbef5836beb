"""The world-models report (runs/worlds/<run>/report.html): the dream-trained agent's real return beside the
model-free baseline on the same real-step budget and the published rl-baselines3-zoo figure, learning curves
against real steps, per-seed results, world-model quality (one-step and open-loop errors, a predicted trajectory
beside the real one), every round's numbers and timings, and the pixel-environment run when there is one.

Everything is read from what `apps.worlds.loop` (and the pixel pipeline) left in the run folder: metrics.json
(required), seed-<s>/final.json, seed-<s>/round-<r>/result.json, baseline-<s>.json, pixels/pixels.json and
pixels/dream_strip.png. A missing or unreadable file drops what needs it, with a one-line note in its place, so
the page also works for a run that is still going or was made step by step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from apps.worlds.config import WorldsConfig
from shared.errors import DataError
from shared.report import figures
from shared.report.page import Page, format_value
from shared.runs import RunDir

ZOO_SOURCE = "published (rl-baselines3-zoo)"
MAX_DIMS = 8  # observation dimensions drawn in the trajectory figure
OBS_NAMES = {  # Gymnasium's documented observation layouts; other envs get obs[i]
    "CartPole-v1": ["cart position", "cart velocity", "pole angle", "pole angular velocity"],
    "Pendulum-v1": ["cos θ", "sin θ", "angular velocity"],
    "LunarLander-v3": ["x", "y", "x velocity", "y velocity", "angle", "angular velocity", "left leg", "right leg"],
}
KNOWN = {  # metrics.json keys written by loop.summarise and shown in their own places
    "env", "algo", "seeds", "real_return", "real_return_std_seeds", "real_return_min_seed",
    "real_return_std_episodes", "real_steps_max", "real_steps_mean", "real_step_cap", "target_return",
    "seeds_at_target", "eval_episodes", "model_state_nrmse", "model_reward_rmse", "model_h10_error",
    "model_h50_error", "dream_steps_per_s_in_training", "zoo_return", "zoo_steps", "real_steps_ratio_to_zoo",
    "baseline_return", "baseline_return_std_seeds", "baseline_steps",
}  # fmt: skip


def _num(v) -> float | None:
    """A finite float, or None for a missing / NaN / infinite / non-numeric value."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def _load(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _index(path: Path, prefix: str) -> int | None:
    """The integer after `prefix` in a file or folder name (seed-3 -> 3, baseline-1.json -> 1), else None."""
    tail = path.name[len(prefix) :].removesuffix(".json")
    return int(tail) if path.name.startswith(prefix) and tail.isdigit() else None


def read_run(run: RunDir) -> dict:
    """Everything the report reads: finals (final.json per seed), rounds (result.json, all seeds, seed and round
    added), baselines, pixels (pixels.json or None) and the seeds whose loop has not finished."""
    finals, rounds, unfinished = [], [], []
    seed_dirs = [(s, p) for p in run.path.glob("seed-*") if p.is_dir() and (s := _index(p, "seed-")) is not None]
    for seed, folder in sorted(seed_dirs):
        final = _load(folder / "final.json")
        if final is not None:
            finals.append({**final, "seed": final.get("seed", seed)})
        else:
            unfinished.append(seed)
        round_dirs = [(r, p) for p in folder.glob("round-*") if (r := _index(p, "round-")) is not None]
        for r, rdir in sorted(round_dirs):
            if (res := _load(rdir / "result.json")) is not None:
                rounds.append({**res, "seed": seed, "round": res.get("round", r)})
    bases = [(s, p) for p in run.path.glob("baseline-*.json") if (s := _index(p, "baseline-")) is not None]
    baselines = [b for _, p in sorted(bases) if (b := _load(p)) is not None]
    return {
        "finals": finals,
        "rounds": rounds,
        "baselines": baselines,
        "unfinished": unfinished,
        "pixels": _load(run.path / "pixels" / "pixels.json"),
    }


def _ratio(v) -> str:
    return "–" if _num(v) is None else f"{v:.3g}×"


def _per_zoo(steps, zoo_steps: float | None) -> float | None:
    """Real steps as a multiple of the zoo agent's, or None when either is unknown."""
    return steps / zoo_steps if _num(steps) is not None and zoo_steps else None


def headline_section(page: Page, m: dict, algo: str, n_seeds: int) -> None:
    """One sentence with the result, then dream agent / model-free baseline / zoo figure in one table."""
    zoo_steps, zoo_return = _num(m.get("zoo_steps")), _num(m.get("zoo_return"))
    zoo_steps = zoo_steps if zoo_steps and zoo_steps > 0 else None
    fv = format_value
    if "real_return_std_seeds" in m:
        spread, over = m["real_return_std_seeds"], f"{n_seeds} seed{'s' * (n_seeds != 1)}"
    else:  # a step-by-step run evaluates one agent: the sd is over its episodes
        spread, over = m.get("real_return_std_episodes"), f"{fv(m.get('eval_episodes'))} episodes"
    text = f"**Dream-trained {algo}: {fv(m.get('real_return'))} ± {fv(spread)}** real return (mean ± sd over {over}"
    text += f"; worst seed {fv(m['real_return_min_seed'])})" if "real_return_min_seed" in m else ")"
    text += f" with at most **{fv(m.get('real_steps_max'))} real steps**"
    if (ratio := _per_zoo(m.get("real_steps_max"), zoo_steps)) is not None:
        text += f" ({_ratio(ratio)} the zoo's {fv(int(zoo_steps))})"
    if _num(m.get("target_return")) is not None and "seeds_at_target" in m:
        text += f"; {fv(m['seeds_at_target'])} of {n_seeds} seeds reach the target {fv(m['target_return'])}"
    text += "."
    if "baseline_return" in m:
        steps = m.get("baseline_steps", m.get("real_step_cap"))
        text += (
            f" Model-free {algo} on the real environment with {fv(steps)} real steps: "
            f"{fv(m['baseline_return'])} ± {fv(m.get('baseline_return_std_seeds'))}."
        )
    if zoo_return is not None:
        text += f" rl-baselines3-zoo (published): {fv(zoo_return)}" + (
            f" after {fv(int(zoo_steps))} steps." if zoo_steps else "."
        )
    page.text(text)

    ret, sd, steps_col, ratio_col = "return (mean over seeds)", "± sd over seeds", "real steps", "real steps / zoo"
    rows = [
        {
            "agent": f"{algo}, trained only in the dream",
            ret: m.get("real_return"),
            sd: m.get("real_return_std_seeds"),
            "worst seed": m.get("real_return_min_seed"),
            steps_col: m.get("real_steps_max"),
            ratio_col: m.get("real_steps_ratio_to_zoo", _per_zoo(m.get("real_steps_max"), zoo_steps)),
            "source": "this run",
        }
    ]
    if "baseline_return" in m:
        steps = m.get("baseline_steps", m.get("real_step_cap"))
        rows.append(
            {
                "agent": f"{algo}, model-free on the real env (same budget)",
                ret: m["baseline_return"],
                sd: m.get("baseline_return_std_seeds"),
                "worst seed": None,
                steps_col: steps,
                ratio_col: _per_zoo(steps, zoo_steps),
                "source": "this run",
            }
        )
    if zoo_return is not None:
        rows.append(
            {
                "agent": f"{algo}, rl-baselines3-zoo",
                ret: zoo_return,
                sd: None,
                "worst seed": None,
                steps_col: int(zoo_steps) if zoo_steps else None,
                ratio_col: 1.0 if zoo_steps else None,
                "source": ZOO_SOURCE,
            }
        )
    page.table(
        rows,
        caption="Undiscounted real-environment return of the final agent (deterministic policy), mean over "
        "seeds of each seed's mean over its evaluation episodes; real steps counted by collection only "
        "(dream agent: most over seeds).",
        highlight={ret: "max"},
        muted=(ZOO_SOURCE,),
        formats={ratio_col: _ratio},
    )

    at_target = m.get("seeds_at_target")
    details = {
        "seeds reaching the target return": None if at_target is None else f"{format_value(at_target)} of {n_seeds}",
        "target return": m.get("target_return"),
        "sd over evaluation episodes (mean over seeds)": m.get("real_return_std_episodes"),
        "real steps, mean over seeds": m.get("real_steps_mean"),
        "real-step cap per seed": m.get("real_step_cap"),
        "evaluation episodes per seed": m.get("eval_episodes"),
        "dream steps per second while training the agent": m.get("dream_steps_per_s_in_training"),
    }
    details = {k: v for k, v in details.items() if v is not None}
    if details:
        page.metrics(details, title="Run summary")
    extra = {k: v for k, v in m.items() if k not in KNOWN and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if extra:
        page.metrics(extra, title="Other numbers in metrics.json")


def _curve(points) -> np.ndarray:
    """[[steps, mean, std], ...] as an (n, 3) float array; empty when missing or malformed."""
    try:
        c = np.asarray(points or [], float)
    except (TypeError, ValueError):
        return np.zeros((0, 3))
    return c if c.ndim == 2 and c.shape[1] == 3 else np.zeros((0, 3))


def curve_figure(finals: list[dict], baselines: list[dict], target, zoo_return, zoo_steps):
    """Real return against real steps: one solid line (± episode sd band) per seed of the dream agent, the
    model-free baselines dashed in the same seed's colour, the target dotted and the zoo's figure as a star.
    Log x when the steps span more than a decade. None when no curve has a point."""
    curves = [(f["seed"], _curve(f.get("curve"))) for f in finals]
    bcurves = [(b.get("seed"), _curve(b.get("curve"))) for b in baselines]
    if not any(len(c) for _, c in curves + bcurves):
        return None
    seeds = dict.fromkeys(s for s, _ in curves + bcurves)  # a seed keeps its colour for both agents
    colour = {s: figures.PALETTE[i % len(figures.PALETTE)] for i, s in enumerate(seeds)}
    fig, ax = figures.new_figure(figsize=(7.0, 3.9))
    xs = [c[:, 0] for _, c in curves + bcurves if len(c)]
    with figures.style():
        for s, c in curves:
            if len(c):
                ax.plot(c[:, 0], c[:, 1], color=colour[s], marker="o", label=f"dream-trained, seed {s}")
                ax.fill_between(c[:, 0], c[:, 1] - c[:, 2], c[:, 1] + c[:, 2], color=colour[s], alpha=0.12, lw=0)
        for s, c in bcurves:
            if len(c):
                ax.plot(c[:, 0], c[:, 1], color=colour[s], ls="--", marker=".", label=f"model-free, seed {s}")
        if _num(target) is not None:
            ax.axhline(target, color="black", ls=":", lw=1.1, label=f"target {format_value(target)}")
        if zoo_return is not None and zoo_steps:
            ax.plot([zoo_steps], [zoo_return], marker="*", ms=12, color="#555555", ls="none",
                    label=f"rl-baselines3-zoo ({format_value(int(zoo_steps))} steps)")  # fmt: skip
            xs.append(np.array([zoo_steps]))
        x = np.concatenate(xs)
        x = x[np.isfinite(x) & (x > 0)]
        if len(x) and x.max() / x.min() > 10:
            ax.set_xscale("log")
        ax.set(xlabel="real environment steps", ylabel="real return", title="Real return vs real steps")
        ax.legend(fontsize=7, ncols=2 if len(curves) + len(bcurves) > 4 else 1)
    return fig


def error_figure(finals: list[dict]):
    """Open-loop error against steps, one line per seed; None when no seed has a trajectory."""
    series = {
        f"seed {f['seed']}": np.asarray(e, float) for f in finals if (e := (f.get("trajectory") or {}).get("error"))
    }
    if not series:
        return None
    return figures.line_plot(
        series,
        xlabel="steps rolled open-loop from the shared start state",
        ylabel="state error (RMSE in sd units)",
        title="Multi-step open-loop error of the ensemble mean",
    )


def trajectory_figure(traj: dict, env: str):
    """One panel per observation dimension (first MAX_DIMS): real solid, model dashed. None on bad shapes."""
    real, pred = np.asarray(traj.get("real") or [], float), np.asarray(traj.get("model") or [], float)
    if real.ndim != 2 or real.shape != pred.shape or real.size == 0:
        return None
    d = min(real.shape[1], MAX_DIMS)
    names = OBS_NAMES.get(env, [])
    ncols = 2 if d <= 4 else 4
    nrows = math.ceil(d / ncols)
    fig, axes = figures.new_figure(nrows, ncols, figsize=(3.3 * ncols, 2.3 * nrows), squeeze=False)
    t = np.arange(len(real))
    with figures.style():
        for j, ax in enumerate(axes.flat):
            if j >= d:
                ax.set_visible(False)
                continue
            ax.plot(t, real[:, j], color=figures.PALETTE[0], label="real")
            ax.plot(t, pred[:, j], color=figures.PALETTE[1], ls="--", label="model (open loop)")
            ax.set_title(names[j] if j < len(names) and real.shape[1] == len(names) else f"obs[{j}]")
            if j // ncols == nrows - 1 or j + ncols >= d:
                ax.set_xlabel("step")
        axes.flat[0].legend()
    return fig


def model_section(page: Page, m: dict, finals: list[dict], rounds: list[dict], env: str) -> None:
    """Mean one-step and open-loop errors, the per-seed error table, the error-vs-steps and trajectory figures."""
    page.text(
        "One-step errors are measured on held-out real transitions of the last round: state nRMSE is the RMSE "
        "of the ensemble-mean next state in units of the per-dimension sd of the real one-step change (about 1: "
        "no better than predicting the average change). Open-loop errors replay one real episode's actions "
        "through the model from the same start state; the error is the RMSE over dimensions, each in units of its "
        "sd over the model's training states, after h steps."
    )
    summary = {
        "one-step state nRMSE (mean over seeds)": m.get("model_state_nrmse"),
        "one-step reward RMSE (mean over seeds)": m.get("model_reward_rmse"),
        "open-loop error after 10 steps": m.get("model_h10_error"),
        "open-loop error after 50 steps": m.get("model_h50_error"),
    }
    summary = {k: v for k, v in summary.items() if v is not None}
    if summary:
        page.metrics(summary)
    if not finals:
        page.text("No seed-*/final.json: no per-seed model errors or trajectories.")
        return
    last = {}
    for r in rounds:  # rounds are in (seed, round) order, so the last one per seed wins
        last[r["seed"]] = r
    rows = [
        {
            "seed": f["seed"],
            "state nRMSE": f.get("model_state_nrmse"),
            "reward RMSE": f.get("model_reward_rmse"),
            "termination accuracy": last.get(f["seed"], {}).get("model_done_accuracy"),
            **{f"open-loop h{h}": (f.get("trajectory") or {}).get(f"h{h}") for h in (1, 10, 50)},
        }
        for f in finals
    ]
    page.table(rows, caption="One-step errors on held-out transitions (last round) and open-loop errors after "
               "h steps (– : the episode ended earlier).")  # fmt: skip
    fig = error_figure(finals)
    if fig is None:
        page.text("No trajectory errors in final.json: no open-loop error figure.")
    else:
        page.figure(fig, caption="Open-loop state error against the number of steps predicted without seeing the "
                    "real state (one line per seed).")  # fmt: skip

    page.section("Predicted vs real trajectory")
    first = next((f for f in finals if f.get("trajectory")), None)
    fig = None if first is None else trajectory_figure(first["trajectory"], env)
    if fig is None:
        page.text("No usable trajectory (real and model arrays of the same shape) in any final.json.")
        return
    d = np.asarray(first["trajectory"]["real"]).shape[1]
    shown = f"first {MAX_DIMS} of {d} dimensions" if d > MAX_DIMS else f"all {d} dimensions"
    page.figure(
        fig,
        caption=f"Predicted vs real trajectory from the same start state and actions (seed {first['seed']}, "
        f"final agent, {shown}): real solid, world model (ensemble mean, open loop) dashed.",
    )


def rounds_section(page: Page, rounds: list[dict], unfinished: list[int]) -> None:
    if unfinished:
        page.text(f"Seeds without final.json (still running or stopped): {', '.join(map(str, unfinished))}.")
    if not rounds:
        page.text("No seed-*/round-*/result.json: no per-round results.")
        return
    cols = {  # table column -> result.json key
        "seed": "seed", "round": "round", "real steps": "real_steps", "return": "eval_mean", "± sd": "eval_std",
        "dream return": "dream_return", "state nRMSE": "model_state_nrmse", "reward RMSE": "model_reward_rmse",
        "done acc.": "model_done_accuracy", "collect s": "time_collect_s", "fit s": "time_fit_s",
        "agent s": "time_agent_s", "eval s": "time_eval_s",
    }  # fmt: skip
    page.table(
        [{c: r.get(k) for c, k in cols.items()} for r in rounds],
        caption="Every round of every seed: real steps after collection, real evaluation return (mean ± sd over "
        "the round's episodes, deterministic policy), mean dream episode return while training, holdout model "
        "errors and wall-clock seconds per stage (collect, fit the model, train the agent in the dream, evaluate).",
    )


def pixels_section(page: Page, folder: Path, numbers: dict | None) -> None:
    page.section("Pixel environment")
    if numbers is None:
        page.text("pixels/pixels.json is missing or unreadable: no pixel-run numbers.")
    else:
        flat = {}
        for k, v in numbers.items():  # one level of nesting becomes dotted keys; long lists are left out
            for kk, vv in v.items() if isinstance(v, dict) else [("", v)]:
                if isinstance(vv, (int, float, str, bool)) or (isinstance(vv, list) and len(vv) <= 8):
                    flat[f"{k}.{kk}" if kk else k] = vv
        if flat:
            page.metrics(flat, title="pixels/pixels.json")
        else:
            page.text("pixels/pixels.json holds no scalar numbers.")
    strip = folder / "dream_strip.png"
    try:
        page.figure(strip, caption="real frames (top) beside decoded dream frames (bottom)")
    except (OSError, ValueError):
        page.text("pixels/dream_strip.png is missing or not a PNG: no frame strip.")


def build_report(run: RunDir, cfg: WorldsConfig) -> Path:
    """Write run.report_path (self-contained HTML) from the run folder's outputs; returns the path."""
    m = _load(run.metrics_path)
    if m is None:
        raise DataError(
            f"{run.metrics_path} is missing or not a JSON object; run `python -m apps.worlds run --env {cfg.env}` "
            "(or `evaluate`) first"
        )
    got = read_run(run)
    finals, baselines = got["finals"], got["baselines"]
    env = str(m.get("env", cfg.env))
    algo = str(m.get("algo") or (finals[0].get("algo") if finals else None) or cfg.agent.algo).upper()
    n_seeds = int(m.get("seeds", len(finals) or 1))
    page = Page(
        f"World models: {algo} trained in a learned model of {env}",
        subtitle=f"run {run.path.name}, {n_seeds} seed{'s' * (n_seeds != 1)}, preset {cfg.preset}",
    )
    episodes = m.get("eval_episodes", cfg.eval_episodes)
    page.text(
        f"A world model of {env} was learned from real transitions, and a {algo} agent was trained **only inside "
        "it** (in the dream); the real environment was used to collect data and to measure the result.\n\n"
        f"- World model: a probabilistic ensemble of {cfg.model.members} Gaussian MLPs (hidden "
        f"{'x'.join(map(str, cfg.model.hidden))}) over the next-state change and reward, plus a termination "
        "classifier, each member fitted to its own bootstrap resample (PETS).\n"
        f"- Dream: {cfg.agent.dream_steps:,} agent steps per round in {cfg.dream.n_envs} batched dream "
        f"environments, episodes of at most {cfg.dream.horizon} steps starting from observed real states, a random "
        f"member per step, reward minus {cfg.dream.penalty:g} x ensemble disagreement.\n"
        f"- Real steps are counted by collection only: {cfg.initial_steps:,} random-policy steps, then "
        f"{cfg.steps_per_round:,} with the current agent per round, at most "
        f"{int(m.get('real_step_cap', cfg.real_step_cap)):,} per seed; evaluation episodes are not counted.\n"
        f"- Evaluation: deterministic policy, {episodes} real episodes per seed on fresh episode seeds never used "
        f"for any decision; mean and sd over seeds, for {n_seeds} seed{'s' * (n_seeds != 1)} (the protocol asks "
        "for at least 3).\n"
        "- Baseline: the same algorithm trained model-free on the real environment with the same real-step budget."
    )
    if cfg.preset == "tiny":
        page.callout("Preset `tiny`: a smoke-test budget; the numbers say nothing about the method.", "warning")
    if n_seeds < 3:
        page.callout(f"Only {n_seeds} seed{'s' * (n_seeds != 1)}: the protocol asks for at least 3.", "warning")

    page.section("Headline: real return and real steps")
    headline_section(page, m, algo, n_seeds)

    page.section("Real return vs real steps")
    zoo_steps = _num(m.get("zoo_steps"))
    fig = curve_figure(finals, baselines, m.get("target_return"), _num(m.get("zoo_return")), zoo_steps)
    if fig is None:
        page.text("No learning curves: seed-*/final.json and baseline-*.json are missing or have no curve.")
    else:
        page.figure(
            fig,
            caption="Real evaluation return after each round against real steps collected so far (solid, band: "
            "± sd over episodes), model-free baselines during training (dashed), the target (dotted) and the "
            "rl-baselines3-zoo figure (star).",
        )

    page.section("Per-seed results")
    if finals:
        base = {b.get("seed"): b.get("return_mean") for b in baselines}
        rows = [
            {
                "seed": f["seed"],
                "real steps": f.get("real_steps"),
                "rounds": f.get("rounds"),
                "return": f.get("return_mean"),
                "± sd over episodes": f.get("return_std"),
                "model-free return": base.get(f["seed"]),
                "model state nRMSE": f.get("model_state_nrmse"),
                "dream steps": f.get("dream_steps"),
            }
            for f in finals
        ]
        if not baselines:
            rows = [{k: v for k, v in r.items() if k != "model-free return"} for r in rows]
        page.table(rows, caption=f"Final agent of each seed on {episodes} fresh real episodes (deterministic).")
    else:
        page.text("No seed-*/final.json in the run folder: no per-seed results.")
    if not baselines:
        page.text("No baseline-*.json: the model-free baseline was not run (or has not finished).")

    page.section("Model quality")
    model_section(page, m, finals, got["rounds"], env)

    page.section("Per-round results and timings")
    rounds_section(page, got["rounds"], got["unfinished"])

    pixels = run.path / "pixels"
    if pixels.is_dir():
        pixels_section(page, pixels, got["pixels"])

    page.provenance(config=cfg, extra={"run folder": str(run.path)})
    return page.save(run.report_path)
