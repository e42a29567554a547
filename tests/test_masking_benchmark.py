"""The masking benchmark's corpus (benchmarks/masking_corpus/, docs/masking-benchmark.md).

Default run (seconds): every corpus model loads through a3bench's own ``--model`` path,
classifies real Fashion-MNIST images, and does what its label says — each masked model
shows its masking on a few images (a zero input gradient that BPDA's bridge restores,
randomised outputs, a saturated softmax, a flattened gradient), each honest one is
deterministic with a non-zero gradient.

``expensive`` (minutes): on the first 100 test examples, a3bench's ``--suite full`` flags
two masked models and passes an honest one, and its worst case is within 3 points of the
known-truth attack's number on each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

CORPUS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "masking_corpus"
sys.path.insert(0, str(CORPUS_DIR))

from corpus import CORPUS, MASKING, Entry, entry  # noqa: E402
from reference import loss_fn, run_reference, straight_through  # noqa: E402

MASKED = [e for e in CORPUS if e.masked]
HONEST = [e for e in CORPUS if not e.masked]


@pytest.fixture(scope="module")
def images():
    from a3bench.data import load_dataset

    return load_dataset("fmnist", "test").first(64).tensors()


_models: dict[str, torch.nn.Module] = {}


def load(e: Entry | str) -> torch.nn.Module:
    """The model (an entry's, or a SPEC) as ``a3bench attack --model SPEC --dataset fmnist`` loads it."""
    spec = e if isinstance(e, str) else e.spec
    if spec not in _models:
        from a3bench.models.spec import load_model

        _models[spec] = load_model(spec, dataset="fmnist").model.eval()
    return _models[spec]


def input_grad(model, x, y, loss="ce", bpda=None) -> torch.Tensor:
    xg = x.clone().requires_grad_(True)
    with straight_through(model, bpda), torch.enable_grad():
        out = loss_fn(loss, 1.0)(model(xg), y).sum()
        (g,) = torch.autograd.grad(out, xg, allow_unused=True) if out.requires_grad else (None,)
    return torch.zeros_like(x) if g is None else g


def test_the_corpus_meets_the_issue():
    """At least eight masked defenses and five honest models, unique names, labels consistent."""
    assert len(MASKED) >= 8 and len(HONEST) >= 5
    assert len({e.name for e in CORPUS}) == len(CORPUS)
    for e in CORPUS:
        assert bool(e.masking) == e.masked, e.name
        assert set(e.masking) <= set(MASKING), e.name
        assert ("randomised" in e.masking) == e.randomised, e.name
        if "zero-gradient" in e.masking:
            assert e.reference.bpda is not None, f"{e.name}: a zero gradient needs BPDA in its reference"
        if "randomised" in e.masking:
            assert e.reference.eot > 1, f"{e.name}: a randomised model needs EOT in its reference"
    assert entry("jpeg") is CORPUS[0]
    with pytest.raises(KeyError):
        entry("no-such-model")


@pytest.mark.parametrize("e", CORPUS, ids=lambda e: e.name)
def test_every_corpus_model_loads_and_classifies(e, images):
    x, y = images
    torch.manual_seed(0)
    with torch.no_grad():
        logits = load(e)(x)
    assert logits.shape == (len(x), 10)
    assert torch.isfinite(logits).all()
    acc = (logits.argmax(1) == y).float().mean().item()
    assert acc >= 0.6, f"{e.name}: {acc:.2f} of 64 test images: wrong weights or preprocessing"


@pytest.mark.parametrize("e", MASKED, ids=lambda e: e.name)
def test_masked_models_really_mask(e, images):
    x, y = images
    model = load(e)
    torch.manual_seed(0)
    g = input_grad(model, x[:16], y[:16])
    if "zero-gradient" in e.masking:
        assert (g == 0).all(), f"{e.name}: the input gradient is not zero"
        torch.manual_seed(0)
        bridged = input_grad(model, x[:16], y[:16], bpda=e.reference.bpda)
        assert (bridged.flatten(1).abs().sum(1) > 0).all(), f"{e.name}: BPDA's bridge does not restore a gradient"
    if "randomised" in e.masking:
        with torch.no_grad():
            z1, z2 = model(x), model(x)
        assert (z1 - z2).abs().max() > 1e-3, f"{e.name}: two passes agree: not randomised"
    else:
        with torch.no_grad():
            assert torch.equal(model(x), model(x)), f"{e.name}: labelled deterministic, but two passes differ"
    if "saturated-softmax" in e.masking:
        ce = input_grad(model, x, y, "ce").flatten(1).abs().sum(1)
        cw = input_grad(model, x, y, "cw").flatten(1).abs().sum(1)
        assert (ce == 0).float().mean() >= 0.25, f"{e.name}: the CE gradient underflows on only {(ce == 0).float().mean():.2f}"
        assert (cw > 0).all(), f"{e.name}: the margin's gradient is zero somewhere"
    if "flat-gradient" in e.masking:
        mine = input_grad(model, x, y).flatten(1).norm(dim=1).mean()
        theirs = input_grad(load(entry("standard")), x, y).flatten(1).norm(dim=1).mean()
        assert mine * 4 <= theirs, f"{e.name}: gradient norm {mine:.3g}, the undefended network's {theirs:.3g}"


@pytest.mark.parametrize("e", HONEST, ids=lambda e: e.name)
def test_honest_models_are_deterministic_with_a_gradient(e, images):
    x, y = images
    model = load(e)
    with torch.no_grad():
        assert torch.equal(model(x[:16]), model(x[:16]))
    g = input_grad(model, x[:16], y[:16])
    assert torch.isfinite(g).all()
    assert (g.flatten(1).abs().sum(1) > 0).all()


@pytest.mark.parametrize("e", [e for e in CORPUS if "zero-gradient" in e.masking], ids=lambda e: e.name)
def test_the_naive_pgd20_runs_where_no_gradient_reaches_the_input(e, images):
    """The 'what the defense's authors ran' PGD-20 on a front end outside autograd: no path
    from the input at all, so its gradient is zero and PGD-20 stays at its random start —
    it must say so with a number, not raise (it once killed the benchmark on tv_minimise)."""
    from dataclasses import replace

    x, y = images
    model = load(e)
    for p in model.parameters():
        p.requires_grad_(False)
    cheap = replace(e.reference, steps=2, restarts=1, eot=1, transfer_from=None)
    torch.manual_seed(0)
    res = run_reference(model, x[:8], y[:8], 0.1, cheap, randomised=e.randomised, seed=0, naive=True)
    assert res.naive_pgd20_acc is not None and 0.0 <= res.naive_pgd20_acc <= res.clean_acc
    assert 0.0 <= res.robust_acc <= res.clean_acc


# --------------------------------------------------------------------------- expensive

SUBSET = ("distillation", "sap", "standard")  # two masked, one honest: the cheapest to attack in full


@pytest.mark.expensive
@pytest.mark.parametrize("name", SUBSET)
def test_the_full_suite_flags_masking_and_reaches_the_known_truth(name):
    """a3bench --suite full on the first 100 test examples: the verdict matches the label,
    and the worst case is within 3 points of the known truth (the lower of the
    known-truth attack's number and a3bench's own)."""
    import a3bench
    from a3bench.data import load_dataset

    e = entry(name)
    x, y = load_dataset("fmnist", "test").first(100).tensors()
    record = a3bench.benchmark(e.spec, "fmnist", eps=0.1, n_examples=100, suite="full", batch_size=100, seed=0,
                               device="cpu")
    model = load(e)
    surrogate = load(e.reference.transfer_from) if e.reference.transfer_from else None
    torch.manual_seed(0)
    ref = run_reference(model, x, y, 0.1, e.reference, randomised=e.randomised, seed=0, surrogate=surrogate, naive=False)
    assert (record.verdict != "reliable") == e.masked, f"{name}: verdict {record.verdict}, flags {record.flags}"
    truth = min(record.robust_acc, ref.robust_acc)
    assert record.robust_acc - truth <= 3.0, f"{name}: a3bench {record.robust_acc}, known truth {ref.robust_acc}"
