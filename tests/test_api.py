"""The notebook API: ``a3bench.benchmark`` on tensors, a dataset name or a DataLoader gives
the numbers the CLI gives; ``a3bench.attack`` is an attack object used torchattacks-style."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import a3bench
from a3bench.errors import A3BenchError
from tests.conftest import REPO, needs_fmnist

pytestmark = needs_fmnist


def test_import_is_light():
    code = "import sys, a3bench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO).stdout.strip()
    assert out == "False"


def test_benchmark_on_tensors_loader_and_name_equals_the_cli(checkpoint, fmnist_test, tmp_path):
    x, y = fmnist_test.first(48).tensors()
    model = a3bench.load_model(str(checkpoint)).model
    kw = dict(eps="0.1", attacks="fgsm,pgd-5", device="cpu", batch_size=16)
    on_tensors = a3bench.benchmark(model, (x, y), **kw)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=7)
    on_loader = a3bench.benchmark(model, loader, **kw)
    by_name = a3bench.benchmark(str(checkpoint), "fmnist", n_examples=48, **kw)
    out = tmp_path / "r.json"
    cli = subprocess.run([sys.executable, "-m", "a3bench", "attack", "--model", str(checkpoint), "-n", "48", "--eps", "0.1",
                          "--attacks", "fgsm,pgd-5", "--batch-size", "16", "--device", "cpu", "--quiet", "--out", str(out)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert cli.returncode == 0, cli.stderr
    from_cli = json.loads(out.read_text())
    for rec in (on_tensors, on_loader, by_name):
        assert (rec.clean_acc, rec.robust_acc) == (from_cli["clean_acc"], from_cli["robust_acc"])
        assert [a.broken for a in rec.per_attack] == [a["broken"] for a in from_cli["per_attack"]]


def test_attack_object_torchattacks_style(standard_model, fmnist_test):
    x, y = fmnist_test.first(16).tensors()
    atk = a3bench.attack("pgd-10")
    threat = a3bench.ThreatModel("Linf", 0.1)
    out = atk(standard_model, x, y, threat, seed=0)
    assert not threat.violations(out.x_adv, x).any() and out.success.float().mean() > 0.5
    with pytest.raises(A3BenchError, match="composite"):
        a3bench.attack("autoattack")


@pytest.mark.parametrize("data, match", [
    ((torch.rand(4, 1, 28, 28) * 2, torch.zeros(4, dtype=torch.long)), "pixels in"),
    ((torch.rand(4, 28, 28), torch.zeros(4, dtype=torch.long)), "N×C×H×W"),
    ((torch.rand(4, 1, 28, 28), torch.zeros(4)), "class indices"),
    (42, "dataset name"),
])
def test_bad_data_is_one_clear_error(standard_model, data, match):
    with pytest.raises(A3BenchError, match=match):
        a3bench.benchmark(standard_model, data, eps=0.1, device="cpu")


@pytest.mark.parametrize("name", ["pgd-5", "fgsm", "apgd-ce", "mode-transfer:steps=3", "bpda-a3:steps=3"])
def test_an_attack_takes_what_load_model_returns(name, fmnist_test):
    """``a3bench.attack(...)(a3bench.load_model(NAME), x, y, threat)``: the same output as on
    the bare module (attacks that switch A3 modes walk the model's modules through it)."""
    loaded = a3bench.load_model("smallcnn.a3_joint_fmnist")
    x, y = fmnist_test.first(8).tensors()
    threat = a3bench.ThreatModel("Linf", 0.1)
    on_loaded = a3bench.attack(name)(loaded, x, y, threat, seed=0)
    on_module = a3bench.attack(name)(loaded.model, x, y, threat, seed=0)
    assert torch.equal(on_loaded.x_adv, on_module.x_adv) and torch.equal(on_loaded.success, on_module.success)
    assert on_loaded.forward_passes == on_module.forward_passes > 0


def test_benchmark_and_sweep_take_what_load_model_returns(fmnist_test):
    loaded = a3bench.load_model("smallcnn.pgdat_fmnist")
    x, y = fmnist_test.first(16).tensors()
    kw = dict(eps=0.1, attacks="pgd-3", device="cpu", probe=False)
    rec = a3bench.benchmark(loaded, (x, y), **kw)
    assert rec.name == "smallcnn.pgdat_fmnist"  # its card's name, not the module's class
    assert (rec.clean_acc, rec.robust_acc) == (lambda r: (r.clean_acc, r.robust_acc))(a3bench.benchmark(loaded.model, (x, y), **kw))
    sweep = a3bench.sweep_eps(loaded, fmnist_test, "Linf", [0.0, 0.1], "pgd-3", n_examples=16, device="cpu")
    assert sweep.model == "smallcnn.pgdat_fmnist"


def test_a_loaded_model_stands_in_for_its_module():
    import copy
    import pickle

    loaded = a3bench.load_model("smallcnn.pgdat_fmnist")
    assert loaded.num_classes == 10 and list(loaded.modules())[0] is loaded.model
    assert loaded.eval() is loaded.model and loaded.name == "smallcnn.pgdat_fmnist"  # its own fields win
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), loaded.model(x))
    for clone in (copy.deepcopy(loaded), pickle.loads(pickle.dumps(loaded))):
        assert torch.equal(clone(x), loaded(x)) and clone.name == loaded.name
    with pytest.raises(AttributeError):
        loaded.no_such_attribute
