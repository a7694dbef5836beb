"""The training loop: bitwise resume, EMA, GAN-style multiple objectives, step-indexed batches, logs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shared.runs import RunDir
from shared.training import StepBatches, TrainConfig, fit
from shared.training.loop import lr_at
from shared.training.metrics_log import read_records


class NoisyRegressor(nn.Module):
    """Uses the global RNG in forward (dropout, input noise) so that resume must restore RNG states."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Dropout(0.2), nn.Linear(32, 1))
        self.stats = {}

    def forward(self, batch, objective="loss"):
        x, y = batch
        loss = ((self.net(x + 0.01 * torch.randn_like(x)) - y) ** 2).mean()
        self.stats = {"mse": loss.detach()}
        return loss


class TwoPlayer(nn.Module):
    """A toy min-max: 'd' fits a, 'g' fits b against it (tests ordered objectives and parameter groups)."""

    objectives = {"d": 2, "g": 1}

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.zeros(())), nn.Parameter(torch.zeros(()))

    def objective_parameters(self, name):
        return [self.a] if name == "d" else [self.b]

    def forward(self, batch, objective="d"):
        x = batch[0]
        return ((self.a - x.mean()) ** 2) if objective == "d" else ((self.b - self.a.detach()) ** 2)


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 4, generator=g)
    return x, x.sum(1, keepdim=True)


def _cfg(**kw):
    base = dict(steps=40, batch_size=32, lr=3e-3, checkpoint_every=10, log_every=5, ema_decay=0.9, progress=False)
    return TrainConfig(**{**base, **kw})


def _params(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_resume_is_bitwise_equal(tmp_path):
    torch.manual_seed(0)
    full = fit(NoisyRegressor(), StepBatches(_data(), 32, seed=3), _cfg(), run_dir=tmp_path / "full")
    torch.manual_seed(0)
    fit(NoisyRegressor(), StepBatches(_data(), 32, seed=3), _cfg(steps=20), run_dir=tmp_path / "split")
    torch.manual_seed(123)  # a different init: resume must overwrite it
    resumed = fit(NoisyRegressor(), StepBatches(_data(), 32, seed=3), _cfg(), run_dir=tmp_path / "split")
    assert resumed.resumed_from == 20
    for (k, a), b in zip(_params(full.model).items(), _params(resumed.model).values()):
        assert torch.equal(a, b), k
    for a, b in zip(full.ema_model.parameters(), resumed.ema_model.parameters()):
        assert torch.equal(a, b)
    steps = [r["step"] for r in read_records(tmp_path / "split" / "train.jsonl")]
    assert (
        steps == sorted(set(steps)) and steps[-1] == 40 and "mse" in read_records(tmp_path / "split" / "train.jsonl")[0]
    )


def test_same_seed_same_result(tmp_path):
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(fit(NoisyRegressor(), StepBatches(_data(), 32, seed=3), _cfg(steps=15), run_dir=None))
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(a, b)


def test_multiple_objectives_update_their_own_parameters():
    m = TwoPlayer()
    x = torch.full((64, 1), 2.0)
    fit(m, StepBatches(x, 16), TrainConfig(steps=300, batch_size=16, lr=0.05, progress=False), run_dir=None)
    assert abs(m.a.item() - 2.0) < 0.05 and abs(m.b.item() - m.a.item()) < 0.1


def test_eval_hook_and_training_improves(tmp_path):
    calls = []

    def eval_fn(model, step):
        calls.append(step)
        x, y = _data()
        return {"mse": ((model.net(x) - y) ** 2).mean().item()}

    torch.manual_seed(0)
    res = fit(NoisyRegressor(), StepBatches(_data(), 32), _cfg(steps=200, eval_every=100, lr=1e-2), tmp_path, eval_fn)
    assert calls == [100, 200]
    evals = [r["eval/mse"] for r in res.records if "eval/mse" in r]
    assert evals[-1] < 0.5 * ((_data()[1]) ** 2).mean().item()


def test_resume_none_refuses_existing_run(tmp_path):
    fit(NoisyRegressor(), StepBatches(_data(), 32), _cfg(steps=10), tmp_path)
    from shared.errors import ConfigError

    with pytest.raises(ConfigError, match="already has checkpoints"):
        fit(NoisyRegressor(), StepBatches(_data(), 32), _cfg(steps=20, resume="none"), tmp_path)


def test_lr_schedule():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, lr_schedule="cosine")
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) == pytest.approx(0.1, abs=0.01)
    lin = TrainConfig(steps=101, lr=1.0, lr_schedule="linear", final_lr_ratio=0.01)
    assert lr_at(0, lin) == 1.0 and lr_at(50, lin) == pytest.approx(0.505) and lr_at(100, lin) == pytest.approx(0.01)


def test_step_batches_are_a_function_of_the_step_and_shard_exactly():
    x = torch.arange(50)
    b = StepBatches(x, 8, seed=5)
    assert torch.equal(b.batch(7)[0], StepBatches(x, 8, seed=5).batch(7)[0])
    epoch = torch.cat([b.batch(s)[0] for s in range(6)])[:48]  # one epoch covers each example once
    assert len(set(epoch.tolist())) == 48
    halves = [b.shard(r, 2).batch(3)[0] for r in range(2)]
    assert torch.equal(torch.cat(halves), b.batch(3)[0])


def test_run_dir_metrics_are_flat(tmp_path):
    run = RunDir.open("app", "r1", tmp_path)
    run.write_metrics({"valid": 0.9})
    assert run.write_metrics({"fcd_test": 1.0}) == {"valid": 0.9, "fcd_test": 1.0}
    with pytest.raises(ValueError):
        run.write_metrics({"Nested": {"a": 1}})


class AutocastProbe(NoisyRegressor):
    """Records whether each forward ran under CPU autocast."""

    def __init__(self):
        super().__init__()
        self.autocast = []

    def forward(self, batch, objective="loss"):
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        return super().forward(batch, objective)


@pytest.mark.parametrize("native", [False, True])
def test_amp_runs_bf16_only_where_the_device_has_it(monkeypatch, capsys, native):
    """amp=True: bf16 autocast on a CPU with native bf16; float32 elsewhere (emulated bf16 trained the art UNet
    12x slower than float32 on an AVX2 EPYC), said once on stderr. amp=False never autocasts."""
    import shared.runtime

    monkeypatch.setattr(shared.runtime, "native_bf16", lambda device_type: native)
    for amp in (True, False):
        m = AutocastProbe()
        fit(m, StepBatches(_data(), 32, seed=3), _cfg(steps=3, amp=amp), run_dir=None, desc="probe")
        assert m.autocast == [amp and native] * 3
        said = capsys.readouterr().err
        assert ("no native bf16" in said) == (amp and not native)
        assert said.count("no native bf16") <= 1
    with shared.runtime.bf16_autocast(torch.device("cpu"), True):
        assert torch.is_autocast_enabled("cpu") == native
    with shared.runtime.bf16_autocast(torch.device("cpu"), False):
        assert not torch.is_autocast_enabled("cpu")
