"""Unit tests for lerp / slerp / interpolation paths: endpoints, norm preservation, the parallel fallback."""

import math

import pytest
import torch

from shared.errors import ConfigError
from shared.sampling.interpolation import interpolation_path, lerp, slerp


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_path_endpoints_and_shape(method):
    a, b = _pair((4, 16))
    path = interpolation_path(a, b, 7, method=method)
    assert path.shape == (7, 4, 16)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)


def test_lerp_midpoint_and_tensor_weights():
    a, b = torch.zeros(3), torch.full((3,), 2.0)
    assert torch.equal(lerp(a, b, 0.5), torch.ones(3))
    out = lerp(a, b, torch.tensor([[0.0], [0.25]]))
    assert torch.equal(out, torch.tensor([[0.0] * 3, [0.5] * 3]))


def test_slerp_keeps_norm_for_equal_norm_vectors():
    a, b = _pair((5, 32), seed=1)
    b = b / b.norm(dim=-1, keepdim=True) * a.norm(dim=-1, keepdim=True)  # row-wise equal norms
    path = interpolation_path(a, b, 11)
    torch.testing.assert_close(path.norm(dim=-1), a.norm(dim=-1).expand(11, 5))
    lin = interpolation_path(a, b, 11, method="lerp")
    assert (lin[5].norm(dim=-1) < a.norm(dim=-1) * 0.95).all()  # the straight line cuts inside the sphere


def test_slerp_of_orthogonal_unit_vectors_is_the_circle():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    for t in (0.25, 0.5, 0.9):
        angle = t * math.pi / 2
        torch.testing.assert_close(slerp(a, b, t), torch.tensor([math.cos(angle), math.sin(angle)]))


def test_slerp_falls_back_to_lerp_for_parallel_rows():
    a = torch.tensor([[1.0, 2.0], [1.0, 0.0]])
    b = torch.tensor([[2.0, 4.0], [0.0, 1.0]])  # row 0 parallel, row 1 orthogonal
    out = slerp(a, b, 0.5)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], torch.tensor([1.5, 3.0]))
    torch.testing.assert_close(out[1], torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]))
    torch.testing.assert_close(slerp(a, a, 0.3), a)


def test_slerp_over_several_dims():
    a, b = _pair((2, 3, 4, 4), seed=2)
    b = b / b.flatten(1).norm(dim=1).reshape(2, 1, 1, 1) * a.flatten(1).norm(dim=1).reshape(2, 1, 1, 1)
    mid = slerp(a, b, 0.5, dim=(1, 2, 3))
    torch.testing.assert_close(mid.flatten(1).norm(dim=1), a.flatten(1).norm(dim=1))


def test_bad_arguments_raise_config_error():
    a, b = _pair((3,))
    with pytest.raises(ConfigError):
        interpolation_path(a, b, 1)
    with pytest.raises(ConfigError):
        interpolation_path(a, b, 5, method="cubic")
    with pytest.raises(ConfigError):
        slerp(a, torch.zeros(4), 0.5)
    with pytest.raises(ConfigError):
        lerp(torch.zeros(3, dtype=torch.int64), torch.ones(3, dtype=torch.int64), 0.5)
