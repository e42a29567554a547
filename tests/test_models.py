"""Every registered model: forward, backward, no NaN, A3 modes switch (parametrised over list_models())."""

from __future__ import annotations

import contextlib

import pytest
import torch

from a3bench.models import A3Config, a3_layers, a3_mode, create_model, fixed_randomness, is_randomized, list_models
from a3bench.models.registry import model_entry


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_modes(name):
    torch.manual_seed(0)
    entry = model_entry(name)
    model = create_model(name, num_classes=7, a3=A3Config()).eval()
    x = torch.rand(2, entry.in_channels, entry.input_size, entry.input_size, requires_grad=True)
    # a randomised model (CrossMax's multi-resolution input) is compared with itself on fixed draws
    fixed = fixed_randomness(model, seed=0) if is_randomized(model) else contextlib.nullcontext()
    with fixed:
        _check_forward_backward_modes(model, x)


def _check_forward_backward_modes(model, x):
    logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert len(a3_layers(model)) >= 2
    outs = {}
    for mode in ("amplify", "attenuate", "off"):
        with a3_mode(model, mode), torch.no_grad():
            outs[mode] = model(x)
    assert not torch.allclose(outs["amplify"], outs["attenuate"])
    assert not torch.allclose(outs["off"], outs["attenuate"])
    logits_f, z = model.forward_with_features(x)
    torch.testing.assert_close(logits_f, outs["attenuate"])
    assert z.dim() == 2


@pytest.mark.parametrize("name", list_models())
def test_a3_parameter_overhead_is_small(name):
    plain = create_model(name)
    with_a3 = create_model(name, a3=A3Config())
    extra = sum(p.numel() for p in with_a3.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == sum(layer.channels + 1 for layer in a3_layers(with_a3))
    assert extra / sum(p.numel() for p in plain.parameters()) <= 0.005


def test_wrapper_owns_normalisation():
    model = create_model("smallcnn", mean=(0.3,), std=(0.2,)).eval()
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(model(x), model.backbone((x - 0.3) / 0.2))
