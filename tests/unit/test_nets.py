"""Unit tests for shared.nets: output shapes for every net and tiny preset, size validation, and the sequence
models' incremental-decoding contract (state passed back gives the same logits as one full call)."""

from __future__ import annotations

import inspect

import pytest
import torch

from shared.errors import ConfigError
from shared.nets.conv import ConvDecoder, ConvEncoder
from shared.nets.mlp import MLP
from shared.nets.presets import NET_CLASSES, PRESETS, build_net, count_parameters
from shared.nets.sequence import LSTMLM, SequenceEncoder, TransformerLM
from shared.nets.unet import UNet

torch.set_num_threads(1)

# Dimensions a caller supplies to build_net for each kind (the presets hold only sizes).
REQUIRED = {
    "mlp": {"in_dim": 6, "out_dim": 3},
    "conv_encoder": {"in_channels": 1, "image_size": 8, "out_dim": 4},
    "conv_decoder": {"in_dim": 4, "out_channels": 1, "image_size": 8},
    "unet": {"in_channels": 1, "num_classes": 10},
    "lstm": {"vocab_size": 30},
    "transformer": {"vocab_size": 30},
    "sequence_encoder": {"vocab_size": 30, "out_dim": 8, "pad_id": 0},
}


def _run(kind: str, net: torch.nn.Module) -> tuple[int, ...]:
    """Call `net` on a batch of 2 suitable inputs; return the output shape."""
    if kind == "mlp":
        return tuple(net(torch.randn(2, 6)).shape)
    if kind == "conv_encoder":
        return tuple(net(torch.rand(2, 1, 8, 8)).shape)
    if kind == "conv_decoder":
        return tuple(net(torch.randn(2, 4)).shape)
    if kind == "unet":
        return tuple(net(torch.randn(2, 1, 8, 8), torch.tensor([0, 999]), torch.tensor([3, 10])).shape)
    tokens = torch.randint(1, 30, (2, 7))
    if kind == "sequence_encoder":
        return tuple(net(tokens).shape)
    return tuple(net(tokens)[0].shape)


EXPECTED = {
    "mlp": (2, 3),
    "conv_encoder": (2, 4),
    "conv_decoder": (2, 1, 8, 8),
    "unet": (2, 1, 8, 8),
    "lstm": (2, 7, 30),
    "transformer": (2, 7, 30),
    "sequence_encoder": (2, 8),
}


@pytest.mark.parametrize("kind", sorted(PRESETS))
def test_tiny_preset_shapes_and_size(kind):
    torch.manual_seed(0)
    net = build_net(kind, "tiny", **REQUIRED[kind])
    assert _run(kind, net) == EXPECTED[kind]
    assert 1_000 <= count_parameters(net) <= 60_000


def test_every_preset_names_real_arguments():
    for kind, presets in PRESETS.items():
        assert set(presets) == {"tiny", "small", "base"}
        accepted = set(inspect.signature(NET_CLASSES[kind].__init__).parameters)
        for name, kwargs in presets.items():
            assert set(kwargs) <= accepted, (kind, name)


def test_build_net_errors():
    with pytest.raises(ConfigError, match="unknown network kind"):
        build_net("resnet")
    with pytest.raises(ConfigError, match="tiny"):
        build_net("unet", "huge", in_channels=1)
    with pytest.raises(ConfigError, match="vocab_size"):
        build_net("lstm", "tiny")
    with pytest.raises(ConfigError, match="does not take"):
        build_net("mlp", "tiny", in_dim=2, out_dim=2, widht=3)


def test_mlp_shapes_and_bad_activation():
    net = MLP(5, 2, hidden=(16,), act="gelu", dropout=0.1, layer_norm=True)
    assert net(torch.randn(4, 5)).shape == (4, 2)
    assert MLP(5, 2, hidden=())(torch.randn(3, 5)).shape == (3, 2)
    with pytest.raises(ConfigError, match="activation"):
        MLP(5, 2, act="swishy")


@pytest.mark.parametrize("channels_in,size", [(1, 8), (3, 32), (3, 64)])
def test_conv_encoder_decoder_shapes(channels_in, size):
    enc = ConvEncoder(channels_in, size, out_dim=10, channels=(8, 16))
    dec = ConvDecoder(10, channels_in, size, channels=(16, 8))
    z = enc(torch.rand(2, channels_in, size, size))
    assert z.shape == (2, 10)
    assert dec(z).shape == (2, channels_in, size, size)


def test_conv_bad_size_raises():
    with pytest.raises(ConfigError, match="divisible by 4"):
        ConvEncoder(1, 10, out_dim=4, channels=(8, 16))
    with pytest.raises(ConfigError, match="divisible by 8"):
        ConvDecoder(4, 3, 12, channels=(16, 8, 8))


@pytest.mark.parametrize("size,mult,attn", [(8, (1, 2), ()), (32, (1, 2, 2), (1, 2)), (64, (1, 1, 2, 2), (3,))])
def test_unet_shapes(size, mult, attn):
    net = UNet(3, out_channels=2, base_channels=8, channel_mult=mult, attention_levels=attn, num_classes=10)
    x = torch.randn(2, 3, size, size)
    assert net(x, torch.tensor([5, 900]), torch.tensor([1, 2])).shape == (2, 2, size, size)
    assert net(x, torch.tensor([5.5, 900.0]), None).shape == (2, 2, size, size)  # float t, null class


def test_unet_conditioning_and_bad_sizes():
    torch.manual_seed(0)
    net = UNet(1, base_channels=8, num_classes=3)
    for p in net.parameters():  # zero-initialised output layers would hide the conditioning
        torch.nn.init.normal_(p, std=0.1)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 10])
    assert not torch.allclose(net(x, t, torch.tensor([0, 0])), net(x, t, torch.tensor([1, 1])))
    assert torch.allclose(net(x, t, None), net(x, t, torch.tensor([3, 3])))  # None == the null class
    with pytest.raises(ConfigError, match="divisible by 2"):
        net(torch.randn(1, 1, 7, 7), torch.tensor([1]))
    with pytest.raises(ConfigError, match="divisible by 4"):
        UNet(1, channel_mult=(1, 2, 2))(torch.randn(1, 1, 6, 6), torch.tensor([1]))
    with pytest.raises(ConfigError, match="attention_levels"):
        UNet(1, channel_mult=(1, 2), attention_levels=(2,))


def _models(cond_dim: int):
    torch.manual_seed(0)
    return [
        LSTMLM(20, d_model=16, n_layers=2, cond_dim=cond_dim).eval(),
        TransformerLM(20, d_model=16, n_layers=2, n_heads=2, max_len=16, cond_dim=cond_dim).eval(),
    ]


@pytest.mark.parametrize("cond_dim", [0, 3])
def test_incremental_decoding_matches_full(cond_dim):
    tokens = torch.randint(0, 20, (3, 9))
    cond = torch.randn(3, cond_dim) if cond_dim else None
    for model in _models(cond_dim):
        with torch.no_grad():
            full, _ = model(tokens, cond)  # (B, T, V)
            steps, state = [], None
            for i in range(tokens.shape[1]):  # one token at a time
                logits, state = model(tokens[:, i : i + 1], cond, state)
                steps.append(logits)
            assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5), type(model).__name__
            head, state = model(tokens[:, :4], cond)  # a prefix, then the rest as one chunk
            tail, _ = model(tokens[:, 4:], cond, state)
            assert torch.allclose(torch.cat([head, tail], dim=1), full, atol=1e-5), type(model).__name__


def test_cond_changes_outputs_and_is_checked():
    tokens = torch.randint(0, 20, (2, 5))
    for model in _models(3):
        a, _ = model(tokens, torch.zeros(2, 3))
        b, _ = model(tokens, torch.ones(2, 3))
        assert not torch.allclose(a, b)
        with pytest.raises(ValueError, match="cond"):
            model(tokens)


def test_transformer_max_len():
    model = _models(0)[1]
    with pytest.raises(ConfigError, match="max_len"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_sequence_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = SequenceEncoder(12, d_model=16, n_layers=2, out_dim=5, pad_id=0).eval()
    tokens = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]])
    longer = torch.cat([tokens, torch.zeros(2, 3, dtype=torch.long)], dim=1)  # extra right padding
    out = enc(tokens)
    assert out.shape == (2, 5)
    assert torch.allclose(out, enc(longer), atol=1e-6)
    assert not torch.allclose(out[0], enc(torch.tensor([[3, 4, 6, 0, 0]]))[0])
    with pytest.raises(ConfigError, match="pad_id"):
        SequenceEncoder(12, 16, 1, 5, pad_id=12)
