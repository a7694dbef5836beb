"""What goes on the core demo's report page: per family, the acceptance figure, samples and training curves."""

from __future__ import annotations

from shared.report import figures
from shared.report.page import Page
from shared.runs import RunDir
from shared.training.metrics_log import read_records

TARGETS = [  # (metric, target, description): the foundation's acceptance figures
    ("vae_iwae_gain", "> 0", "VAE: IWAE (k=100) minus ELBO on held-out digits, nats"),
    ("vae_label_agreement", ">= 0.90", "conditional VAE samples labelled as the requested digit"),
    ("diffusion_label_agreement", ">= 0.90", "diffusion (50 DDIM steps, guidance) samples labelled as requested"),
    ("gan_modes_covered", "8", "GAN modes holding >= 5% of 10k samples within 3 sd"),
    ("gan_high_quality", ">= 0.90", "GAN samples within 3 sd of some mode"),
    ("rbm_loglik_exact", ">= -3.2", "RBM exact average log-likelihood (optimum -ln 14 = -2.64)"),
    ("rbm_logz_ais_error", "< 0.1", "|AIS log Z - exact log Z|"),
    ("ar_label_agreement", "", "autoregressive samples (temperature 1) labelled as requested"),
    ("sampling_tail_is_rel_error", "< 0.05", "importance sampling, P(X>4), relative error at 1e5 draws"),
    ("sampling_tail_srs_rel_error", "> 0.30", "simple random sampling, same, for contrast"),
    ("sampling_stratified_variance_ratio", ">= 5", "variance of simple random / stratified estimates of E[exp(U)]"),
]

CAPTIONS = {
    "vae_samples": "Class-conditional VAE samples (decoder means, z from the prior): column j is digit j",
    "vae_latent_sweep": "Stratified sweep of latent axis 0 (10 quantile strata of N(0,1)), one row per class",
    "vae_interpolation": "Slerp between the posterior means of two held-out digits",
    "diffusion_samples": "Diffusion samples, 50 DDIM steps, guidance 2: column j is digit j",
    "rbm_samples": "RBM samples after 1,000 Gibbs steps (3x3 patterns)",
    "ar_samples": "Autoregressive samples at temperature 1, pixel by pixel: column j is digit j",
}

TITLES = {
    "vae": "Conditional VAE on digits",
    "diffusion": "Class-conditional diffusion on digits",
    "gan": "GAN on a ring of 8 Gaussians",
    "rbm": "RBM on 3x3 bars-and-stripes",
    "ar": "Autoregressive pixel model of digits",
    "sampling": "Sampling techniques",
}


def build_report(run: RunDir, evaluations: dict, metrics: dict, config, data_source: str) -> Page:
    page = Page("genlab core demo", subtitle=f"run {run.path.name}: every generative family on real small data")
    page.text(
        f"Image families train on {data_source}. A logistic-regression classifier trained on the real "
        f"images judges conditional samples (its own held-out accuracy: "
        f"{metrics.get('classifier_real_accuracy', float('nan')):.3f})."
    )
    page.section("Acceptance figures")
    page.table(
        [{"metric": k, "value": metrics[k], "target": t, "what": d} for k, t, d in TARGETS if k in metrics],
        columns=["metric", "value", "target", "what"],
    )
    for family, ev in evaluations.items():
        page.section(TITLES.get(family, family))
        page.metrics({k: v for k, v in ev.metrics.items()})
        for name, imgs in ev.images.items():
            nrow = 10 if imgs.shape[-1] > 3 else 20
            page.image_grid(imgs, nrow=nrow, caption=CAPTIONS.get(name, name.replace("_", " ")))
        if "gan_samples" in ev.points:
            page.figure(
                figures.scatter_2d(
                    {"generated": ev.points["gan_samples"]}, title="GAN samples", centres=ev.points["gan_modes"]
                ),
                width=480,
            )
        log = run.path / family / "train.jsonl"
        if log.is_file():
            records = read_records(log)
            keys = sorted({k for r in records for k in r if k not in ("step", "time_s", "steps_per_s")})
            page.figure(figures.training_curves(records, keys=keys, smooth=0.8), caption=f"{family} training curves")
        for note in ev.notes:
            page.callout(note)
    page.provenance(config=config)
    return page
