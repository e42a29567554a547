"""`a3bench train`: learns on real data, resumes bit-for-bit, every shipped config runs."""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import pytest
import torch

from a3bench.config import load_config
from a3bench.models import a3_layers, load_checkpoint
from a3bench.train.loop import TrainCallbacks, train
from tests.conftest import REPO, needs_fmnist

SMALL = [
    "train.n_train=1024",
    "train.batch_size=64",
    "attack.steps=2",
    "eval.n_examples=200",
    "eval.pgd_steps=5",
    "train.epochs=2",
]


@needs_fmnist
def test_joint_training_on_fmnist_subset_beats_chance(tmp_path):
    cfg = load_config(REPO / "configs" / "fmnist_a3.yaml", SMALL + ["train.optimizer=adam", "train.lr=0.002"])
    result = train(cfg, tmp_path / "m.pt")
    final = result.final
    assert final.clean_acc > 40 and final.pgd_acc > 20  # chance is 10 %
    # the joint terms were computed: InfoNCE is positive, and so is the ranking hinge while
    # amplification does not yet hurt by the margin μ more than attenuation does
    assert final.infonce > 0 and final.ranking > 0, (final.infonce, final.ranking)
    log = [json.loads(line) for line in result.metrics_log.read_text().splitlines()]
    assert [m["epoch"] for m in log] == [1, 2]
    ck = load_checkpoint(tmp_path / "m.pt")
    assert len(a3_layers(ck.model)) == 2 and ck.meta["metrics"]["clean_acc"] == final.clean_acc
    assert ck.meta["train"]["objective"]["name"] == "joint" and ck.meta["dataset"] == "fmnist"


class _Interrupt(TrainCallbacks):
    def on_epoch_end(self, metrics):
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint


def test_resume_reproduces_uninterrupted_run(tmp_path):
    overrides = ["dataset=synthetic", "train.n_train=512", "train.batch_size=64", "attack.steps=2",
                 "eval.n_examples=100", "eval.pgd_steps=3", "train.epochs=2"]
    cfg = load_config(REPO / "configs" / "fmnist_a3.yaml", overrides)
    full = train(cfg, tmp_path / "full.pt")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut.pt", callbacks=_Interrupt())
    assert load_checkpoint(tmp_path / "cut.pt").train_state["epoch"] == 1
    resumed = train(cfg, tmp_path / "cut.pt", resume=True)
    a = load_checkpoint(tmp_path / "full.pt").model.state_dict()
    b = load_checkpoint(tmp_path / "cut.pt").model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [m.pgd_acc for m in resumed.history] == [m.pgd_acc for m in full.history]
    # a different config must not silently mix with the checkpoint
    from a3bench.errors import ConfigError

    with pytest.raises(ConfigError, match="different config"):
        train(load_config(REPO / "configs" / "fmnist_a3.yaml", overrides + ["seed=1"]), tmp_path / "cut.pt", resume=True)


@pytest.mark.parametrize("config", sorted(Path(p).name for p in glob.glob(str(REPO / "configs" / "*.yaml"))))
def test_every_shipped_config_runs_one_step(config, tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    from test_data import write_cifar

    cfg_path = REPO / "configs" / config
    overrides = ["train.max_steps=1", "train.batch_size=4", "attack.steps=1", "eval.n_examples=4", "eval.pgd_steps=1",
                 "heads.max_steps=1", "heads.batch_size=4"]
    if "cifar10" in config:
        write_cifar(tmp_path / "data" / "cifar-10-batches-py", hundred=False, n_train=20, n_test=10)
        overrides.append(f"data_dir={tmp_path / 'data'}")
    else:
        overrides.append("dataset=synthetic")
    cfg = load_config(cfg_path, overrides)
    result = train(cfg, tmp_path / "m.pt")
    # one epoch of one step per phase: a model with heads (CrossMax) also trains them
    assert [m.phase for m in result.history] == ["model"] + (["heads"] if cfg.heads.epochs else [])
    assert (tmp_path / "m.pt").is_file()


class _LastLayerPhase:
    """A phase no code in the loop knows by name: only the classifier's last layer learns,
    with its own loss, and it reports a metric of its own."""

    name, section, runs_objective, min_batch = "last-layer", "heads", False, 1

    def parameters(self, model):
        return list(_last_linear(model).parameters())

    def view(self, model):
        import contextlib

        return contextlib.nullcontext()

    def set_train_mode(self, model):
        model.eval()

    def loss(self, model, x, y):
        from a3bench.models.family import PhaseLoss

        logits = model(x)
        return PhaseLoss(torch.nn.functional.cross_entropy(logits, y), logits.detach())

    def metrics(self, model, heldout, batch_size):
        return {"predictor_acc": {"last-layer": 50.0}}


def _last_linear(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]


@pytest.fixture
def last_layer_family():
    from a3bench.models.family import FAMILIES, ModelFamily, TrainingPhase, register_family

    class LastLayerFamily(ModelFamily):
        name, description, sections = "test-last-layer", "test models", ("train", "heads")

        def claims(self, model):
            return getattr(model, "arch", None) == "smallcnn"

        def phases(self, model):
            return [TrainingPhase(), _LastLayerPhase()]

    family = register_family(LastLayerFamily())
    yield family
    FAMILIES.remove(family)


def test_a_model_family_declares_its_phases(tmp_path, last_layer_family):
    """The loop runs whatever phases the model's family declares, with their own parameters,
    modes, losses, config sections and metrics."""
    snapshots = []

    class Keep(TrainCallbacks):
        def on_epoch_end(self, metrics):
            snapshots.append({k: v.clone() for k, v in load_checkpoint(tmp_path / "m.pt").model.state_dict().items()})

    cfg = load_config(REPO / "configs" / "fmnist_pgdat.yaml", [
        "dataset=synthetic", "train.method=standard", "train.n_train=64", "train.batch_size=32", "train.epochs=1",
        "heads.epochs=2", "heads.batch_size=32", "heads.lr=0.05", "eval.n_examples=16", "eval.pgd_steps=1"])
    result = train(cfg, tmp_path / "m.pt", callbacks=Keep())
    assert [m.phase for m in result.history] == ["model", "last-layer", "last-layer"]
    assert [m.predictor_acc for m in result.history] == [None, {"last-layer": 50.0}, {"last-layer": 50.0}]
    after_model, after_last = snapshots[0], snapshots[-1]
    changed = {k for k in after_model if not torch.equal(after_model[k], after_last[k])}
    model = load_checkpoint(tmp_path / "m.pt").model
    last = next(name for name, m in model.named_modules() if m is _last_linear(model))
    assert changed == {f"{last}.weight", f"{last}.bias"}  # the last Linear alone (eval mode: no BatchNorm statistics move)
