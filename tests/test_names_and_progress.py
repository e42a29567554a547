"""Issue 22 items 2 and 6: ``--name`` labels a model's record (two own models made by
factories of one name never share a record), and ``a3bench.benchmark`` can show progress."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from a3bench.cli import app
from tests.conftest import needs_fmnist

pytestmark = needs_fmnist
runner = CliRunner()

FACTORY = """import torch
from torch import nn

def make():
    torch.manual_seed({seed})
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
"""


def test_name_labels_the_record_and_its_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder, seed, name in (("a", 0, "mine-a"), ("b", 1, "mine-b")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "net.py").write_text(FACTORY.format(seed=seed))
        res = runner.invoke(app, ["attack", "--model", f"{folder}/net.py:make", "--dataset", "fmnist", "--eps", "0.1",
                                  "-n", "8", "--quiet", "--name", name])
        assert res.exit_code == 0, res.output
    a = json.loads((tmp_path / "results/fmnist/Linf/mine-a.json").read_text())
    b = json.loads((tmp_path / "results/fmnist/Linf/mine-b.json").read_text())
    assert a["name"] == "mine-a" and b["name"] == "mine-b" and a["model"]["sha256"] != b["model"]["sha256"]


@pytest.mark.parametrize("bad", ["", "  ", "x" * 201, "tab\there"])
def test_a_bad_name_is_one_line(bad):
    res = runner.invoke(app, ["attack", "--eps", "0.1", "-n", "4", "--name", bad])
    assert res.exit_code == 2 and res.output.startswith("error:") and "--name" in res.output


def test_benchmark_shows_progress_when_asked_and_is_silent_otherwise(standard_model, fmnist_test, capsys):
    import a3bench

    a3bench.benchmark(standard_model, fmnist_test, eps=0.1, n_examples=16, batch_size=16, probe=False)
    assert capsys.readouterr().err == ""
    events = []
    a3bench.benchmark(standard_model, fmnist_test, eps=0.1, n_examples=16, batch_size=16, probe=False, progress=events.append)
    assert {"clean", "attack-start", "attack-end"} <= {e.stage for e in events}
    a3bench.benchmark(standard_model, fmnist_test, eps=0.1, n_examples=16, batch_size=16, probe=False, progress=True)
    err = capsys.readouterr().err
    assert "pgd-20 started" in err and "pgd-20 done" in err
    assert "all of them" in a3bench.benchmark.__doc__
