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
