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
    assert final.infonce > 0 and final.ranking >= 0  # the joint terms were computed
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
