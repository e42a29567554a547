"""The execution layer (a3bench/eval/engine.py, docs/performance.md): attacks call a fast copy
of the model where it agrees with the model, the judge always the model as given; the
choice is in the record; ``--engine plain`` is the model as given; nothing is left on the
user's model."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from a3bench.eval.engine import Engine
from a3bench.eval.runner import evaluate
from a3bench.eval.setup import EvalOptions, Evaluation
from a3bench.threat import ThreatModel
from tests.conftest import needs_fmnist

pytestmark = needs_fmnist
LINF = ThreatModel("Linf", 0.1)


def _frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def test_auto_attacks_a_channels_last_copy_and_judges_the_model_as_given(robust_model, fmnist_test):
    ev = Evaluation(robust_model, fmnist_test, EvalOptions(n_examples=32, engine="auto"))
    assert ev.engine.model is not ev.model and ev.deployed.model is ev.model
    assert ev.engine.describe()["memory_format"] == "channels_last" and ev.engine.note is None
    assert type(ev.engine.model) is type(ev.model)  # same class and module names: attacks find their layers
    assert [n for n, _ in ev.engine.model.named_modules()] == [n for n, _ in ev.model.named_modules()]
    with torch.no_grad():
        a, b = ev.model(ev.x), ev.engine.model(ev.x)
    assert torch.equal(a.argmax(1), b.argmax(1)) and (a - b).abs().max() < 1e-4
    conv = next(m for m in ev.engine.model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert next(m for m in ev.model.modules() if isinstance(m, nn.Conv2d)).weight.is_contiguous()  # the user's model untouched


@pytest.mark.parametrize("engine", ["plain", "auto"])
def test_the_engine_is_in_the_record_and_the_outcomes_match(engine, robust_model, fmnist_test):
    res = evaluate(robust_model, fmnist_test, LINF, "pgd-10,square-50", n_examples=32, batch_size=32, probe=False, engine=engine)
    assert res.record.provenance["engine"]["name"] == engine
    plain = evaluate(robust_model, fmnist_test, LINF, "pgd-10,square-50", n_examples=32, batch_size=32, probe=False, engine="plain")
    assert res.outcomes.broken_by == plain.outcomes.broken_by


def test_plain_leaves_nothing_on_the_users_model(robust_model, fmnist_test):
    model = copy.deepcopy(robust_model)
    for p in model.parameters():
        p.requires_grad_(True)  # as a user's model comes: the run freezes it and must give it back as it was
    evaluate(model, fmnist_test, LINF, "pgd-2", n_examples=8, batch_size=8, probe=False, engine="plain")
    assert not model._forward_pre_hooks and all(p.requires_grad for p in model.parameters())


class _NoCopy(nn.Module):
    """A model that refuses to be copied (it holds a handle of some kind)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)

    def __deepcopy__(self, memo):
        raise TypeError("cannot copy a handle")


def test_what_cannot_be_copied_or_has_no_convolution_runs_as_given(robust_model, fmnist_test):
    x = fmnist_test.first(8).tensors()[0]
    nocopy = _frozen(_NoCopy(robust_model))
    e = Engine(nocopy, "auto", torch.device("cpu"), probe=x)
    assert e.model is nocopy and "could not be copied" in e.note
    mlp = _frozen(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    e = Engine(mlp, "auto", torch.device("cpu"), probe=x)
    assert e.model is mlp and "no 2-D convolution" in e.note
    with pytest.raises(Exception, match="unknown engine"):
        Engine(mlp, "turbo", torch.device("cpu"), probe=x)


def test_the_engine_counts_passes_for_progress_inside_an_attack(robust_model, fmnist_test, monkeypatch):
    monkeypatch.setattr(Engine, "TICK_S", 0.0)  # a tick at every pass: Square's one batch would otherwise show nothing
    events = []
    evaluate(robust_model, fmnist_test, LINF, "square-300", n_examples=24, batch_size=24, probe=False,
             progress=events.append)
    inside = [e for e in events if e.stage == "tick"]
    assert len(inside) > 10, "progress moves inside the one batch"
    assert all(e.attack == "square-300" and 0 <= e.done <= e.total for e in inside)
    passes = [e.forward_passes for e in inside]
    assert passes == sorted(passes) and passes[-1] > passes[0]
    assert any(e.eta_attack_s is not None for e in inside)


@pytest.mark.expensive
def test_autoattack_through_the_engine_gives_pyautoattacks_own_outcomes(robust_model, fmnist_test):
    """AutoAttack through the execution layer (channels_last copy) against pyautoattack run
    directly on the unmodified model: the same per-example outcome on 100 examples of the
    bundled PGD-AT model (a flip at the floating-point margin would be counted here and in
    docs/performance.md; none was seen)."""
    from a3bench._compat import import_autoattack

    x, y = fmnist_test.first(100).tensors()
    model = _frozen(robust_model)
    aa = import_autoattack().AutoAttack(model, norm="Linf", eps=0.1, version="standard", seed=0)
    x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=100)
    with torch.no_grad():
        direct = (model(x_adv).argmax(1) == y).tolist()
    ours = evaluate(model, fmnist_test, LINF, "autoattack", n_examples=100, batch_size=100, probe=False, engine="auto")
    flips = [i for i, (a, b) in enumerate(zip(direct, ours.outcomes.robust)) if a != b]
    assert ours.record.provenance["engine"]["memory_format"] == "channels_last"
    assert flips == [], f"{len(flips)} example(s) flip: {flips}"
