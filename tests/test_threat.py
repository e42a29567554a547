"""eps as users write and read it, and the eps used when none is given."""

from __future__ import annotations

import pytest

from a3bench.threat import DEFAULT_EPS, Norm, default_eps, format_eps, parse_eps


@pytest.mark.parametrize("eps, shown", [(8 / 255, "8/255"), (0.1, "0.1"), (1.5, "1.5"), (2e-3, "0.002"), (1 / 7, "0.142857"),
                                        (0.123456789, "0.123457"), (0.0, "0"), (1.0, "1")])
def test_format_eps(eps, shown):
    assert format_eps(eps) == shown
    assert parse_eps(shown) == pytest.approx(eps, rel=1e-5)


def test_default_eps_prefers_the_checkpoint_then_the_dataset():
    trained = {"metrics": {"eps": 0.2, "norm": "Linf"}}
    assert default_eps("fmnist", "Linf", trained) == 0.2
    assert default_eps("fmnist", "linf", trained) == 0.2 and default_eps("fmnist", Norm.LINF, trained) == 0.2
    assert default_eps("fmnist", "L2", trained) == DEFAULT_EPS[("fmnist", "L2")] == 1.5  # trained at another norm
    assert default_eps("cifar10", "Linf", {}) == 8 / 255 and default_eps("cifar10", "Linf", None) == 8 / 255
    assert default_eps("fmnist", "Linf", {"metrics": {"eps": True, "norm": "Linf"}}) == 0.1  # not a number
    assert default_eps("imagefolder:/x", "Linf", {}) is None
