"""CrossMax self-ensembles and ensembles of models (Fort & Lakshminarayanan 2024):
the aggregation on hand-computed tensors, the multi-resolution input, the runtime switches
the adaptive attacks use, checkpoints, the ensemble: spec, and the two training phases."""

from __future__ import annotations

import pytest
import torch

from a3bench.config import load_config
from a3bench.errors import ConfigError, ModelSpecError
from a3bench.models import create_model, load_checkpoint, load_model, save_checkpoint
from a3bench.models.crossmax import (
    MultiResolution,
    MultiResolutionConfig,
    aggregate,
    aggregation,
    crossmax,
    crossmax_info,
    fixed_randomness,
    has_multiresolution,
    head_modules,
    is_crossmax,
    is_randomized,
    predictor_logits,
    predictor_names,
    random_draws_from,
    single_predictor,
)
from a3bench.models.spec import parse_ensemble_spec
from tests.conftest import REPO

# a small, cheap CrossMax model: smallcnn has two insertion points -> 3 predictors
SMALL = {"backbone": "smallcnn", "k": 2}


def small_model(**options):
    torch.manual_seed(0)
    return create_model("crossmax", num_classes=10, options={**SMALL, **options}).eval()


def _state(model):
    """Every piece of runtime state the switches touch."""
    stacks = [m for m in model.modules() if isinstance(m, MultiResolution)]
    tops = [m for m in model.modules() if hasattr(m, "aggregation") and hasattr(m, "record")]
    return (
        [(m.fixed_seed, m.generator) for m in stacks],
        [(t.aggregation, t.k, t.predictor, t.record) for t in tops],
    )


# --------------------------------------------------------------------------- aggregation


def test_crossmax_kth_value_hand_computed():
    # P=2 predictors, K=3 classes. Step 1 (minus each predictor's max): [0,-1,-4], [0,-4,-2].
    # Step 2 (minus each class's max over predictors, maxes 0,-1,-2): [0,0,-2], [0,-3,0].
    z = torch.tensor([[[4.0, 3.0, 0.0], [4.0, 0.0, 2.0]]])
    torch.testing.assert_close(crossmax(z, 1), torch.tensor([[0.0, 0.0, 0.0]]))
    torch.testing.assert_close(crossmax(z, 2), torch.tensor([[0.0, -3.0, -2.0]]))
    # P=3: after step 1 every class already has a 0 somewhere, so step 2 changes nothing here
    z3 = torch.tensor([[[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 1.0, 4.0]]])
    torch.testing.assert_close(crossmax(z3, 2), torch.tensor([[-2.0, -2.0, -1.0]]))
    torch.testing.assert_close(crossmax(z3, 3), torch.tensor([[-3.0, -3.0, -3.0]]))
    with pytest.raises(ValueError, match="k must be"):
        crossmax(z, 3)


def test_crossmax_step_order_matters():
    # One confident predictor (10 on class 0) and one mild one (1 on class 1).
    z = torch.tensor([[[10.0, 0.0], [0.0, 1.0]]])
    # the paper's order: predictor max first -> [0,-10], [-1,0]; 2nd highest per class = [-1, -10]
    out = crossmax(z, 2)
    torch.testing.assert_close(out, torch.tensor([[-1.0, -10.0]]))
    # the other order (class max first, then predictor max) gives [-10, -1]: another prediction
    swapped_order = z - z.amax(dim=1, keepdim=True)
    swapped_order = swapped_order - swapped_order.amax(dim=2, keepdim=True)
    reverse = swapped_order.topk(2, dim=1).values[:, 1, :]
    torch.testing.assert_close(reverse, torch.tensor([[-10.0, -1.0]]))
    assert out.argmax(1) != reverse.argmax(1)


def test_median_and_mean_hand_computed():
    z = torch.tensor([[[3.0, 1.0, 0.0], [0.0, 5.0, 1.0], [2.0, 1.0, 4.0]]])
    torch.testing.assert_close(aggregate(z, "median", 3), torch.tensor([[2.0, 1.0, 1.0]]))
    torch.testing.assert_close(aggregate(z, "mean", 3), torch.tensor([[5 / 3, 7 / 3, 5 / 3]]))
    even = torch.tensor([[[1.0, 4.0], [3.0, 0.0]]])  # even P: mean of the two middle values
    torch.testing.assert_close(aggregate(even, "median", 1), torch.tensor([[2.0, 2.0]]))
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(z, "max", 1)


def test_crossmax_invariant_to_a_constant_on_one_predictor():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 8, 10, generator=g)
    shifted = z.clone()
    shifted[:, 3, :] += 7.5  # one predictor's logits all raised by the same amount
    for k in (1, 3, 8):
        torch.testing.assert_close(crossmax(shifted, k), crossmax(z, k))
    # the plain mean is not invariant (its values move), which is why CrossMax subtracts first
    assert not torch.allclose(aggregate(shifted, "mean", 3), aggregate(z, "mean", 3))


# --------------------------------------------------------------------------- multi-resolution input


def test_multiresolution_shapes_and_range():
    stack = MultiResolution(MultiResolutionConfig(resolutions=(32, 16, 8, 4)), input_size=32)
    x = torch.rand(6, 3, 32, 32)
    out = stack(x)
    assert out.shape == (6, 12, 32, 32)
    assert out.min() >= 0 and out.max() <= 1
    model = create_model("crossmax", num_classes=10, in_channels=3, input_size=32, options={**SMALL, "backbone": "smallcnn"})
    assert model.arch_options["resolutions"] == [32, 16, 8, 4]  # S, S/2, S/4, S/8
    assert model.backbone.net.conv1.in_channels == 12  # the backbone takes C·|R| channels
    assert create_model("crossmax", options=SMALL).arch_options["resolutions"] == [28, 14, 7, 4]


def test_fixed_generator_is_deterministic_and_batch_independent():
    model = small_model()
    x = torch.rand(8, 1, 28, 28)
    with fixed_randomness(model, seed=3):
        a, b = model(x), model(x)
        part = model(x[2:5])
        assert not is_randomized(model)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(part, a[2:5])  # an image's output does not depend on its batch
    with fixed_randomness(model, seed=4):
        assert not torch.allclose(model(x), a)  # another seed, other fixed draws


def test_fresh_draws_differ_unless_fixed():
    model = small_model()
    x = torch.rand(4, 1, 28, 28)
    assert is_randomized(model)
    assert not torch.allclose(model(x), model(x))
    stack = model.backbone.multires
    assert not torch.allclose(stack(x), stack(x))


def test_random_draws_from_a_generator_are_fresh_and_reproducible():
    model = small_model()
    x = torch.rand(4, 1, 28, 28)
    runs = []
    for _ in range(2):
        with random_draws_from(model, torch.Generator().manual_seed(11)):
            runs.append([model(x), model(x)])
            assert is_randomized(model)  # fresh at every pass, just reproducible
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=0, atol=0)
    torch.testing.assert_close(runs[0][1], runs[1][1], rtol=0, atol=0)
    assert not torch.allclose(runs[0][0], runs[0][1])


def test_each_transform_does_what_it_says():
    x = torch.rand(5, 1, 28, 28)
    # shift only: every image is a circular roll of itself by at most 3 px (per-image draws)
    shift_only = MultiResolution(MultiResolutionConfig(resolutions=(28,), contrast=(1.0, 1.0), noise_down=0.0, noise_up=0.0), 28)
    out = shift_only(x)
    for i in range(len(x)):
        rolls = [torch.roll(x[i], (dy, dx), dims=(1, 2)) for dy in range(-3, 4) for dx in range(-3, 4)]
        assert sum(torch.allclose(out[i], r, atol=1e-6) for r in rolls) == 1
    assert not all(torch.allclose(out[i], x[i], atol=1e-6) for i in range(len(x)))  # not the identity
    # contrast only, fixed at 0.5: halfway to each image's mean
    half = MultiResolution(MultiResolutionConfig(resolutions=(28,), shift=0, contrast=0.5, noise_down=0.0, noise_up=0.0), 28)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(half(x), m + 0.5 * (x - m))
    # resolution only: the 7×7 copy is constant on each 4×4 block before upsampling (area mode)
    low = MultiResolution(MultiResolutionConfig(resolutions=(7,), shift=0, contrast=1.0, noise_down=0.0, noise_up=0.0, up_mode="nearest"), 28)
    blocks = low(x).unfold(2, 4, 4).unfold(3, 4, 4)  # N×1×7×7×4×4
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks))
    # uniform noise is non-negative: with everything else off, the output never goes below the input
    noisy = MultiResolution(MultiResolutionConfig(resolutions=(28,), shift=0, contrast=1.0, noise_down=0.1, noise_up=0.1), 28)
    assert (noisy(x) >= x.clamp(max=1.0) - 1e-6).all()


def test_gradients_flow_to_the_input_through_every_predictor():
    model = small_model()
    x = torch.rand(3, 1, 28, 28, requires_grad=True)
    with fixed_randomness(model, 0):
        z = predictor_logits(model, x)
    assert z.shape == (3, 3, 10)
    for p in range(z.shape[1]):
        (g,) = torch.autograd.grad(z[:, p].sum(), x, retain_graph=True)
        assert g.abs().sum() > 0


# --------------------------------------------------------------------------- runtime switches


def test_switches_agree_with_predictor_logits():
    model = small_model()
    x = torch.rand(4, 1, 28, 28)
    assert predictor_names(model) == ["block1", "block2", "backbone"]
    with fixed_randomness(model, 0), torch.no_grad():
        z = predictor_logits(model, x)
        torch.testing.assert_close(model(x), crossmax(z, 2))
        with aggregation(model, "mean"):
            torch.testing.assert_close(model(x), z.mean(dim=1))
        with aggregation(model, "crossmax", k=3):
            torch.testing.assert_close(model(x), crossmax(z, 3))
        for which, index in (("backbone", 2), (-1, 2), (0, 0), ("block2", 1)):
            with single_predictor(model, which):
                torch.testing.assert_close(model(x), z[:, index], msg=f"predictor {which}")
                # recording still gives every predictor while one is selected
                torch.testing.assert_close(predictor_logits(model, x), z)


def test_every_switch_restores_state_also_on_exceptions():
    model = small_model()
    before = _state(model)
    switches = [
        lambda: fixed_randomness(model, 5),
        lambda: random_draws_from(model, torch.Generator().manual_seed(0)),
        lambda: aggregation(model, "median"),
        lambda: aggregation(model, "mean", k=1),
        lambda: single_predictor(model, "backbone"),
    ]
    for make in switches:
        with make():
            assert _state(model) != before  # the switch did switch something
        assert _state(model) == before
        with pytest.raises(KeyError):
            with make():
                raise KeyError("boom")
        assert _state(model) == before
    # nested, and predictor_logits' own recording when the forward pass raises
    with fixed_randomness(model, 1), aggregation(model, "mean"), single_predictor(model, 0):
        with pytest.raises(ValueError):
            predictor_logits(model, torch.rand(2, 1, 32, 32))  # wrong input size
    assert _state(model) == before


def test_switch_errors_and_plain_models():
    model = small_model()
    with pytest.raises(ValueError, match="unknown predictor"):
        with single_predictor(model, "block9"):
            pass
    with pytest.raises(ValueError, match="out of range"):
        with single_predictor(model, 3):
            pass
    with pytest.raises(ConfigError, match="aggregation must be one of"):
        with aggregation(model, "max"):
            pass
    with pytest.raises(ConfigError, match="k must be"):
        with aggregation(model, "crossmax", k=4):
            pass
    plain = create_model("smallcnn").eval()
    assert not is_crossmax(plain) and not has_multiresolution(plain) and not is_randomized(plain)
    assert crossmax_info(plain) is None
    with fixed_randomness(plain, 0):  # a no-op on models without random draws
        plain(torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError, match="not a CrossMax model"):
        with aggregation(plain, "mean"):
            pass
    info = crossmax_info(model)
    assert info.kind == "self-ensemble" and info.predictors == ["block1", "block2", "backbone"]
    assert info.aggregation == "crossmax" and info.k == 2 and info.multiresolution and info.randomized


def test_stochastic_a3_counts_as_randomized():
    from a3bench.models import A3Config

    model = create_model("smallcnn", a3=A3Config(eval_mask="stochastic")).eval()
    assert is_randomized(model)
    assert not is_randomized(create_model("smallcnn", a3=A3Config()).eval())


# --------------------------------------------------------------------------- architecture options, checkpoints


def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path):
    model = small_model(heads=["block2"], resolutions=[28, 7], noise_kind="gaussian", noise_down=0.1, noise_up=0.05, aggregation="median")
    with torch.no_grad():  # non-trivial BatchNorm statistics in the heads
        for head in head_modules(model):
            head[1].running_mean.uniform_(-1, 1)
    save_checkpoint(tmp_path / "cm.pt", model, {"dataset": "fmnist"})
    loaded = load_checkpoint(tmp_path / "cm.pt").model
    assert loaded.arch == "crossmax" and loaded.arch_options == model.arch_options
    assert loaded.arch_options["heads"] == ["block2"] and loaded.arch_options["resolutions"] == [28, 7]
    assert predictor_names(loaded) == ["block2", "backbone"] and loaded.backbone.aggregation == "median"
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(3, 1, 28, 28)
    with fixed_randomness(model, 2), fixed_randomness(loaded, 2), torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    # the zoo/spec loader takes it like any checkpoint
    spec_loaded = load_model(str(tmp_path / "cm.pt"))
    assert is_crossmax(spec_loaded.model) and spec_loaded.dataset == "fmnist"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"heads": ["block7"]}, "unknown block7"),
        ({"heads": ["block1", "block1"]}, "repeated"),
        ({"heads": 3}, "heads.* must be"),
        ({"aggregation": "max"}, "aggregation must be one of"),
        ({"k": 4}, "k must be an integer in 1..3"),
        ({"resolutions": [28, 0]}, "resolutions must be"),
        ({"resolutions": [56]}, "must not exceed the input size"),
        ({"contrast": [1.0, 0.5]}, "contrast needs"),
        ({"noise_kind": "salt"}, "noise_kind must be"),
        ({"noise_up": -0.1}, "noise_up.* must be"),
        ({"shift": 1.5}, "shift.* must be"),
        ({"backbone": "crossmax"}, "plain registered architecture"),
        ({"backbone": "resnet9000"}, "unknown architecture"),
        ({"backbone_options": {"depth": 3}}, "unknown option"),
        ({"sigma": 0.1}, "unknown option"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    from a3bench.errors import A3BenchError

    with pytest.raises(A3BenchError, match=message) as info:
        create_model("crossmax", options={**SMALL, **options})
    assert "\n" not in str(info.value)


def test_bad_option_in_a_config_is_one_error_line_on_the_cli(tmp_path):
    from typer.testing import CliRunner

    from a3bench.cli import app

    res = CliRunner().invoke(app, ["train", str(REPO / "configs" / "fmnist_crossmax.yaml"), "--set", "model.options.k=9",
                                   "--set", "dataset=synthetic", "--out", str(tmp_path / "m.pt"), "--quiet"])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "k must be" in lines[0], res.output


# --------------------------------------------------------------------------- ensemble:SPEC,...


@pytest.mark.parametrize(
    "spec, members, agg, k",
    [
        ("ensemble:a,b", ["a", "b"], "crossmax", None),
        ("ensemble:a.py:f,pkg.mod:g,robustbench:X:agg=mean", ["a.py:f", "pkg.mod:g", "robustbench:X"], "mean", None),
        ("ensemble:a,b,c:k=2:agg=median", ["a", "b", "c"], "median", 2),
        ("ensemble: a , runs/x/model.pt :agg=crossmax", ["a", "runs/x/model.pt"], "crossmax", None),
    ],
)
def test_ensemble_spec_parsing(spec, members, agg, k):
    parsed = parse_ensemble_spec(spec)
    assert parsed.members == members and parsed.aggregation == agg and parsed.k == k


@pytest.mark.parametrize(
    "spec, message",
    [
        ("ensemble:", "no empty member"),
        ("ensemble:a,,b", "no empty member"),
        ("ensemble:a", "at least two members"),
        ("ensemble:a,b:agg=max", "agg must be one of"),
        ("ensemble:a,b:k=3", r"k must be an integer in 1\.\.2"),
        ("ensemble:a,b:k=x", "k must be"),
        ("ensemble:a,b:depth=2", "unknown ensemble option"),
        ("ensemble:a,b:agg=mean:agg=median", "given twice"),
        ("ensemble:a,ensemble:b,c", "nested"),
    ],
)
def test_ensemble_spec_errors(spec, message):
    with pytest.raises(ModelSpecError, match=message):
        parse_ensemble_spec(spec)


@pytest.fixture()
def member_files(tmp_path):
    torch.manual_seed(0)
    paths = []
    for i in range(2):
        path = tmp_path / f"m{i}.pt"
        save_checkpoint(path, create_model("smallcnn").eval(), {"dataset": "fmnist"})
        paths.append(str(path))
    cm = tmp_path / "cm.pt"
    save_checkpoint(cm, small_model(), {"dataset": "fmnist"})
    factory = tmp_path / "user_model.py"
    factory.write_text(
        "import torch\nfrom a3bench.models import create_model\n"
        "def build():\n    torch.manual_seed(1)\n    return create_model('smallcnn')\n"
    )
    return paths, str(cm), f"{factory}:build"


def test_ensemble_of_models_loads_and_switches(member_files):
    (m0, m1), cm, factory = member_files
    loaded = load_model(f"ensemble:{m0},{factory},{cm}:agg=median")
    model = loaded.model
    assert loaded.source == "ensemble" and loaded.dataset == "fmnist"
    assert [m["spec"] for m in loaded.meta["ensemble"]["members"]] == [m0, factory, cm]
    assert is_crossmax(model) and is_randomized(model)  # the CrossMax member draws fresh
    info = crossmax_info(model)
    assert info.kind == "ensemble" and len(info.predictors) == 3 and info.aggregation == "median"
    x = torch.rand(4, 1, 28, 28)
    with fixed_randomness(model, 0), torch.no_grad():
        assert not is_randomized(model)
        z = predictor_logits(model, x)
        assert z.shape == (4, 3, 10)
        torch.testing.assert_close(model(x), aggregate(z, "median", 3))
        with single_predictor(model, 1):
            torch.testing.assert_close(model(x), load_model(factory).model(x))
        with aggregation(model, "mean"):  # every aggregator, the member's own CrossMax too
            assert model.members[2].backbone.aggregation == "mean"
            torch.testing.assert_close(model(x), predictor_logits(model, x).mean(dim=1))
    assert model.members[2].backbone.aggregation == "crossmax"
    assert load_model(f"ensemble:{m0},{m1}").model.k == 2  # default k = min(3, members)


def test_ensemble_load_errors(member_files, tmp_path):
    (m0, _), _, _ = member_files
    other = tmp_path / "mnist.pt"
    save_checkpoint(other, create_model("smallcnn"), {"dataset": "mnist"})
    with pytest.raises(ModelSpecError, match="different datasets"):
        load_model(f"ensemble:{m0},{other}")
    with pytest.raises(ModelSpecError, match=r"ensemble member 2 \(no_such_model\)"):
        load_model(f"ensemble:{m0},no_such_model")
    cifar = tmp_path / "cifar.pt"
    save_checkpoint(cifar, create_model("smallcnn", in_channels=3, input_size=32), {"dataset": "fmnist"})
    with pytest.raises(ModelSpecError, match="different input shapes"):
        load_model(f"ensemble:{m0},{cifar}")


# --------------------------------------------------------------------------- training


class _Snapshot:
    """Callbacks that keep a copy of the model's state after each epoch."""

    def __init__(self, path):
        self.path, self.states = path, []

    def on_epoch_start(self, *a): ...

    def on_step(self, *a): ...

    def on_epoch_end(self, metrics):
        self.states.append((metrics.phase, load_checkpoint(self.path).model.state_dict()))


def test_two_phases_train_the_backbone_then_only_the_heads(tmp_path):
    from a3bench.train.loop import train

    cfg = load_config(REPO / "configs" / "fmnist_crossmax.yaml", [
        "dataset=synthetic", "model.options.backbone=smallcnn", "model.options.k=2", "train.n_train=64",
        "train.batch_size=32", "train.epochs=1", "heads.epochs=1", "heads.batch_size=32",
        "eval.n_examples=16", "eval.pgd_steps=1",
    ])
    snap = _Snapshot(tmp_path / "m.pt")
    result = train(cfg, tmp_path / "m.pt", callbacks=snap)
    assert [m.phase for m in result.history] == ["model", "heads"]
    assert set(result.history[1].predictor_acc) == {"block1", "block2", "backbone"}
    (_, after_backbone), (_, after_heads) = snap.states
    for name, value in after_backbone.items():
        if ".heads." in name and "running_var" in name:
            assert torch.equal(value, torch.ones_like(value)), "phase 1 must not run the heads"
        if ".heads." in name and "num_batches_tracked" in name:
            assert int(value) == 0
    changed = {n for n in after_heads if not torch.equal(after_heads[n], after_backbone[n])}
    assert changed and all(".heads." in n for n in changed), sorted(changed)  # the backbone is frozen


def test_heads_phase_is_required_for_a_model_with_heads_only(tmp_path):
    from a3bench.train.loop import train

    base = ["dataset=synthetic", "train.max_steps=1", "train.batch_size=4", "eval.n_examples=4", "eval.pgd_steps=1"]
    with pytest.raises(ConfigError, match="heads.epochs ≥ 1"):
        train(load_config(REPO / "configs" / "fmnist_crossmax.yaml", base + ["heads.epochs=0"]), tmp_path / "a.pt")
    with pytest.raises(ConfigError, match="heads.epochs is for models with heads"):
        train(load_config(REPO / "configs" / "fmnist_pgdat.yaml", base + ["heads.epochs=1"]), tmp_path / "b.pt")


def test_fgsm_training_examples_stay_in_the_ball():
    from a3bench.threat import ThreatModel
    from a3bench.train.loop import craft_training_example

    cfg = load_config(None, ["train.method=fgsm", "attack.eps=0.1", "objective.name=none"])
    model = small_model().train()
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with single_predictor(model, "backbone"):
        x_adv = craft_training_example(model, x, y, ThreatModel("Linf", 0.1), cfg, torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 0.05  # one step of 1.25·eps from a random start reaches far


@pytest.mark.parametrize("stop_after", [1, 2])  # inside the backbone phase's end, inside the heads phase
def test_resume_across_the_phases_is_bit_exact(tmp_path, stop_after):
    from a3bench.train.loop import TrainCallbacks, train

    cfg = load_config(REPO / "configs" / "fmnist_crossmax.yaml", [
        "dataset=synthetic", "model.options.backbone=smallcnn", "model.options.k=2", "train.n_train=64",
        "train.batch_size=32", "train.epochs=1", "heads.epochs=2", "heads.batch_size=32",
        "eval.n_examples=16", "eval.pgd_steps=1",
    ])

    class Cut(TrainCallbacks):
        seen = 0

        def on_epoch_end(self, metrics):
            Cut.seen += 1
            if Cut.seen == stop_after:
                raise KeyboardInterrupt

    full = train(cfg, tmp_path / "full.pt")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut.pt", callbacks=Cut())
    resumed = train(cfg, tmp_path / "cut.pt", resume=True)
    a = load_checkpoint(tmp_path / "full.pt").model.state_dict()
    b = load_checkpoint(tmp_path / "cut.pt").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [(m.phase, m.pgd_acc, m.predictor_acc) for m in resumed.history] == [
        (m.phase, m.pgd_acc, m.predictor_acc) for m in full.history
    ]
