"""Sharding with torchrun (2 processes on CPU, gloo): the per-example outcomes are
byte-identical to one process with the same batch size and seed, a killed sharded run
resumes to the same bytes, and a rank that dies fails the run without a record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, needs_fmnist

pytestmark = [needs_fmnist, pytest.mark.slow]

# A user's model (file.py:factory) with two test-only behaviours read from the environment:
# SLOW_S sleeps in every forward pass (so a run can be killed mid-way) and DIE_ON_RANK makes
# that rank's process die hard on its first batch of attacks.
FACTORY = '''
import os, time, torch
from a3bench.models import load_checkpoint

class Wrapped(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0
    def forward(self, x):
        self.calls += 1
        if os.environ.get("SLOW_S"):
            time.sleep(float(os.environ["SLOW_S"]))
        if os.environ.get("DIE_ON_RANK") and os.environ.get("DIE_ON_RANK") == os.environ.get("RANK") and self.calls > 40:
            os._exit(17)
        return self.model(x)

def make():
    return Wrapped(load_checkpoint(os.environ["CKPT"]).model)
'''


def _env(checkpoint, **extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CKPT": str(checkpoint), "PYTHONPATH": str(REPO), "A3BENCH_OFFLINE": "1"}
    env.pop("WORLD_SIZE", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _attack_args(factory: Path, out: Path, *extra: str) -> list[str]:
    return ["attack", "--model", f"{factory}:make", "--dataset", "fmnist", "--attacks", "fgsm,pgd-5,apgd-ce",
            "-n", "96", "--batch-size", "16", "--eps", "0.1", "--seed", "3", "--device", "cpu", "--quiet", "--out", str(out), *extra]


def _single(args: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "a3bench", *args], env=env, capture_output=True, text=True, timeout=600, **kw)


def _torchrun(args: list[str], env: dict, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "a3bench", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def factory(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("factory") / "slow_model.py"
    path.write_text(FACTORY)
    return path


@pytest.fixture(scope="module")
def single_run(checkpoint, factory, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "r.json"
    proc = _single(_attack_args(factory, out), _env(checkpoint))
    assert proc.returncode == 0, proc.stderr
    return out


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found += (kids := children.get(todo.pop(), []))
        todo += kids
    return found


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun and every rank (torchrun starts each rank in its own session), as
    a machine that loses the job would."""
    ranks = _descendants(proc.pid)
    for pid in [proc.pid, *ranks]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _outcomes(record: Path) -> bytes:
    return record.with_name(record.stem + ".outcomes.json").read_bytes()


def _same_points(a: Path, b: Path) -> bool:
    """The adversarial examples beside two records are the same points, found by the same attacks."""
    import torch

    pa, pb = (torch.load(r.with_name(r.stem + ".adv.pt"), weights_only=True) for r in (a, b))
    return len(pa["positions"]) > 0 and all(torch.equal(pa[k], pb[k]) for k in ("positions", "points", "attack")) \
        and pa["attacks"] == pb["attacks"]


def test_sharded_attack_outcomes_are_byte_identical(checkpoint, factory, single_run, tmp_path):
    out = tmp_path / "r.json"
    proc = _torchrun(_attack_args(factory, out), _env(checkpoint))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _outcomes(out) == _outcomes(single_run) and _same_points(out, single_run)  # the points travel between ranks
    sharded, single = json.loads(out.read_text()), json.loads(single_run.read_text())
    assert sharded["provenance"]["processes"] == 2 and single["provenance"]["processes"] == 1
    strip = lambda r: [(a["name"], a["broken"], a["n_attacked"], a["forward_passes"], a["backward_passes"]) for a in r["per_attack"]]  # noqa: E731
    assert strip(sharded) == strip(single) and sharded["robust_acc"] == single["robust_acc"]
    assert proc.stdout.count("worst case") == 1  # only rank 0 prints the table


def test_sharded_sweep_matches_one_process(checkpoint, factory, tmp_path):
    args = ["sweep-eps", "--model", f"{factory}:make", "--dataset", "fmnist", "--eps", "0,0.05,0.1", "--attacks", "pgd-3,apgd-ce",
            "-n", "64", "--batch-size", "16", "--device", "cpu", "--quiet"]
    one = _single([*args, "--out", str(tmp_path / "one")], _env(checkpoint))
    two = _torchrun([*args, "--out", str(tmp_path / "two")], _env(checkpoint))
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-2000:]
    a = json.loads(next((tmp_path / "one").glob("*.sweep.json")).read_text())
    b = json.loads(next((tmp_path / "two").glob("*.sweep.json")).read_text())
    assert a["per_example"] == b["per_example"] and a["curves"] == b["curves"]


def test_killed_sharded_run_resumes_to_the_same_bytes(checkpoint, factory, single_run, tmp_path):
    out = tmp_path / "r.json"
    state = out.with_name("r.state.json")
    env = _env(checkpoint, SLOW_S=0.05)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "a3bench",
           *_attack_args(factory, out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:  # kill once the first attack is saved as finished
            if state.is_file():
                try:
                    saved = json.loads(state.read_text())
                except json.JSONDecodeError:  # never half a file: the write is atomic, but be safe
                    saved = {}
                if len(saved.get("finished") or []) >= 1:
                    break
            if proc.poll() is not None:
                pytest.fail("the sharded run ended before it could be killed")
            time.sleep(0.05)
        else:
            pytest.fail("the sharded run never reached its second attack")
    finally:
        _kill_tree(proc)
    assert not out.exists() and state.is_file()
    resumed = _torchrun(_attack_args(factory, out, "--resume"), _env(checkpoint))
    assert resumed.returncode == 0, resumed.stderr[:2000]
    assert _outcomes(out) == _outcomes(single_run) and _same_points(out, single_run)
    assert not state.exists()


def test_a_rank_that_dies_fails_the_run_without_a_record(checkpoint, factory, tmp_path):
    out = tmp_path / "r.json"
    proc = _torchrun(_attack_args(factory, out), _env(checkpoint, DIE_ON_RANK=1))
    assert proc.returncode != 0
    assert not out.exists() and not out.with_name("r.outcomes.json").exists()
    assert out.with_name("r.state.json").is_file()  # the run can be resumed
