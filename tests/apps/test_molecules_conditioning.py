"""Property conditioning: target parsing, the condition vector, masked training batches, stratified targets and
importance re-ranking; and the model bundle's save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apps.molecules.conditioning import (
    COND_DIM,
    ConditionedBatches,
    PropertyScaler,
    Target,
    parse_targets,
    rerank,
    target_values,
)
from apps.molecules.config import LMConfig, preset
from apps.molecules.models import Bundle, build_lm
from apps.molecules.tokens import Tokenizer, Vocab
from shared.errors import ConfigError


def test_parse_targets_points_ranges_and_errors():
    assert parse_targets(["qed=0.9", "logp=1:3"]) == [Target("qed", 0.9, 0.9), Target("logp", 1.0, 3.0)]
    for bad in (["potency=1"], ["qed"], ["qed=high"], ["qed=0.9:0.1"], ["qed=9"], ["qed=0.5", "qed=0.6"]):
        with pytest.raises(ConfigError) as e:
            parse_targets(bad)
        assert "\n" not in str(e.value)


def test_condition_vector_standardises_given_and_flags_hidden():
    scaler = PropertyScaler.fit(np.array([[1.0, 2.0, 0.5, 300.0], [3.0, 4.0, 0.7, 500.0]]))
    c = scaler.cond(np.array([[2.0, np.nan, 0.7, np.nan]]))
    assert c.shape == (1, COND_DIM)
    np.testing.assert_allclose(c[0].numpy(), [0.0, 0.0, 1.0, 0.0, 1, 0, 1, 0], atol=1e-6)
    again = PropertyScaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(again.mean, scaler.mean)


def test_stratified_range_targets_cover_the_range():
    g = torch.Generator().manual_seed(0)
    v = target_values([Target("qed", 0.5, 0.9), Target("logp", 2.0, 2.0)], 100, g)
    q = np.sort(v[:, 2])
    assert np.all(np.isnan(v[:, [1, 3]])) and np.all(v[:, 0] == 2.0)
    # one value in each of the 100 strata of [0.5, 0.9]
    assert np.all(np.floor((q - 0.5) / 0.004).astype(int) == np.arange(100))


def test_batches_are_a_function_of_the_step_and_hide_properties():
    tokens = torch.tensor([[1, 5, 6, 2, 0, 0], [1, 7, 2, 0, 0, 0], [1, 5, 5, 5, 2, 0]] * 20)
    props = np.random.default_rng(0).normal(size=(60, 4))
    props[40:] = np.nan  # no computed properties: always hidden
    scaler = PropertyScaler.fit(props)
    b = ConditionedBatches(tokens, props, scaler, batch_size=16, seed=3, p_keep=0.5, p_uncond=0.25)
    t1, c1 = b.batch(7)
    t2, c2 = b.batch(7)
    assert torch.equal(t1, t2) and torch.equal(c1, c2)
    assert t1.shape[1] == 5  # trailing all-pad column cut
    given = c1[:, 4:]
    assert set(given.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(c1[:, :4][given == 0] == 0)
    shown = torch.cat([b.batch(s)[1][:, 4:] for s in range(200)]).mean().item()
    expect = 0.5 * 0.75 * (40 / 60)  # p_keep * (1 - p_uncond) * share with properties
    assert abs(shown - expect) < 0.03


def test_rerank_moves_the_pool_toward_the_target_without_repeats():
    rng = np.random.default_rng(0)
    props = np.column_stack(
        [rng.normal(2.5, 1.5, 4000), rng.normal(3, 1, 4000), rng.beta(5, 2, 4000), rng.normal(350, 50, 4000)]
    )
    g = torch.Generator().manual_seed(0)
    idx, ess = rerank([Target("qed", 0.9, 0.9)], props, 500, g)
    assert len(set(idx.tolist())) == 500 and 1 < ess < 4000
    assert abs(np.median(props[idx, 2]) - 0.9) < 0.02 < abs(np.median(props[:, 2]) - 0.9)
    with pytest.raises(ConfigError):
        rerank([Target("qed", 0.9, 0.9)], props[:10], 20, g)


def test_bundle_round_trip_through_safetensors(tmp_path):
    vocab = Vocab.build([list("CCO"), list("c1ccccc1")])
    cfg = LMConfig(d_model=16, n_layers=1)
    torch.manual_seed(0)
    model = build_lm(cfg, len(vocab), 20, vocab.pad_id, vocab.bos_id, vocab.eos_id)
    scaler = PropertyScaler(np.zeros(4), np.ones(4))
    Bundle("lm", model, vocab, Tokenizer("smiles"), 20, cfg, scaler).save(tmp_path / "lm")
    back = Bundle.load(tmp_path / "lm")
    for (k, v), (k2, v2) in zip(model.state_dict().items(), back.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert back.vocab == vocab and back.scaler is not None and back.config == cfg
    (tmp_path / "lm" / "model.json").write_text("{not json")
    with pytest.raises(Exception, match="not a molecules model"):
        Bundle.load(tmp_path / "lm")


def test_presets_are_valid():
    assert preset("tiny").lm.d_model < preset("default").lm.d_model < preset("full").lm.d_model
    with pytest.raises(ConfigError):
        preset("huge")
