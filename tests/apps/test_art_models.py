"""The art models' sampling follows the config: `generate` and the diffusion interpolation pass
--diffusion.clip-x0 (and the sampler settings) through to the shared Diffusion sampler."""

from __future__ import annotations

import math

import pytest
import torch

from apps.art.config import DiffusionConfig, EvalConfig, preset
from apps.art.models import Trained, build_model, generate, interpolate
from shared.config import replace
from shared.errors import ConfigError


def _tiny_diffusion(clip_x0: bool):
    cfg = preset("tiny")
    cfg = replace(cfg, diffusion=replace(cfg.diffusion, clip_x0=clip_x0))
    torch.manual_seed(0)
    model = build_model("diffusion", cfg, num_classes=3).eval()
    return cfg, Trained("diffusion", model, ["a", "b", "c"], step=0, amp=False)


@pytest.mark.parametrize("clip_x0", [False, True])
def test_generate_and_interpolate_pass_the_configs_clipping(clip_x0, monkeypatch):
    cfg, trained = _tiny_diffusion(clip_x0)
    calls = []
    real_sample = trained.model.sample

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(trained.model, "sample", spy)
    labels = torch.tensor([0, 1, 2])
    x = generate(trained, labels, cfg, seed=0)
    assert x.dtype == torch.uint8 and x.shape == (3, 3, 16, 16)
    s = cfg.data.image_size
    a = torch.randint(0, 256, (2, 3, s, s), dtype=torch.uint8)
    strips = interpolate(trained, a, a.flip(0), torch.tensor([0, 1]), 3, cfg)
    assert strips.shape == (2, 3, 3, s, s)
    assert [c["clip_x0"] for c in calls] == [clip_x0, clip_x0]
    assert calls[0]["sampler"] == cfg.diffusion.sampler and calls[0]["steps"] == cfg.diffusion.sample_steps
    assert calls[0]["guidance_interval"] == cfg.diffusion.guidance_interval


@pytest.mark.parametrize("name", ["default", "demo", "portraits", "portraits-cpu"])
def test_presets_checkpoint_and_evaluate_a_sensible_number_of_times(name):
    # a preset that lengthens a run must lengthen its intervals too: a 20,000-step GAN that checkpointed every 300
    # steps would write 66 checkpoints and evaluate as often
    cfg = preset(name)
    for kind in cfg.models:
        train = cfg.train_config(kind)
        assert 1 <= train.steps // train.checkpoint_every <= 16, (kind, train.steps, train.checkpoint_every)
        assert 1 <= train.steps // train.eval_every <= 8, (kind, train.steps, train.eval_every)


def test_eval_draws_must_be_at_least_one():
    with pytest.raises(ConfigError, match="--eval.draws=0"):
        EvalConfig(draws=0)


def test_guidance_interval_options():
    assert DiffusionConfig(guidance_sigma_min=0.0, guidance_sigma_max=0.0).guidance_interval is None
    assert DiffusionConfig(guidance_sigma_min=0.0, guidance_sigma_max=5.0).guidance_interval == (0.0, 5.0)
    assert DiffusionConfig(guidance_sigma_min=0.3, guidance_sigma_max=0.0).guidance_interval == (0.3, math.inf)
    for lo, hi in ((-1.0, 0.0), (2.0, 1.0), (1.0, 1.0)):
        with pytest.raises(ConfigError, match="guidance-sigma-min"):
            DiffusionConfig(guidance_sigma_min=lo, guidance_sigma_max=hi)
