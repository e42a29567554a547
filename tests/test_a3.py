"""Invariants of the A3 layer (docs/architecture.md#the-a3-module)."""

from __future__ import annotations

import pytest
import torch

from a3bench.errors import ConfigError
from a3bench.models import A3, A3Config, a3_layers, a3_mode, create_model


def _layer(channels=8, **kw) -> A3:
    torch.manual_seed(0)
    layer = A3(channels, A3Config(**kw))
    with torch.no_grad():
        layer.theta.copy_(torch.randn(channels))  # a non-trivial mask
    return layer


@pytest.mark.parametrize("shape,cdim", [((4, 8, 5, 5), 1), ((4, 7, 8), -1)])
def test_off_is_identity(shape, cdim):
    layer = A3(8, A3Config(), channel_dim=cdim).eval()
    a = torch.randn(shape)
    with a3_mode(layer, "off"):
        assert torch.equal(layer(a), a)


@pytest.mark.parametrize("eval_mask", ["soft", "hard"])
@pytest.mark.parametrize("scale", ["mean-ratio", "max-ratio"])
def test_amplify_times_attenuate_is_square(eval_mask, scale):
    layer = _layer(eval_mask=eval_mask, scale=scale).eval()
    a = torch.randn(3, 8, 6, 6)
    with a3_mode(layer, "amplify"):
        amp = layer(a)
    with a3_mode(layer, "attenuate"):
        att = layer(a)
    torch.testing.assert_close(amp * att, a * a, rtol=1e-5, atol=1e-6)
    # and the modes really differ on a non-trivial mask
    assert not torch.allclose(amp, att)


def test_attenuate_shrinks_amplify_grows():
    layer = _layer().eval()
    a = torch.randn(3, 8, 6, 6)
    with a3_mode(layer, "attenuate"):
        assert (layer(a).abs() <= a.abs() + 1e-7).all()
    with a3_mode(layer, "amplify"):
        assert (layer(a).abs() >= a.abs() - 1e-7).all()


@pytest.mark.parametrize("channels", [1, 16, 64])
def test_parameter_count_is_channels_plus_one(channels):
    assert sum(p.numel() for p in A3(channels, A3Config()).parameters()) == channels + 1
    assert sum(p.numel() for p in A3(channels, A3Config(granularity="layer")).parameters()) == 2


def test_eval_is_deterministic_and_training_is_not():
    layer = _layer()
    a = torch.randn(2, 8, 4, 4)
    layer.eval()
    assert torch.equal(layer(a), layer(a))
    layer.train()
    assert not torch.equal(layer(a), layer(a))  # Gumbel-sigmoid mask sample


def test_stochastic_eval_option_randomises_eval():
    layer = _layer(eval_mask="stochastic").eval()
    a = torch.randn(2, 8, 4, 4)
    assert not torch.equal(layer(a), layer(a))


def test_gradients_reach_theta_and_lambda_in_training():
    layer = _layer().train()
    a = torch.randn(4, 8, 5, 5, requires_grad=True)
    layer(a).pow(2).sum().backward()
    assert layer.theta.grad is not None and layer.theta.grad.abs().sum() > 0
    assert layer.rho.grad is not None and layer.rho.grad.abs() > 0


def test_scale_factor_grows_with_a_channels_magnitude():
    layer = _layer()
    a = torch.rand(1, 8, 4, 4)
    r0 = layer.scale_factor(a)
    a2 = a.clone()
    a2[:, 3] *= 10  # an adversarial-style inflation of one channel
    r1 = layer.scale_factor(a2)
    assert (r0 >= 0).all() and r1[0, 3] > r0[0, 3]


def test_mode_context_restores_and_switches_whole_model():
    model = create_model("smallcnn", a3=A3Config())
    layers = a3_layers(model)
    assert len(layers) == 2 and all(layer.mode.value == "attenuate" for layer in layers)
    with a3_mode(model, "amplify"):
        assert all(layer.mode.value == "amplify" for layer in layers)
        with a3_mode(model, "off"):
            assert all(layer.mode.value == "off" for layer in layers)
        assert all(layer.mode.value == "amplify" for layer in layers)
    assert all(layer.mode.value == "attenuate" for layer in layers)


def test_mode_off_model_equals_backbone_without_a3():
    torch.manual_seed(0)
    with_a3 = create_model("smallcnn", a3=A3Config()).eval()
    plain = create_model("smallcnn").eval()
    plain.load_state_dict({k: v for k, v in with_a3.state_dict().items() if "a3_" not in k})
    x = torch.rand(3, 1, 28, 28)
    with a3_mode(with_a3, "off"):
        torch.testing.assert_close(with_a3(x), plain(x))


@pytest.mark.parametrize(
    "kwargs",
    [{"eval_mask": "sometimes"}, {"scale": "l7"}, {"granularity": "pixel"}, {"tau": 0}, {"placement": "everywhere"}],
)
def test_bad_a3_config_is_a_config_error(kwargs):
    with pytest.raises(ConfigError):
        A3Config(**kwargs)


def test_unknown_mode_and_placement():
    model = create_model("smallcnn", a3=A3Config())
    with pytest.raises(ConfigError):
        with a3_mode(model, "louder"):
            pass
    with pytest.raises(ConfigError):
        create_model("smallcnn", a3=A3Config(placement=["stage9"]))
    only_first = create_model("smallcnn", a3=A3Config(placement=["block1"]))
    assert len(a3_layers(only_first)) == 1
