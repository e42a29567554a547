"""What ``a3bench attack`` refuses before any work, and what it does with a model whose
outputs are not numbers (issue 14): one ``error:`` line, exit 2, no file touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.eval.runner import evaluate
from a3bench.threat import ThreatModel
from tests.conftest import needs_fmnist

pytestmark = needs_fmnist
runner = CliRunner()
ARGS = ["--dataset", "fmnist", "-n", "8", "--eps", "0.1", "--attacks", "fgsm", "--quiet", "--device", "cpu"]


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, result.output
    return lines[0]


def test_out_is_the_models_own_checkpoint(checkpoint, tmp_path):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(checkpoint.read_bytes())
    before = ckpt.read_bytes()
    line = _one_error_line(runner.invoke(app, ["attack", "--model", str(ckpt), *ARGS, "--out", str(ckpt)]))
    assert "not an a3bench result record" in line or "checkpoint" in line
    assert ckpt.read_bytes() == before


@pytest.mark.parametrize("name", ["r.outcomes.json", "r.state.json", "r.sweep.json", "r.audit.json", "r.json.lock"])
def test_out_is_a_companion_file(checkpoint, tmp_path, name):
    line = _one_error_line(runner.invoke(app, ["attack", "--model", str(checkpoint), *ARGS, "--out", str(tmp_path / name)]))
    assert "beside a record" in line and list(tmp_path.iterdir()) == []


def test_out_is_a_folder_or_a_foreign_file(checkpoint, tmp_path):
    line = _one_error_line(runner.invoke(app, ["attack", "--model", str(checkpoint), *ARGS, "--out", str(tmp_path)]))
    assert "is a folder" in line
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"my": "notes"}')
    line = _one_error_line(runner.invoke(app, ["attack", "--model", str(checkpoint), *ARGS, "--out", str(foreign)]))
    assert "not an a3bench result record" in line and foreign.read_text() == '{"my": "notes"}'


def test_a_second_run_on_the_same_out_is_refused(checkpoint, tmp_path):
    out = tmp_path / "r.json"
    lock = tmp_path / "r.lock"
    lock.write_text(f"{os.getpid()} {os.uname().nodename}\n")  # a live process holds it
    line = _one_error_line(runner.invoke(app, ["attack", "--model", str(checkpoint), *ARGS, "--out", str(out)]))
    assert "another a3bench run" in line and not out.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    lock.write_text(f"{dead} {os.uname().nodename}\n")  # its process is gone: a stale lock is taken over
    result = runner.invoke(app, ["attack", "--model", str(checkpoint), *ARGS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and not lock.exists()


def test_default_record_path_stays_inside_results(tmp_path, monkeypatch):
    from a3bench.schema import default_result_path

    for dataset, norm, name in [("imagefolder:../../..", "Linf", "m"), ("/etc", "../x", "../../evil"), ("..", "..", "..")]:
        path = default_result_path(dataset, norm, name, root=tmp_path / "results")
        assert path.resolve().is_relative_to((tmp_path / "results").resolve()), path


class _NaN(nn.Module):
    """Logits NaN always, or for every other example."""

    def __init__(self, model, every: int) -> None:
        super().__init__()
        self.model, self.every = model, every

    def forward(self, x):
        z = self.model(x)
        mask = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        mask[:: self.every] = True
        return torch.where(mask[:, None], torch.full_like(z, float("nan")), z)


@pytest.mark.parametrize("every", [1, 2], ids=["always", "sometimes"])
def test_non_finite_outputs_are_never_reliable(standard_model, fmnist_test, tmp_path, every):
    out = tmp_path / "r.json"
    res = evaluate(_NaN(standard_model, every), fmnist_test, ThreatModel("Linf", 0.1), "fgsm", n_examples=16, out=out)
    rec = res.record
    assert "non-finite-outputs" in [f.name for f in rec.flags] and rec.verdict == "unreliable"
    if every == 1:
        assert rec.clean_acc == 0.0  # argmax of NaN is class 0: never counted as correct
    json.loads(out.read_text())  # strict JSON: no NaN written
    assert all(p is None or p >= -1 for p in res.outcomes.clean_pred)


def test_a_model_that_raises_is_one_line(tmp_path):
    (tmp_path / "mine.py").write_text(
        "import torch\n"
        "class B(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__(); self.l = torch.nn.Linear(784, 10); self.n = 0\n"
        "    def forward(self, x):\n        self.n += 1\n        if self.n > 2: raise KeyError('boom')\n        return self.l(x.flatten(1))\n"
        "class T(torch.nn.Module):\n    def forward(self, x): return (x.flatten(1)[:, :10], 1)\n"
        "def bad(): return B()\n"
        "def tup(): return T()\n")
    for factory, expect in (("bad", "KeyError"), ("tup", "not a tensor")):
        proc = subprocess.run([sys.executable, "-m", "a3bench", "attack", "--model", f"{tmp_path / 'mine.py'}:{factory}", *ARGS,
                               "--out", str(tmp_path / f"{factory}.json")], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        err = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(err) == 1 and err[0].startswith("error:") and expect in err[0], proc.stderr


def test_usage_errors_are_one_line(tmp_path):
    for args in (["attack", "--seed", "abc"], ["attack", "--nope"], ["nocommand"], ["check"]):
        proc = subprocess.run([sys.executable, "-m", "a3bench", *args], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        err = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(err) == 1 and err[0].startswith("error:"), (args, proc.stderr)


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc")
def test_a_killed_runs_unreaped_process_does_not_hold_its_lock(checkpoint, tmp_path):
    """A run killed with its parent can linger as a zombie where PID 1 does not reap: its lock is stale."""
    out, lock = tmp_path / "r.json", tmp_path / "r.lock"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.kill()
        deadline = time.time() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z" and time.time() < deadline:
            time.sleep(0.02)
        lock.write_text(f"{child.pid} {os.uname().nodename}\n")  # killed, not yet reaped
        result = runner.invoke(app, ["attack", "--model", str(checkpoint), *ARGS, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.is_file() and not lock.exists()
    finally:
        child.wait()


def test_running_out_of_memory_is_one_line(checkpoint, tmp_path, monkeypatch):
    """torch reports a failed allocation as a RuntimeError: the CLI says so in one line."""
    import a3bench.eval.runner as runner_module

    def out_of_memory(*_a, **_k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 163219346136 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(runner_module, "evaluate", out_of_memory)
    line = _one_error_line(runner.invoke(app, ["attack", "--model", str(checkpoint), *ARGS, "--out", str(tmp_path / "r.json")]))
    assert "out of memory" in line and not (tmp_path / "r.json").exists()
