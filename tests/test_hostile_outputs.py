"""Hostile round two (issue 24, issue 22 items 2 and 5): what every command writes, and what
``check`` believes.

Each class of defect has a test here with several variants of its own:

1. data loss — every writing command guards its output before any work; two models
   never share a record; a record and its sidecars change together; ``train`` locks;
2. ``check`` trusts nothing — schema ranges, the outcomes, run ids, the model's identity;
   an exact McNemar test on 60,000 pairs in well under a second;
3. untrusted text is never rich markup;
4. devices and FIFOs are refused, never read or waited on;
5. edited state files (attack resume state, training optimiser state) are one line;
6. specs, the environment and the API: one line each, blamed on the input.

A refusal is always: exit 2, exactly one line on stderr starting with ``error:``, no
traceback, and the folder exactly as it was (links, FIFOs and files alike).
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.errors import AttackError, DataError, ResultError, ShardError
from a3bench.results import audit_path, lock_path, outcomes_path, state_path, verify_run_ids, write_run
from a3bench.schema import AttackRecord, AuditResult, AuditSettings, Outcomes, ResultRecord
from a3bench.stats import mcnemar_exact, wilson_interval
from tests.conftest import REPO

runner = CliRunner()
PYTHONPATH = {"PYTHONPATH": str(REPO)}


# --------------------------------------------------------------------------- harness


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` as it is: a file's hash, a link's target, a FIFO as a
    FIFO — never read through (a FIFO would hang, a link would read another folder)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        rel = str(p.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = "link -> " + os.readlink(p)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = "dir"
        elif stat.S_ISREG(st.st_mode) and st.st_size > 1 << 24:  # a sparse giant: its size and time say enough
            out[rel] = f"{st.st_size} {st.st_mtime_ns}"
        elif stat.S_ISREG(st.st_mode):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = f"special {stat.S_IFMT(st.st_mode)}"
    return out


def _one_error(result, match: str) -> str:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}") from result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.output
    assert len(lines) == 1, f"expected one stderr line, got {lines[:5]}"
    assert lines[0].startswith("error: "), lines[0]
    assert result.exit_code == 2, (result.exit_code, lines[0])
    assert re.search(match, lines[0]), f"{match!r} not in {lines[0]!r}"
    return lines[0]


class Box:
    """A working folder (the cwd) holding a copy of the bundled model as ``m.pt``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, data: bytes | str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def refuses(self, args: list, match: str, **env) -> str:
        before = _snapshot(self.root)
        line = _one_error(runner.invoke(app, [str(a) for a in args], env=env or None), match)
        assert _snapshot(self.root) == before, "the command wrote or changed files"
        return line

    def runs(self, args: list, **env):
        result = runner.invoke(app, [str(a) for a in args], env=env or None)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}") from result.exception
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture()
def box(tmp_path, monkeypatch, bundled_model_path):
    root = tmp_path / "box"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("A3BENCH_OFFLINE", "1")
    monkeypatch.setenv("A3BENCH_ZOO", str(root / "zoo"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    shutil.copy(bundled_model_path, root / "m.pt")
    return Box(root)


@pytest.fixture(autouse=True)
def no_hang():
    """A read that waits on a FIFO fails the test instead of hanging the suite."""

    def timeout(*_):
        raise TimeoutError("more than 120 s: something waited on a FIFO or ran for ever")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(120)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# The bundled model on generated data: seconds per command.
SYN = ["--model", "m.pt", "--dataset", "synthetic", "-n", "4", "--eps", "0.1", "--device", "cpu", "--quiet"]
COMMANDS = {
    "attack": ["attack", *SYN, "--attacks", "fgsm"],
    "audit": ["audit", *SYN, "--attacks", "fgsm", "--n-inner", "2", "--no-indicators"],
    "sweep-eps": ["sweep-eps", "--model", "m.pt", "--dataset", "synthetic", "-n", "4", "--eps", "0,0.1", "--attacks", "fgsm",
                  "--device", "cpu", "--quiet"],
    "report": ["report", "results"],
    "train": ["train", "tiny.yaml", "--quiet"],
}
# The function each command's work starts with: it must never be reached when the output is refused.
WORK = {"attack": ("a3bench.eval.runner", "evaluate"), "audit": ("a3bench.eval.audit", "run_audit"),
        "sweep-eps": ("a3bench.eval.sweep", "sweep_eps"), "report": ("a3bench.report.generate", "_write"),
        "train": ("a3bench.train.loop", "_train")}
SUFFIX = {"attack": ".json", "audit": ".audit.json", "sweep-eps": ".sweep.json", "report": ".md", "train": ".pt"}

TINY = ("dataset: synthetic\nobjective:\n  name: none\ntrain:\n  method: standard\n  epochs: 1\n  batch_size: 32\n"
        "  n_train: 64\n  schedule: none\neval:\n  n_examples: 32\n  pgd_steps: 1\n  batch_size: 32\n")


def _record(robust: list[bool], clean: list[bool] | None = None, *, model: dict | None = None, name: str = "m") -> tuple[ResultRecord, Outcomes]:
    """A record and outcomes that agree: the cascade was one fgsm."""
    n = len(robust)
    clean = clean if clean is not None else [True] * n
    broken_by = [None if r else ("fgsm" if c else "clean") for r, c in zip(robust, clean)]
    outcomes = Outcomes(robust=list(robust), indices=list(range(n)), labels=[i % 10 for i in range(n)],
                        clean_pred=[i % 10 if c else (i + 1) % 10 for i, c in enumerate(clean)], clean_correct=list(clean),
                        broken_by=broken_by)
    k_r, k_c = sum(robust), sum(clean)
    acc = round(100.0 * k_r / n, 4)
    record = ResultRecord(
        name=name, dataset="synthetic", eps=0.1, clean_acc=round(100.0 * k_c / n, 4), robust_acc=acc, norm="Linf", eps_text="0.1",
        n_examples=n, attacks=["fgsm"], per_attack=[AttackRecord("fgsm", acc, broken=k_c - k_r, n_attacked=k_c)],
        robust_acc_ci=[round(v, 4) for v in wilson_interval(k_r, n)], model=model or {"spec": "m.pt", "sha256": "a" * 64})
    return record, outcomes


def _write_run(path: Path, robust: list[bool], clean: list[bool] | None = None, **kw) -> Path:
    record, outcomes = _record(robust, clean, **kw)
    return write_run(path, record, outcomes)


def _audit(n: int = 4) -> AuditResult:
    return AuditResult(name="m", dataset="synthetic", norm="Linf", eps=0.1, seed=0, n_examples=n, indices=list(range(n)),
                       settings=AuditSettings(), features="x", randomized=False, testable=[True] * n, binarization=[], suite=None,
                       control=None, indicators=[])


# --------------------------------------------------------------------------- 1. data loss: the output guard


def _prepare(box: Box, command: str, target: str) -> str:
    """Put ``target`` where ``command`` will write; returns the --out to give."""
    out = "out" + SUFFIX[command]
    if target == "model":
        return "m.pt"
    if target == "other-kind":  # a result record, where something else belongs (or a sweep, where a record does)
        if command == "attack":
            box.write(out, json.dumps({"schema_version": 1, "curves": {}, "eps": [0.1], "model": "x"}))
        else:
            record, _ = _record([True, False])
            box.write(out, json.dumps(record.to_dict()))
    elif target == "user-file":
        box.write(out, "my own notes, not a3bench's\n")
    elif target == "fifo":
        os.mkfifo(box.root / out)
    elif target == "link":
        box.write("../outside/precious", "precious\n")
        os.symlink(box.root.parent / "outside" / "precious", box.root / out)
    elif target == "folder":
        (box.root / out).mkdir()
        (box.root / out / "keep.txt").write_text("mine\n")
    elif target == "sidecar-folder":  # the record is fine, a file written beside it is not
        (box.root / outcomes_path(out)).mkdir()
    elif target == "sidecar-user-file":
        box.write(str(outcomes_path(out)), "mine\n")
    elif target == "under-a-file":  # its folder is a file
        box.write("plain", "a file\n")
        return "plain/" + out
    return out


TARGETS = ["model", "other-kind", "user-file", "fifo", "link", "folder", "under-a-file"]
CASES = [(c, t) for c in COMMANDS for t in TARGETS] + [("attack", "sidecar-folder"), ("attack", "sidecar-user-file")]


@pytest.mark.parametrize("command,target", CASES, ids=[f"{c}-{t}" for c, t in CASES])
def test_every_command_guards_its_output_before_any_work(box, monkeypatch, command, target):
    import importlib

    if command == "report":
        record, outcomes = _record([True, False])
        write_run(box.root / "results" / "synthetic" / "Linf" / "m.json", record, outcomes)
    if command == "train":
        box.write("tiny.yaml", TINY)
    module, name = WORK[command]

    def work_started(*_a, **_k):
        raise AssertionError(f"{command} started its work although its output is refused")

    monkeypatch.setattr(importlib.import_module(module), name, work_started)
    out = _prepare(box, command, target)
    box.refuses([*COMMANDS[command], "--out", out],
                r"refusing|is a folder|not a regular file|symbolic link|already exist|is a file, not a folder|checkpoint|"
                r"beside a record|not an a3bench|not a folder")


def test_report_replaces_only_its_own_leaderboard(box):
    record, outcomes = _record([True, False])
    write_run(box.root / "results" / "synthetic" / "Linf" / "m.json", record, outcomes)
    box.runs(["report", "results", "--out", "LB.md"])
    first = (box.root / "LB.md").read_text()
    box.runs(["report", "results", "--out", "LB.md"])  # its own page: replaced
    assert (box.root / "LB.md").read_text() == first
    box.runs(["report", "results", "--format", "html", "--out", "site"])
    box.runs(["report", "results", "--format", "html", "--out", "site"])
    (box.root / "site" / "index.html").write_text("<p>my own page</p>")
    box.refuses(["report", "results", "--format", "html", "--out", "site"], "not an a3bench page")


def _factory(box: Box, folder: str, seed: int) -> str:
    box.write(f"{folder}/m.py", "import torch\n"
              "class Net(torch.nn.Module):\n"
              "    def __init__(self):\n        super().__init__()\n        self.l = torch.nn.Linear(784, 10)\n"
              "    def forward(self, x):\n        return self.l(x.flatten(1))\n"
              f"def make():\n    torch.manual_seed({seed})\n    return Net()\n")
    return f"{folder}/m.py:make"


def test_two_models_of_one_name_never_replace_each_other(box):
    """a/m.py:make and b/m.py:make (issue 22 item 2): same name, different weights and specs."""
    args = ["attack", "--dataset", "synthetic", "-n", "4", "--eps", "0.1", "--attacks", "fgsm", "--quiet", "--device", "cpu"]
    results = box.root / "results" / "synthetic" / "Linf"
    box.runs([*args, "--model", _factory(box, "a", 0)])
    first = {p.name: p.read_bytes() for p in results.iterdir()}
    res = box.runs([*args, "--model", _factory(box, "b", 1)])
    assert "another model" in " ".join(res.output.split())
    assert {p.name: p.read_bytes() for p in results.iterdir()} == first  # kept, byte for byte
    runs = box.root / "runs" / "synthetic" / "Linf"
    second = json.loads((runs / "make.json").read_text())
    assert second["model"]["spec"] == "b/m.py:make"
    box.runs([*args, "--model", _factory(box, "c", 2)])  # a third model: neither record is replaced
    assert {p.name: p.read_bytes() for p in results.iterdir()} == first
    assert json.loads((runs / "make.json").read_text()) == second
    third = [p for p in runs.glob("make-*.json") if not p.name.endswith(".outcomes.json")]
    assert len(third) == 1 and json.loads(third[0].read_text())["model"]["spec"] == "c/m.py:make"
    box.runs([*args, "--model", "a/m.py:make"])  # the first model again, same evaluation: its own record, replaced
    assert (results / "make.json").is_file() and not list(runs.glob("make-*-*.json"))


@pytest.mark.parametrize("a,b", [("d/r.json", "d/r"), ("d/r.json", "d/r.outcomes.json"), ("d/r", "d/r.audit.json"),
                                 ("d/r.json", "d/r.state.json"), ("d/r.JSON", "d/r.adv.pt")])
def test_one_lock_and_one_set_of_sidecars_per_stem(a, b):
    assert lock_path(a) == lock_path(b) == Path("d/r.lock")
    assert outcomes_path(a) == outcomes_path(b) and state_path(a) == state_path(b) and audit_path(a) == audit_path(b)


@pytest.mark.parametrize("args", [["attack", *SYN, "--attacks", "fgsm", "--out", "r"],
                                  ["attack", *SYN, "--attacks", "fgsm", "--out", "r.json"],
                                  ["audit", *SYN, "--attacks", "fgsm", "--out", "r.audit.json"]],
                         ids=["attack-r", "attack-r.json", "audit"])
def test_a_live_lock_on_the_stem_refuses_every_writer(box, args):
    box.write("r.lock", f"{os.getpid()} {os.uname().nodename}\n")
    box.refuses(args, "another a3bench run")


def test_train_takes_a_lock_and_never_writes_through_a_link(box):
    box.write("tiny.yaml", TINY)
    box.write("run/m.train.lock", f"{os.getpid()} {os.uname().nodename}\n")
    box.refuses(["train", "tiny.yaml", "--out", "run/m.pt", "--quiet"], "another a3bench run")
    (box.root / "run" / "m.train.lock").unlink()
    box.write("../outside.jsonl", '{"epoch": 1}\n')
    os.symlink(box.root.parent / "outside.jsonl", box.root / "run" / "m.metrics.jsonl")
    for extra in ([], ["--resume"]):
        box.refuses(["train", "tiny.yaml", "--out", "run/m.pt", "--quiet", *extra], "symbolic link")
    assert (box.root.parent / "outside.jsonl").read_text() == '{"epoch": 1}\n'


@pytest.mark.parametrize("fail_at", [0, 1, 2], ids=["outcomes", "audit", "record"])
def test_a_run_that_fails_half_way_changes_nothing(tmp_path, monkeypatch, fail_at):
    """A full disk while writing the new outcomes, audit or record leaves the old three as
    they were (issue 24 item 3): they are staged first, then renamed, the record last."""
    out = tmp_path / "r.json"
    record, outcomes = _record([True, True, False, False])
    write_run(out, record, outcomes, _audit())
    before = _snapshot(tmp_path)
    real_fsync, calls = os.fsync, []

    def full(fd):
        calls.append(fd)
        if len(calls) > fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    new_record, new_outcomes = _record([True, False, False, False])
    with pytest.raises(OSError):
        write_run(out, new_record, new_outcomes, _audit())
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert _snapshot(tmp_path) == before  # no new file, no temp file left
    assert verify_run_ids(out) == []


def _swap(a: Path, b: Path, suffix: str) -> None:
    shutil.copy(b.with_name(b.stem + suffix), a.with_name(a.stem + suffix))


@pytest.mark.parametrize("sidecar", [".outcomes.json", ".audit.json"])
def test_sidecars_of_another_run_are_refused(tmp_path, sidecar):
    one, two = tmp_path / "one" / "r.json", tmp_path / "two" / "r.json"
    for path, robust in ((one, [True, False, False, False]), (two, [True, True, False, False])):
        record, outcomes = _record(robust)
        write_run(path, record, outcomes, _audit())
    assert verify_run_ids(one) == []
    _swap(one, two, sidecar)
    problems = verify_run_ids(one)
    assert len(problems) == 1 and "another run" in problems[0] and sidecar in problems[0]
    _one_error(runner.invoke(app, ["check", str(one), "--baseline", str(two)]), "another run")


def test_records_from_before_run_ids_still_pair(tmp_path):
    record, outcomes = _record([True, False])
    path = tmp_path / "r.json"
    write_run(path, record, outcomes)
    for p in (path, outcomes_path(path)):
        data = json.loads(p.read_text())
        data.pop("run_id")
        p.write_text(json.dumps(data))
    assert verify_run_ids(path) == []
    assert runner.invoke(app, ["check", str(path), "--baseline", str(path)]).exit_code == 0


@pytest.mark.parametrize("fail_at", [0, 2, 3], ids=["first-page", "last-page", "index"])
def test_a_site_written_on_a_full_disk_keeps_the_old_one(box, monkeypatch, fail_at):
    """Pages and index are staged and renamed together: never pages without an index."""
    from a3bench.report.generate import generate_report

    for i, robust in enumerate(([True, False], [True, True], [False, False])):
        record, outcomes = _record(robust, name=f"m{i}")
        write_run(box.root / "results" / "synthetic" / "Linf" / f"m{i}.json", record, outcomes)
    real_fsync, calls = os.fsync, []

    def full(fd):
        calls.append(fd)
        if len(calls) > fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ResultError, match="No space left"):
        generate_report(["results"], "site", "html")
    assert not (box.root / "site").exists() or not any((box.root / "site").rglob("*.html"))
    monkeypatch.setattr(os, "fsync", real_fsync)
    generate_report(["results"], "site", "html")
    before = _snapshot(box.root / "site")
    calls.clear()
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ResultError):
        generate_report(["results"], "site", "html")
    assert _snapshot(box.root / "site") == before


# --------------------------------------------------------------------------- 2. check trusts nothing


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _set(keys, value):
    def change(d):
        node = d
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return change


RECORD_EDITS = {
    "robust-250": (_set(["robust_acc"], 250), "robust_acc"),
    "clean-negative": (_set(["clean_acc"], -1), "clean_acc"),
    "broken-negative": (_set(["per_attack", 0, "broken"], -7), r"per_attack\[0\]\.broken"),
    "broken-over-attacked": (_set(["per_attack", 0, "broken"], 99), r"per_attack\[0\]\.broken"),
    "ran-without-accuracy": (_set(["per_attack", 0, "robust_acc"], None), r"per_attack\[0\]\.robust_acc"),
    "attack-below-worst-case": (_set(["per_attack", 0, "robust_acc"], 0.0), r"per_attack\[0\]\.robust_acc"),
    "interval-inverted": (_set(["robust_acc_ci"], [90.0, 10.0]), "robust_acc_ci"),
    "interval-without-value": (_set(["robust_acc_ci"], [0.0, 1.0]), "robust_acc_ci"),
    "interval-three": (_set(["robust_acc_ci"], [1.0, 2.0, 3.0]), "robust_acc_ci"),
    "seed-negative": (_set(["seed"], -3), "seed"),
    "autoattack-150": (_set(["autoattack_acc"], 150.0), "autoattack_acc"),
    "audit-number": (_set(["audit"], 5), "audit"),
    "audit-rate-text": (_set(["audit"], {"pass_rate": "high"}), "audit.pass_rate"),
    "audit-rate-150": (_set(["audit"], {"pass_rate": 150.0}), "audit.pass_rate"),
    "audit-ci-inverted": (_set(["audit"], {"pass_rate": 50.0, "pass_rate_ci": [90.0, 10.0]}), "audit.pass_rate_ci"),
    "audit-per-attack-list": (_set(["audit"], {"per_attack": [1, 2]}), "audit.per_attack"),
    "audit-testable-negative": (_set(["audit"], {"n_testable": -1}), "audit.n_testable"),
    "audit-flags-numbers": (_set(["audit"], {"flags": [1]}), r"audit.flags\[0\]"),
    "model-sha-number": (_set(["model", "sha256"], 5), "model.sha256"),
}
OUTCOME_EDITS = {
    "outcomes-say-zero": (lambda d: d.update(robust=[False] * 10, broken_by=["fgsm" if c else "clean" for c in d["clean_correct"]]),
                          "robust_acc"),
    "outcomes-clean-differs": (lambda d: d.update(clean_correct=[True] * 10, clean_pred=d["labels"],
                                                  broken_by=[None if r else "fgsm" for r in d["robust"]]), "clean_acc"),
    "outcomes-broken-by-other": (lambda d: d.update(broken_by=[None if r else ("pgd-20" if c else "clean")
                                                               for r, c in zip(d["robust"], d["clean_correct"])]),
                                 r"per_attack\[0\]\.broken"),
    "outcomes-fewer": (lambda d: [d.update({k: v[:5]}) for k, v in list(d.items()) if isinstance(v, list)], "n_examples"),
    "outcomes-inconsistent": (lambda d: d.update(robust=[True] * 10), r"robust\[\d\]"),
}


@pytest.mark.parametrize("where", ["current", "baseline"])
@pytest.mark.parametrize("edit", list(RECORD_EDITS) + list(OUTCOME_EDITS))
def test_check_refuses_a_record_it_cannot_trust(tmp_path, edit, where):
    robust, clean = [True] * 6 + [False] * 4, [True] * 8 + [False] * 2
    cur, base = (_write_run(tmp_path / f / "r.json", robust, clean) for f in ("cur", "base"))
    change, field = RECORD_EDITS[edit] if edit in RECORD_EDITS else OUTCOME_EDITS[edit]
    target = cur if where == "current" else base
    _edit(target if edit in RECORD_EDITS else outcomes_path(target), change)
    _one_error(runner.invoke(app, ["check", str(cur), "--baseline", str(base)]), field)
    if edit in RECORD_EDITS:  # report reads records through the same reader
        _one_error(runner.invoke(app, ["report", str(target), "--out", str(tmp_path / "LB.md")]), field)


@pytest.mark.parametrize("change,what", [({"sha256": "b" * 64}, "different weights"), ({"spec": "other.pt"}, "different specs")])
def test_check_refuses_two_different_models_unless_allowed(tmp_path, change, what):
    robust = [True] * 5 + [False] * 5
    base = _write_run(tmp_path / "base" / "r.json", robust)
    cur = _write_run(tmp_path / "cur" / "r.json", robust, model={"spec": "m.pt", "sha256": "a" * 64, **change})
    line = _one_error(runner.invoke(app, ["check", str(cur), "--baseline", str(base)]), "different models")
    assert what in line and "--allow-different-model" in line
    res = runner.invoke(app, ["check", str(cur), "--baseline", str(base), "--allow-different-model"])
    assert res.exit_code == 0 and what in " ".join(res.output.split()), res.output


def test_check_never_exits_1_when_it_crashes(tmp_path, monkeypatch):
    """Exit 1 means a regression: a crash of check itself must not read as one."""
    import a3bench.report.check as check_module

    path = _write_run(tmp_path / "r.json", [True, False])

    def broken(*_a, **_k):
        raise RuntimeError("a bug in a3bench")

    monkeypatch.setattr(check_module, "check", broken)
    _one_error(runner.invoke(app, ["check", str(path), "--baseline", str(path)]), "could not compare: RuntimeError")


def test_mcnemar_on_60000_pairs_is_fast_and_exact(tmp_path):
    n = 60_000
    base_robust = [i % 2 == 0 for i in range(n)]
    # newly broken: every 7th robust example; newly robust: every 11th broken one (~4,300 against ~2,700)
    cur_robust = [(r and i % 7 != 0) or (not r and i % 11 == 0) for i, r in enumerate(base_robust)]
    base = _write_run(tmp_path / "base" / "r.json", base_robust)
    cur = _write_run(tmp_path / "cur" / "r.json", cur_robust)
    from a3bench.report.check import check

    t = time.perf_counter()
    res = check(cur, base, max_drop=100.0)
    assert time.perf_counter() - t < 20.0  # reading two 60,000-example files included; the test itself: below
    m = res.mcnemar
    assert m.newly_broken + m.newly_robust == sum(a != b for a, b in zip(base_robust, cur_robust))
    t = time.perf_counter()
    p = mcnemar_exact(m.newly_broken, m.newly_robust)
    assert time.perf_counter() - t < 0.5 and p == m.p_value
    # the normal approximation agrees on the order of magnitude at this size
    b, c = m.newly_broken, m.newly_robust
    z = (abs(b - c) - 1) / math.sqrt(b + c)
    assert 1e-300 < p < 1e-20 and math.isclose(math.log10(p), math.log10(math.erfc(z / math.sqrt(2))), rel_tol=0.1)
    assert mcnemar_exact(30_000, 30_000) == 1.0 and mcnemar_exact(0, 60_000) == 0.0


@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (1, 9), (3, 3), (7, 2), (50, 80), (400, 600), (1234, 1300), (0, 1074)])
def test_mcnemar_log_space_equals_exact_integers(b, c):
    n, k = b + c, min(b, c)
    exact = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
    assert mcnemar_exact(b, c) == pytest.approx(exact, rel=1e-9, abs=1e-300)


# --------------------------------------------------------------------------- 3. untrusted text is never markup

HOSTILE = "[/]evil [link=https://evil.example/]click[/link] [bold]x:smiley:"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _literal(result) -> str:
    assert result.exit_code == 0, result.output
    assert "\x1b]8;" not in result.output, "a terminal hyperlink was emitted"
    return ANSI.sub("", result.output)


def test_hostile_text_from_a_model_card_and_paths_prints_as_text(box):
    """FORCE_COLOR makes rich render markup and links as it would in a terminal."""
    env = {"FORCE_COLOR": "1", "COLUMNS": "400"}
    (box.root / "zoo" / "mine.evil").mkdir(parents=True)
    shutil.copy(box.root / "m.pt", box.root / "zoo" / "mine.evil" / "model.pt")
    box.write("zoo/mine.evil/card.yaml", json.dumps({"name": HOSTILE, "footnote": HOSTILE}))
    folder = "x[/b]y [link=file:evil]"
    out = _literal(box.runs(["attack", *SYN[2:], "--model", "mine.evil", "--attacks", "fgsm", "--out", f"{folder}/r.json"], **env))
    assert "[/]evil" in out and f"{folder}/r.json" in out
    out = _literal(box.runs(["models", "mine.evil"], **env))
    assert "[/]evil [link=https://evil.example/]click[/link]" in out
    out = _literal(box.runs(["audit", *SYN, "--attacks", "fgsm", "--n-inner", "2", "--no-indicators", "--out",
                             f"{folder}/m.audit.json"], **env))
    assert f"{folder}/m.audit.json" in out
    out = _literal(box.runs([*COMMANDS["sweep-eps"], "--out", f"{folder}/s.sweep.json"], **env))
    assert f"{folder}/s.sweep.json" in out
    # check: a note naming a path with markup (no outcomes beside the record)
    (box.root / folder / "r.outcomes.json").unlink()
    (box.root / folder / "r.adv.pt").unlink()  # a record from before run ids kept no adversarial examples either
    _edit(box.root / folder / "r.json", lambda d: d.update(run_id=None))
    out = _literal(runner.invoke(app, ["check", f"{folder}/r.json", "--baseline", f"{folder}/r.json"], env=env))
    assert f"{folder}/r.json" in out
    box.write("tiny.yaml", TINY)
    out = _literal(box.runs(["train", "tiny.yaml", "--out", f"{folder}/t.pt", "--quiet"], **env))
    assert f"{folder}/t.pt" in out


def _rendered(draw) -> str:
    """What ``draw(console)`` prints on a terminal (markup and links rendered, if any)."""
    import io

    from rich.console import Console

    from a3bench.cli import common

    buf = io.StringIO()
    con = common.console()
    con.file, con._force_terminal = buf, True  # the command's own console, as a terminal would have it
    draw(con)
    text = buf.getvalue()
    assert "\x1b]8;" not in text, "a terminal hyperlink was emitted"
    return ANSI.sub("", text)


def test_hostile_text_in_records_audits_and_sweeps_prints_as_text():
    """Every string of a record that came from outside (exception text in a failed attack's
    note, flag messages, notes, names) printed by attack, audit and sweep-eps."""
    from a3bench.cli.attack_cli import print_summary
    from a3bench.cli.audit_cli import print_audit
    from a3bench.cli.sweep_cli import print_sweep
    from a3bench.schema import BinarizationTest, Flag, ProbeRecord, SweepRecord

    record, _ = _record([True, False, False, False], name=HOSTILE)
    record.per_attack.append(AttackRecord(HOSTILE, 25.0, status="failed", note=f"ValueError: {HOSTILE}"))
    record.per_attack.append(AttackRecord("skipped " + HOSTILE, 25.0, status="skipped", note=HOSTILE))
    record.flags = [Flag(HOSTILE, "warning", HOSTILE)]
    record.notes, record.verdict_reason = [HOSTILE], HOSTILE
    record.probe = ProbeRecord(HOSTILE, 1, 0, note=HOSTILE)
    record.audit = {"file": HOSTILE, "pass_rate": 50.0, "n_testable": 2, "n_not_testable": 2}
    assert _rendered(lambda con: print_summary(con, record)).count("[/]evil") >= 8
    audit = _audit()
    audit.name, audit.features = HOSTILE, HOSTILE
    audit.binarization = [BinarizationTest(HOSTILE, status="failed", note=HOSTILE)]
    audit.flags = [Flag(HOSTILE, "error", HOSTILE)]
    assert _rendered(lambda con: print_audit(con, audit)).count("[/]evil") >= 5
    sweep = SweepRecord(model=HOSTILE, dataset="synthetic", norm="Linf", eps=[0.1], curves={HOSTILE: [50.0]}, clean_acc=90.0,
                        skipped={HOSTILE: HOSTILE}, failed={HOSTILE: HOSTILE}, flags=[Flag(HOSTILE, "warning", HOSTILE)],
                        compute={"per_eps": [{"attacked": {}, "seconds": 0.0}], "forward_passes_per_example": 1.0,
                                 "backward_passes_per_example": 0.0, "seconds": 0.0})
    assert _rendered(lambda con: print_sweep(con, sweep)).count("[/]evil") >= 5


# --------------------------------------------------------------------------- 4. devices and FIFOs


def test_check_and_report_refuse_fifos_devices_and_huge_files(box):
    good = _write_run(box.root / "good" / "r.json", [True, False])
    os.mkfifo(box.root / "fifo.json")
    os.symlink("/dev/zero", box.root / "zero.json")
    with open(box.root / "huge.json", "wb") as f:  # sparse: 600 MB on paper, nothing on disk
        f.truncate(600 << 20)
    for bad in ("fifo.json", "zero.json", "huge.json"):
        match = "reads a result record of up to" if bad == "huge.json" else "not a regular file"
        box.refuses(["check", bad, "--baseline", good], match)
        box.refuses(["check", good, "--baseline", bad], match)
        folder = box.root / "scan" / bad.split(".")[0]
        folder.mkdir(parents=True)
        os.rename(box.root / bad, folder / bad)
        box.refuses(["report", folder, "--out", "LB.md"], match)


def test_a_fifo_card_or_config_is_refused_not_waited_on(box):
    from a3bench.limits import read_yaml
    from a3bench.errors import ConfigError

    (box.root / "zoo" / "mine.fifo").mkdir(parents=True)
    shutil.copy(box.root / "m.pt", box.root / "zoo" / "mine.fifo" / "model.pt")
    os.mkfifo(box.root / "zoo" / "mine.fifo" / "card.yaml")
    box.runs(["models", "mine.fifo"])  # not a card: the model has none
    with pytest.raises(ConfigError, match="not a regular file"):
        read_yaml(box.root / "zoo" / "mine.fifo" / "card.yaml", ConfigError)
    os.mkfifo(box.root / "fifo.yaml")
    box.refuses(["train", "fifo.yaml", "--out", "run/m.pt"], "not a regular file")
    os.mkfifo(box.root / "summary.md")
    good = _write_run(box.root / "good" / "r.json", [True, False])
    res = runner.invoke(app, ["check", str(good), "--baseline", str(good), "--summary", "summary.md"])
    assert res.exit_code == 2 and "Traceback" not in res.output  # a FIFO nobody reads: an error, not a hang


# --------------------------------------------------------------------------- 5. edited state files


@pytest.fixture(scope="module")
def interrupted_state(tmp_path_factory, bundled_model_path):
    """A real resume state, saved when the second attack was interrupted after one batch."""
    from a3bench.data import load_dataset
    from a3bench.eval.runner import evaluate
    from a3bench.models import load_model
    from a3bench.threat import ThreatModel

    folder = tmp_path_factory.mktemp("state")

    def stop(ev):
        if ev.stage == "batch" and ev.attack_index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(load_model(str(bundled_model_path)), load_dataset("synthetic", "test"), ThreatModel("Linf", 0.1), "fgsm,pgd-2",
                 n_examples=16, batch_size=4, out=folder / "r.json", progress=stop)
    return json.loads(state_path(folder / "r.json").read_text())


STATE_EDITS = {
    "current.index-text": (["current", "index"], "x"), "current.index-far": (["current", "index"], 7),
    "current.todo-outside": (["current", "todo"], [999]), "current.todo-text": (["current", "todo"], "abc"),
    "current.todo-twice": (["current", "todo"], [12, 12]), "current.record-junk": (["current", "record"], {"bogus": 1}),
    "current.record-number": (["current", "record"], 5), "current.batches-negative": (["current", "batches_done"], -1),
    "current.batches-huge": (["current", "batches_done"], 10**9), "current.unconfirmed-text": (["current", "unconfirmed"], "x"),
    "current.status": (["current", "record", "status"], "weird"), "current-empty": (["current"], {}),
    "rising-outside": (["rising"], [99]), "rising-negative": (["rising"], [-5]),
    "identity.attacks-object": (["identity", "attacks"], {}), "identity.attacks-numbers": (["identity", "attacks"], [1, 2]),
    "identity-list": (["identity"], []), "finished.robust_acc-null": (["finished", 0, "robust_acc"], None),
    "finished.broken-negative": (["finished", 0, "broken"], -3), "finished.name": (["finished", 0, "name"], "pgd-2"),
    "escalation.attacks-text": (["escalation"], {"attacks": "pgd-20"}), "correct_share": (["correct_share"], [2.0] * 16),
    "broken_by-number": (["broken_by", 3], 5), "adv_distance-negative": (["adv_distance", 5], -1.0),
    "violations-negative": (["violations"], {"a": -1}), "clean_pred-float": (["clean_pred", 0], 1e9),
}


@pytest.mark.parametrize("edit", list(STATE_EDITS))
def test_an_edited_resume_state_is_one_line(box, interrupted_state, edit):
    keys, value = STATE_EDITS[edit]
    state = copy.deepcopy(interrupted_state)
    _set(keys, value)(state)
    box.write("st/r.state.json", json.dumps(state))
    box.refuses(["attack", "--model", "m.pt", "--dataset", "synthetic", "-n", "16", "-b", "4", "--eps", "0.1",
                 "--attacks", "fgsm,pgd-2", "--device", "cpu", "--quiet", "--out", "st/r.json", "--resume"], r"r\.state\.json")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A one-epoch run of the tiny config (SGD with momentum: one buffer per parameter)."""
    folder = tmp_path_factory.mktemp("train")
    (folder / "tiny.yaml").write_text(TINY)
    res = runner.invoke(app, ["train", str(folder / "tiny.yaml"), "--out", str(folder / "run" / "m.pt"), "--quiet"])
    assert res.exit_code == 0, res.output
    return folder


def _group(key, value):
    return lambda opt: opt["param_groups"][0].__setitem__(key, value)


def _buffer(make):
    def change(opt):
        opt["state"][0]["momentum_buffer"] = make(opt["state"][0]["momentum_buffer"])
    return change


OPTIMIZER_EDITS = {
    "a-number": lambda s: s.__setitem__("optimizer", 5),
    "no-groups": lambda s: s.__setitem__("optimizer", {"state": {}, "param_groups": []}),
    "no-param-groups-key": lambda s: s.__setitem__("optimizer", {"state": {}}),
    "momentum-text": lambda s: _group("momentum", "abc")(s["optimizer"]),
    "momentum-changed": lambda s: _group("momentum", 0.5)(s["optimizer"]),
    "weight-decay-nan": lambda s: _group("weight_decay", float("nan"))(s["optimizer"]),
    "params-unknown": lambda s: _group("params", [999])(s["optimizer"]),
    "buffer-shape": lambda s: _buffer(lambda b: torch.zeros(3))(s["optimizer"]),
    "buffer-nan": lambda s: _buffer(lambda b: torch.full_like(b, float("nan")))(s["optimizer"]),
}


@pytest.mark.parametrize("edit", list(OPTIMIZER_EDITS))
def test_an_edited_optimizer_state_is_one_line(box, trained_run, edit):
    shutil.copy(trained_run / "tiny.yaml", box.root / "tiny.yaml")
    shutil.copytree(trained_run / "run", box.root / "run")
    payload = torch.load(box.root / "run" / "m.pt", weights_only=True)
    OPTIMIZER_EDITS[edit](payload["train_state"])
    torch.save(payload, box.root / "run" / "m.pt")
    box.refuses(["train", "tiny.yaml", "--out", "run/m.pt", "--resume", "--quiet"], "optimizer state in .* is damaged")


# --------------------------------------------------------------------------- 6. specs, environment, API


@pytest.mark.parametrize("k", ["²", "٣", "-1", "1e3", "", "3", "0x2"])
def test_ensemble_k_is_one_line(box, k):
    box.refuses(["models", f"ensemble:m.pt,m.pt:k={k}"], "k must be an integer")


@pytest.mark.parametrize("value", ["abc", "nan", "1e300", "-5", "inf", "0", "1e9"])
def test_dist_timeout_is_one_line_on_every_rank(box, monkeypatch, value):
    import a3bench.eval.distributed as distributed

    monkeypatch.setattr(distributed, "_SHARD", None)  # this process has not joined a run yet
    line = box.refuses(["attack", *SYN, "--attacks", "fgsm"], "A3BENCH_DIST_TIMEOUT_S",
                       A3BENCH_DIST_TIMEOUT_S=value, WORLD_SIZE="2", RANK="1", LOCAL_RANK="1")
    assert line.startswith("error: [rank 1]")


def test_dist_timeout_accepts_seconds(monkeypatch):
    from a3bench.eval.distributed import DEFAULT_TIMEOUT_S, timeout_seconds

    monkeypatch.setenv("A3BENCH_DIST_TIMEOUT_S", " 90.5 ")
    assert timeout_seconds() == 90.5
    monkeypatch.delenv("A3BENCH_DIST_TIMEOUT_S")
    assert timeout_seconds() == DEFAULT_TIMEOUT_S
    monkeypatch.setenv("A3BENCH_DIST_TIMEOUT_S", "soon")
    with pytest.raises(ShardError):
        timeout_seconds()


@pytest.mark.parametrize("text,names", [
    ("pgd-20,apgd-ce", ["pgd-20", "apgd-ce"]),
    ("transfer:[ensemble:A,B]", ["transfer:ensemble:A,B"]),
    ('pgd-20, transfer:"ensemble:A,B:agg=mean" ,square', ["pgd-20", "transfer:ensemble:A,B:agg=mean", "square"]),
    ("transfer:[ensemble:a.pt,b.pt]:x=1,fgsm", ["transfer:ensemble:a.pt,b.pt:x=1", "fgsm"]),
    ("transfer:{ensemble:[a.pt,b.pt]}", ["transfer:ensemble:[a.pt,b.pt]"]),
])
def test_a_spec_with_commas_can_be_written_in_attacks(text, names):
    from a3bench.attacks.registry import split_names

    assert split_names(text) == names


def test_transfer_from_an_ensemble_runs_from_the_command_line(box):
    box.runs(["attack", *SYN, "--attacks", "fgsm,transfer:[ensemble:m.pt,m.pt]", "--out", "r.json"])
    record = json.loads((box.root / "r.json").read_text())
    assert [a["name"] for a in record["per_attack"]] == ["fgsm", "transfer:ensemble:m.pt,m.pt"]


@pytest.mark.parametrize("attacks,match", [
    ("", "no attacks given"), (" , ", "no attacks given"), ("pgd-20,[a", "not closed"), ("pgd-20)", "closes nothing"),
    ('"abc', "not closed"),
    ("aas:search_steps=99999999999", "must be ≥ 1 and ≤"), ("pgd-99999999999", "more than"), ("square-10000000", "more than"),
    ("eot-pgd-20:n=99999999", "must be ≥ 1 and ≤"), ("pgd-20:restarts=1000001", "must be ≥ 1 and ≤"),
    ("pgd-٣", "ASCII"), ("pgd-3,pgd-٣", "ASCII"), ("pgd-²", "ASCII"), ("pgd-20:restarts=٣", "ASCII"),
])
@pytest.mark.parametrize("command", ["attack", "audit", "sweep-eps"])
def test_attack_lists_refused_before_any_work(box, command, attacks, match):
    args = [a for a in COMMANDS[command] if a != "fgsm"]
    args.remove("--attacks")
    box.refuses([*args, "--attacks", attacks], match)


@pytest.mark.parametrize("eps", ["1e300", "1e7", "1" + "0" * 400])
def test_an_absurd_eps_is_blamed_on_the_eps(box, eps):
    args = [a if a != "0.1" else eps for a in COMMANDS["attack"]]
    box.refuses(args, r"^error: eps")


def test_a3_numbers_read_like_every_config_number():
    from a3bench.config import load_config
    from a3bench.errors import ConfigError

    cfg = load_config(REPO / "configs" / "fmnist_a3.yaml", ["model.a3.tau=1e-2", "model.a3.init_strength=1/2", "train.lr=1e-2"])
    assert (cfg.model.a3.tau, cfg.model.a3.init_strength, cfg.train.lr) == (0.01, 0.5, 0.01)
    for bad in ("model.a3.tau=abc", "model.a3.tau=-1e-2", "model.a3.tau=.nan"):
        with pytest.raises(ConfigError, match="a3.tau"):
            load_config(REPO / "configs" / "fmnist_a3.yaml", [bad])


class _NoClassCount(torch.nn.Module):
    """A 10-class model that does not declare its class count."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.l = torch.nn.Linear(784, 10)

    def forward(self, x):
        return self.l(x.flatten(1))


def test_benchmark_takes_the_class_count_from_the_model():
    import a3bench

    x = torch.rand(8, 1, 28, 28)
    for y in (torch.arange(8) % 9, torch.zeros(8, dtype=torch.long)):  # no class 9; one class only
        record = a3bench.benchmark(_NoClassCount(), (x, y), eps=0.1, attacks="fgsm", device="cpu", probe=False)
        assert record.n_examples == 8
    with pytest.raises(DataError, match="10 classes"):
        a3bench.benchmark(_NoClassCount(), (x, torch.full((8,), 12)), eps=0.1, attacks="fgsm", device="cpu")


@pytest.mark.parametrize("seed", [2**70, -1, 2**32, "7", 1.5])
def test_benchmark_blames_a_bad_seed_on_the_seed(seed):
    import a3bench

    class Untouchable(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("the model was called")

    with pytest.raises(AttackError, match="seed"):
        a3bench.benchmark(Untouchable(), (torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long)), eps=0.1, seed=seed)
    with pytest.raises(AttackError, match="eps"):
        a3bench.benchmark(Untouchable(), (torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long)), eps=10**400)


def test_sweep_writes_no_matplotlib_cache_in_home(tmp_path, bundled_model_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    proc = subprocess.run([sys.executable, "-m", "a3bench", "sweep-eps", "--model", str(bundled_model_path), "--dataset", "synthetic",
                           "-n", "4", "--eps", "0,0.1", "--attacks", "fgsm", "--device", "cpu", "--quiet", "--out", str(tmp_path / "sw")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300, env={**env, **PYTHONPATH, "HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "sw").is_dir() and list((tmp_path / "sw").glob("*.sweep.png"))
    assert not [p for p in home.rglob("*") if "matplotlib" in str(p)]
