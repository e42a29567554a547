"""Vision transformers: attention scales as runtime state, the scale search, attn-scale / aas /
gama-pgd, AAS-AT training, and a ViT that lies through a saturated softmax."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from a3bench.attacks.attention import AAS, AttentionScale
from a3bench.attacks.base import AttackContext
from a3bench.attacks.gama import GamaPGD
from a3bench.attacks.pgd import PGD
from a3bench.attacks.registry import build_attack, list_attacks, resolve
from a3bench.attacks.scale_search import AAS_SEARCH, A3_SCALE_SEARCH, search_scales
from a3bench.errors import AttackError, ConfigError
from a3bench.models import create_model
from a3bench.models.attention import (
    attention_layers,
    attention_saturation,
    attention_scales,
    set_trained_attention_scales,
    trained_attention_scales,
)
from a3bench.threat import ThreatModel
from tests.conftest import REPO, needs_fmnist

TINY = {"dim": 32, "depth": 2, "heads": 2, "mlp_dim": 64}
NEW_ATTACKS = ["attn-scale:base=pgd-5", "attn-scale:s=auto:base=pgd-5", "aas:base=pgd-5", "aas:base=gama-pgd-5", "gama-pgd-5"]


def _tiny_vit(seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("vit_small_p4", in_channels=1, input_size=28, options=TINY, **kw).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _scales(model) -> list:
    return [layer.logit_scale for layer in attention_layers(model)]


def _robust(model, attack, x, y, threat, seed=0) -> float:
    """Percent of x robust to ``attack`` (x_adv re-checked here, inside the ball)."""
    out = attack(model, x, y, threat, seed=seed, indices=torch.arange(len(x)))
    assert not threat.violations(out.x_adv, x).any()
    with torch.no_grad():
        broken = model(out.x_adv).argmax(1) != y
        correct = model(x).argmax(1) == y
    return 100.0 * float((correct & ~broken).float().mean())


# --------------------------------------------------------------------------- runtime state


@pytest.mark.parametrize("name", NEW_ATTACKS)
def test_attention_scales_restored_after_every_attack(name):
    model = _tiny_vit()
    x = torch.rand(8, 1, 28, 28)
    y = torch.arange(8) % 10
    trained = trained_attention_scales(model)
    attack = build_attack(name)[0]
    out = attack(model, x, y, ThreatModel("Linf", 0.1), seed=0)
    assert out.x_adv.shape == x.shape and out.success.shape == (8,)
    assert _scales(model) == [1.0] * 2 and trained_attention_scales(model) == trained
    assert getattr(getattr(attack, "base", attack), "surrogate", None) is None  # the base attack is restored too


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("name", [n for n in NEW_ATTACKS if not n.startswith("gama")])
def test_attention_scales_restored_when_the_attack_raises(name):
    model = _tiny_vit()
    set_trained_attention_scales(model, [100.0, 100.0])  # peaked attention: s=auto rescales too
    calls = {"n": 0}

    def explode_when_rescaled(module, _inputs, _output):
        if module.logit_scale is not None and not (isinstance(module.logit_scale, float) and module.logit_scale == 1.0):
            calls["n"] += 1
            if calls["n"] > 3:  # a few rescaled passes, then a failure mid-attack
                raise _Boom("mid-attack failure")

    handle = attention_layers(model)[0].register_forward_hook(explode_when_rescaled)
    attack = build_attack(name)[0]
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        y = model(x).argmax(1)  # correctly classified: the attack takes several steps
    with pytest.raises(_Boom):
        attack(model, x, y, ThreatModel("Linf", 0.01), seed=0)
    handle.remove()
    assert calls["n"] > 3
    assert _scales(model) == [1.0] * 2 and trained_attention_scales(model) == [100.0, 100.0]
    assert attack.base.surrogate is None


def test_attention_scales_context_is_differentiable_and_nests():
    model = _tiny_vit()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        plain = model(x)
    s = torch.tensor([0.5, 0.1], requires_grad=True)
    with attention_scales(model, s):
        out = model(x)
        with attention_scales(model, 1.0):
            assert torch.allclose(model(x), plain)
        assert _scales(model) == list(s.unbind())  # the outer scales are back
    (g,) = torch.autograd.grad(out.sum(), s)
    assert g.abs().sum() > 0 and _scales(model) == [1.0, 1.0]


# --------------------------------------------------------------------------- the scale search


def _search(model, x, seed, search=AAS_SEARCH):
    return search_scales(model, x, attention_layers(model), lambda s: attention_scales(model, s), search, seed)


@pytest.mark.parametrize("search", [AAS_SEARCH, A3_SCALE_SEARCH], ids=["aas", "a3-scale"])
def test_scale_search_stays_in_the_box_and_is_seeded(search):
    model = _tiny_vit()
    x = torch.rand(16, 1, 28, 28)
    runs = {seed: _search(model, x, seed, search).scales for seed in (0, 0, 1, 2, 3)}
    for scales in runs.values():
        assert scales.shape == (2,) and ((scales >= 1e-7) & (scales <= 1)).all()
    assert torch.equal(_search(model, x, 0, search).scales, runs[0])
    if search is AAS_SEARCH:  # (a3-scale's signed steps of 0.1 reach 1e-7 from any start here)
        assert any(not torch.equal(runs[s], runs[0]) for s in (1, 2, 3))
    assert _scales(model) == [1.0, 1.0]


def test_scale_search_falls_back_to_seeded_draws_without_a_gradient():
    model = _tiny_vit()
    for layer in attention_layers(model):  # attention output cut from the graph: no dD/dS
        layer.register_forward_hook(lambda _m, _i, out: out.detach())
    x = torch.rand(16, 1, 28, 28)
    found = _search(model, x, 0)
    assert not found.used_gradient
    assert ((found.scales >= 1e-7) & (found.scales <= 1)).all()
    assert torch.equal(_search(model, x, 0).scales, found.scales)
    assert not torch.equal(_search(model, x, 1).scales, found.scales)


# --------------------------------------------------------------------------- registry, suites, budget


def test_new_attacks_are_registered_and_in_the_suites():
    names = list_attacks()
    assert {"attn-scale", "aas", "gama-pgd-K"} <= set(names)
    for suite in ("adaptive", "full"):
        built = resolve(suite).attacks
        by_name = {a.name: a for a in built}
        assert isinstance(by_name["attn-scale"], AttentionScale) and isinstance(by_name["aas"], AAS)
        assert by_name["attn-scale"].reveals.name == by_name["aas"].reveals.name == "attention-saturation"
    aas = build_attack("aas")[0]
    assert isinstance(aas.base, PGD) and aas.base.steps == 100 and aas.base.loss_name == "ce"  # the documented default
    assert isinstance(build_attack("aas:base=gama-pgd-100")[0].base, GamaPGD)
    assert build_attack("aas:base=pgd-100:loss=cw")[0].base.loss_name == "cw"


@pytest.mark.parametrize(
    "bad",
    ["aas:base=fgsm", "aas:base=gama-pgd-5:loss=cw", "aas:w=3", "attn-scale:s=0", "attn-scale:s=x", "attn-scale:gap=2",
     "gama-pgd-0", "gama-pgd-10:decay=1.5", "gama-pgd-10:w=-1", "aas:search_steps=0"],
)
def test_bad_options_are_one_attack_error(bad):
    with pytest.raises(AttackError):
        build_attack(bad)


@pytest.mark.parametrize("name", NEW_ATTACKS + ["attn-scale:base=gama-pgd-5"])
@pytest.mark.parametrize("norm, eps", [("Linf", 0.1), ("L2", 1.0)])
def test_new_attacks_stay_within_budget(name, norm, eps):
    model = _tiny_vit()
    x = torch.rand(12, 1, 28, 28)
    with torch.no_grad():
        y = model(x).argmax(1)
    threat = ThreatModel(norm, eps)
    out = build_attack(name)[0](model, x, y, threat, seed=0)
    assert not threat.violations(out.x_adv, x).any()
    assert out.forward_passes >= len(x) and out.backward_passes >= 0


def test_attention_attacks_are_skipped_on_cnns():
    from a3bench.data import load_dataset
    from a3bench.eval.runner import evaluate

    torch.manual_seed(0)
    cnn = create_model("smallcnn").eval()
    for name in ("attn-scale", "aas"):
        attack = build_attack(name)[0]
        assert "no attention layers" in attack.applies_to(AttackContext(model=cnn, threat=ThreatModel("Linf", 0.1)))
        assert attack.applies_to(AttackContext(model=_tiny_vit(), threat=ThreatModel("Linf", 0.1))) is None
    data = load_dataset("synthetic", "test")
    res = evaluate(cnn, data, ThreatModel("Linf", 0.1), "pgd-2,attn-scale:base=pgd-2,aas:base=pgd-2,gama-pgd-2", n_examples=16, batch_size=16)
    status = {a.name: (a.status, a.note) for a in res.record.per_attack}
    for name in ("attn-scale:base=pgd-2", "aas:base=pgd-2"):
        assert status[name][0] == "skipped" and "no attention layers" in status[name][1]
    assert status["gama-pgd-2"][0] == "ran"  # GAMA is for every model


# --------------------------------------------------------------------------- saturation statistics


def test_saturation_counts_rows_per_block():
    model = _tiny_vit()
    x = torch.rand(6, 1, 28, 28)
    soft = attention_saturation(model, x)
    assert soft.rows == [6 * 2 * 50 * 1] * 2  # examples × heads × query tokens (49 patches + CLS)
    assert soft.saturated == [0, 0]
    liar = copy.deepcopy(model)
    set_trained_attention_scales(liar, [1e5, 1.0])
    hard = attention_saturation(liar, x)
    assert hard.fraction[0] > 0.9 and hard.fraction[1] < 1.0
    assert hard.to_dict()["saturated"] == hard.saturated
    assert attention_saturation(create_model("smallcnn"), torch.rand(2, 1, 28, 28)).rows == []  # no attention


# --------------------------------------------------------------------------- AAS-AT


SMALL_AAS_AT = [
    "dataset=synthetic", "train.n_train=256", "train.batch_size=64", "attack.steps=2", "eval.n_examples=64",
    "eval.pgd_steps=2", "train.epochs=2", "train.aas_every=1", "train.aas_examples=32",
    *(f"model.options.{k}={v}" for k, v in TINY.items()),
]


def test_aas_at_refinds_and_saves_the_scales_and_resumes_bit_exact(tmp_path):
    from a3bench.config import load_config
    from a3bench.models import load_checkpoint
    from a3bench.train.loop import TrainCallbacks, train

    cfg = load_config(REPO / "configs" / "fmnist_vit_trades_aas.yaml", SMALL_AAS_AT)
    full = train(cfg, tmp_path / "full.pt")
    assert full.history[0].attention_scales == [1.0, 1.0]  # first epoch: the scales it was built with
    carried = full.history[1].attention_scales
    assert carried != [1.0, 1.0] and all(1e-7 <= s <= 1 for s in carried)  # re-found before epoch 2
    ck = load_checkpoint(tmp_path / "full.pt")
    assert trained_attention_scales(ck.model) == carried  # saved with the weights

    class Cut(TrainCallbacks):
        def on_epoch_end(self, metrics):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut.pt", callbacks=Cut())
    train(cfg, tmp_path / "cut.pt", resume=True)
    a, b = ck.model.state_dict(), load_checkpoint(tmp_path / "cut.pt").model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_aas_at_needs_attention_and_adversarial_training(tmp_path):
    from a3bench.config import load_config
    from a3bench.train.loop import train

    with pytest.raises(ConfigError, match="aas_every"):
        load_config(REPO / "configs" / "fmnist_vit_trades_aas.yaml", SMALL_AAS_AT + ["train.method=standard"])
    cfg = load_config(REPO / "configs" / "fmnist_a3.yaml", ["dataset=synthetic", "train.n_train=64", "train.aas_every=1"])
    with pytest.raises(ConfigError, match="attention"):
        train(cfg, tmp_path / "cnn.pt")


def test_checkpoints_without_trained_scales_still_load():
    model = _tiny_vit()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("trained_scale")}
    other = _tiny_vit(seed=1)
    other.load_state_dict(state, strict=True)
    assert trained_attention_scales(other) == [1.0, 1.0]


# --------------------------------------------------------------------------- a ViT that lies

LIAR_FACTOR = 100.0
LIAR_EPS = ThreatModel("Linf", 0.03)
N = 128


def train_peaked_vit(train_set) -> nn.Module:
    """A small ViT trained with pre-softmax scale 30: peaked attention, 300 Adam steps, frozen
    (also benchmarks/vit_liar.py's honest model)."""
    from tests.conftest import train_small

    info = train_set.info
    torch.manual_seed(0)
    model = create_model("vit_small_p4", in_channels=1, input_size=28, mean=info.mean, std=info.std, options=TINY)
    set_trained_attention_scales(model, [30.0, 30.0])
    model = train_small(model, train_set.first(20000), steps=300, lr=2e-3, seed=0)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def peaked_vit(fmnist_train):
    return train_peaked_vit(fmnist_train)


@needs_fmnist
def test_gama_pgd_at_least_as_strong_as_pgd_ce(peaked_vit, fmnist_test):
    x, y = fmnist_test.first(N).tensors()
    pgd = _robust(peaked_vit, PGD(100), x, y, LIAR_EPS)
    gama = _robust(peaked_vit, GamaPGD(100), x, y, LIAR_EPS)
    assert 0 < pgd < 90  # a non-trivial operating point
    assert gama <= pgd


@needs_fmnist
def test_a_vit_that_lies_through_a_saturated_softmax(peaked_vit, fmnist_test):
    """Attention logits ×100: the forward pass hardly changes, the softmax saturates and PGD
    overestimates. Crafting on the model with the factor undone (attn-scale:s=1/100) is
    the reference; ``attn-scale:s=auto`` closes most of the gap without being told the factor."""
    x, y = fmnist_test.first(N).tensors()
    liar = copy.deepcopy(peaked_vit)
    set_trained_attention_scales(liar, [30.0 * LIAR_FACTOR] * 2)
    with torch.no_grad():
        agree = float((liar(x).argmax(1) == peaked_vit(x).argmax(1)).float().mean())
    assert agree >= 0.9  # forward hardly changes
    sat_honest = attention_saturation(peaked_vit, x).total_fraction
    sat_liar = attention_saturation(liar, x).total_fraction
    assert sat_liar > 0.8 and sat_liar > sat_honest + 0.5  # ... but the softmax saturates

    pgd = _robust(liar, PGD(20), x, y, LIAR_EPS)
    undone = _robust(liar, AttentionScale(1 / LIAR_FACTOR, PGD(20)), x, y, LIAR_EPS)
    auto = _robust(liar, AttentionScale(None, PGD(20)), x, y, LIAR_EPS)
    assert pgd >= undone + 5  # plain PGD overestimates
    assert auto <= undone + 0.5 * (pgd - undone)  # s=auto closes most of the gap
    assert _scales(liar) == [1.0, 1.0]
    # ... and in a cascade the record says why: the attention attack broke what PGD missed
    from a3bench.eval.runner import evaluate

    rec = evaluate(liar, fmnist_test, LIAR_EPS, ["pgd-20", "attn-scale:s=auto:base=pgd-20"], n_examples=N, batch_size=N,
                   seed=0, device="cpu", probe=False).record
    fired = {f.name: f for f in rec.flags}
    assert "attention-saturation" in fired and fired["attention-saturation"].severity == "warning", rec.flags
    assert rec.verdict != "reliable" and rec.robust_acc < rec.per_attack[0].robust_acc
