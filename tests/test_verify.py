"""``a3bench verify`` and the adversarial examples every evaluation keeps (docs/verify.md):
real Fashion-MNIST, bundled zoo models, a few dozen examples.

- a record made by ``a3bench attack`` verifies: every claim confirmed, the worst case the record's;
- a tampered point (outside the ball, or the clean image again) fails, exit 1, and is named;
- a randomised model verifies by the majority of its record's draws;
- an external tensor of adversarial images gives a verified row, marked external in ``report``;
- a hostile adversarial file is one ``error:`` line, exit 2, and no code runs;
- a killed run resumes with its points; ``--no-adv`` keeps none.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from a3bench.cli import app
from tests.conftest import needs_fmnist

pytestmark = needs_fmnist

runner = CliRunner()
MODEL = "smallcnn.pgdat_fmnist"
RANDOMISED = "smallcnn_deep.crossmax_fmnist"
N = 40


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _one_error(res, fragment: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert fragment in lines[0], res.output
    assert "Traceback" not in res.output


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A record made by ``a3bench attack``, with its outcomes and adversarial examples."""
    folder = tmp_path_factory.mktemp("made")
    res = cli("attack", "--model", MODEL, "--eps", "0.1", "--attacks", "fgsm,pgd-5", "-n", N, "--batch-size", 16, "--no-probe",
              "--out", folder / "r.json", "--quiet", "--device", "cpu")
    assert res.exit_code == 0, res.output
    return folder


@pytest.fixture
def rec(made, tmp_path) -> Path:
    """A copy of the made record to tamper with."""
    for p in made.iterdir():
        shutil.copy(p, tmp_path / p.name)
    return tmp_path / "r.json"


@pytest.fixture(scope="module")
def clean_images(fmnist_test):
    return fmnist_test.first(N).tensors("cpu")


def _load(rec: Path) -> tuple[dict, dict, dict]:
    adv = torch.load(rec.with_name("r.adv.pt"), weights_only=True)
    return json.loads(rec.read_text()), json.loads(rec.with_name("r.outcomes.json").read_text()), adv


def _save_adv(rec: Path, adv) -> None:
    torch.save(adv, rec.with_name("r.adv.pt"))


# --------------------------------------------------------------------------- a record


def test_a_record_keeps_one_point_per_example_an_attack_broke(rec, clean_images):
    """The file holds exactly the examples the outcomes say an attack broke, each with that
    attack, each inside the threat model around its own example."""
    from a3bench.advfile import read_adv
    from a3bench.threat import ThreatModel

    record, outcomes, _ = _load(rec)
    adv = read_adv(rec.with_name("r.adv.pt"))
    by_attack = {p: by for p, ok, by in zip(outcomes["indices"], outcomes["clean_correct"], outcomes["broken_by"]) if ok and by}
    assert {int(p): adv.attack_of(i) for i, p in enumerate(adv.positions.tolist())} == by_attack
    assert set(by_attack.values()) == {"fgsm", "pgd-5"}  # both attacks broke something: the test covers both
    assert record["adv"] == {"file": "r.adv.pt", "points": len(by_attack), "broken": len(by_attack)}
    assert adv.run_id == record["run_id"] and adv.n_examples == N and adv.points.dtype == torch.float32
    x = clean_images[0][adv.positions]
    assert not ThreatModel("Linf", 0.1).violations(adv.points, x).any()


def test_a_record_verifies(rec):
    from a3bench.eval.verify import verify_record

    record, outcomes, _ = _load(rec)
    res = cli("verify", rec, "--quiet")
    assert res.exit_code == 0, res.output
    broken = sum(not r for r in outcomes["robust"])
    assert f"confirmed {broken} / {broken} claimed" in res.output and "verified" in res.output
    v = verify_record(rec)
    assert v.passed and v.confirmed == v.claimed == broken and v.failures == []
    assert abs(v.robust_acc - record["robust_acc"]) < 1e-9
    assert v.forward_passes == v.claimed and v.draws == 1  # forward passes only: one per claim


@pytest.mark.parametrize("how", ["outside-the-ball", "the-clean-image"])
def test_a_tampered_point_fails_and_is_named(rec, clean_images, how):
    from a3bench.eval.verify import verify_record

    record, outcomes, adv = _load(rec)
    i = len(adv["positions"]) - 1
    pos = int(adv["positions"][i])
    x = clean_images[0][pos]
    if how == "outside-the-ball":
        adv["points"][i] = (x + 0.2 * torch.where(x > 0.5, -1.0, 1.0)).clamp(0, 1)  # 0.2 > eps on every pixel
        why = "outside Linf"
    else:
        adv["points"][i] = x  # classified correctly: the record says so (clean_correct)
        why = "classifies it correctly"
    _save_adv(rec, adv)
    res = cli("verify", rec, "--quiet")
    assert res.exit_code == 1, res.output
    attack = adv["attacks"][int(adv["attack"][i])]
    assert f"failed: position {pos} ({attack}): " in res.output and why in res.output
    assert "not verified" in res.output
    v = verify_record(rec)
    assert [f.position for f in v.failures] == [pos] and v.confirmed == v.claimed - 1
    assert abs(v.robust_acc - (record["robust_acc"] + 100.0 / N)) < 1e-9  # the example counts as robust again


def test_a_randomised_model_verifies_by_the_majority_of_its_draws(tmp_path, fmnist_test):
    from a3bench.eval.runner import evaluate
    from a3bench.eval.verify import verify_record
    from a3bench.models import load_model
    from a3bench.threat import ThreatModel

    out = tmp_path / "r.json"
    made = evaluate(load_model(RANDOMISED), fmnist_test, ThreatModel("Linf", 0.1), "fgsm", n_examples=8, batch_size=8,
                    probe=False, adapt_plan=False, out=out)
    draws = made.record.compute["randomised"]["draws"]
    assert draws == 10 and made.record.adv["points"] >= 1
    v = verify_record(out)
    assert v.draws == draws and v.forward_passes == v.claimed * draws  # every claim judged by 10 fresh passes
    assert v.passed and v.confirmed + len(v.close) == v.claimed and v.confirmed >= 1
    assert all("fresh draws misclassify it" in c.why for c in v.close)
    # a confirmed point replaced by its clean image never counts as broken (refuted, or at least not confirmed);
    # another moved outside the ball fails, whatever the draws say
    adv = torch.load(out.with_name("r.adv.pt"), weights_only=True)
    close = {c.position for c in v.close}
    i = next(i for i, p in enumerate(adv["positions"].tolist()) if p not in close)
    pos = int(adv["positions"][i])
    x = fmnist_test.first(8).tensors("cpu")[0][pos]
    adv["points"][i] = x
    torch.save(adv, out.with_name("r.adv.pt"))
    tampered = verify_record(out)
    assert pos in {f.position for f in tampered.failures + tampered.close} and tampered.confirmed == v.confirmed - 1
    adv["points"][i] = (x + 0.2 * torch.where(x > 0.5, -1.0, 1.0)).clamp(0, 1)
    torch.save(adv, out.with_name("r.adv.pt"))
    res = cli("verify", out, "--quiet")
    assert res.exit_code == 1 and f"failed: position {pos} (fgsm): outside Linf" in res.output, res.output
    assert res.output.count("forward passes") == 1 and f"× {draws} draws (majority rule)" in res.output


@pytest.mark.parametrize("wrong, verdict", [(6, "confirmed"), (5, "close"), (4, "close"), (2, "close"), (1, "refuted"),
                                            (0, "refuted")])
def test_a_randomised_claim_fails_only_when_the_draws_refute_it(wrong, verdict):
    """The record's rule confirms (a majority of 10 draws wrong); a claim fails only when the
    draws classify the point correctly significantly more often than not (one-sided binomial
    test at 5 %: 9 or 10 of 10 correct); in between it is a close call."""
    from a3bench.eval.verify import _Judged, _refuted

    judged = _Judged([0], [(10 - wrong) / 10])
    got = "confirmed" if judged.wrong(0) else "refuted" if _refuted(judged, 0, 10) else "close"
    assert got == verdict
    assert _refuted(_Judged([3], [1.0]), 0, 1)  # a deterministic model: classified correctly is refuted


# --------------------------------------------------------------------------- an external evaluation


def _external(rec: Path, clean_images, move_outside: int | None = None) -> torch.Tensor:
    """RobustBench's layout: one image per test example, the clean one where no attack broke it."""
    _, _, adv = _load(rec)
    x = clean_images[0].clone()
    x[adv["positions"]] = adv["points"]
    if move_outside is not None:
        x[move_outside] = (x[move_outside] + 0.3).clamp(0, 1)
    return x


@pytest.mark.parametrize("layout", ["tensor", "x_adv", "adv_complete"])
def test_an_external_tensor_gives_a_verified_row(rec, clean_images, layout):
    """The record's own points as a RobustBench-style file give the record's numbers, as an
    external record that verifies in turn."""
    x = _external(rec, clean_images)
    path = rec.with_name("ext.pt")
    torch.save(x if layout == "tensor" else {layout: x, **({"n_examples": N} if layout == "x_adv" else {})}, path)
    out = rec.with_name("e.json")
    res = cli("verify", "--adv", path, "--model", MODEL, "--eps", "0.1", "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    mine, theirs = json.loads(rec.read_text()), json.loads(out.read_text())
    assert theirs["suite"] == "external" and theirs["attacks"] == ["external"] and theirs["verdict"] == "not-evaluated-fully"
    assert (theirs["clean_acc"], theirs["robust_acc"]) == (mine["clean_acc"], mine["robust_acc"])
    assert theirs["strength"]["complete"] is False and theirs["model"]["sha256"] == mine["model"]["sha256"]
    assert theirs["compute"]["forward_passes"] == N + theirs["per_attack"][0]["n_attacked"]  # forward passes only
    again = cli("verify", out, "--quiet")
    assert again.exit_code == 0, again.output


def test_report_shows_an_external_row_marked_external(rec, clean_images):
    torch.save(_external(rec, clean_images), rec.with_name("ext.pt"))
    assert cli("verify", "--adv", rec.with_name("ext.pt"), "--model", MODEL, "--eps", "0.1", "--out", rec.with_name("e.json"),
               "--quiet").exit_code == 0
    res = cli("report", rec.parent, "--out", rec.with_name("LB.md"), "--no-model-reports")
    assert res.exit_code == 0, res.output
    board = rec.with_name("LB.md").read_text()
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in board.splitlines() if line.startswith("|") and "—" in line]
    by_model = {row[1].split(" · ")[0]: row for row in rows}
    assert set(by_model) == {"e", "r"}, board  # its own row beside a3bench's, not merged into the model's
    assert by_model["e"][1].endswith(" · external") and not by_model["r"][1].endswith("external")
    assert by_model["e"][0] == "—" and by_model["e"][2] == "external (verified)"  # marked, never ranked
    assert by_model["e"][7] == by_model["r"][7] == "not-evaluated-fully"
    assert by_model["r"][2] == "fgsm,pgd-5 (no full AA)"
    assert "1 external evaluation(s)" in board


def test_an_external_point_outside_the_ball_counts_as_not_broken_and_is_named(rec, clean_images):
    from a3bench.eval.verify import verify_external
    from a3bench.models import load_model
    from a3bench.data import load_dataset
    from a3bench.threat import ThreatModel

    _, outcomes, adv = _load(rec)
    moved = int(adv["positions"][0])
    torch.save(_external(rec, clean_images, move_outside=moved), rec.with_name("ext.pt"))
    res = cli("verify", "--adv", rec.with_name("ext.pt"), "--model", MODEL, "--eps", "0.1", "--quiet")
    assert res.exit_code == 1, res.output
    assert f"failed: position {moved} (external): outside Linf" in res.output and "counted as not broken" in res.output
    v = verify_external(rec.with_name("ext.pt"), load_model(MODEL), load_dataset("fmnist", "test"), ThreatModel("Linf", 0.1))
    assert v.outside == 1 and v.outcomes.robust[moved]
    assert sum(v.outcomes.robust) == sum(outcomes["robust"]) + 1


# --------------------------------------------------------------------------- hostile files


class _Evil:
    """A pickle that would run code when loaded without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_external(kind: str, x: torch.Tensor, path: Path, marker: Path) -> str:
    if kind == "wrong-shape":
        torch.save(x[:, :, :14], path)
        return "images of shape"
    if kind == "nan":
        x = x.clone()
        x[3, 0, 5, 5] = float("nan")
        torch.save(x, path)
        return "x_adv[3] holds NaN"
    if kind == "out-of-range":
        torch.save(x * 255, path)
        return "outside [0,1]"
    if kind == "not-float":
        torch.save((x * 255).to(torch.uint8), path)
        return "torch.uint8"
    if kind == "lying-count":
        torch.save({"x_adv": x, "n_examples": N + 1}, path)
        return f"n_examples says {N + 1}, but x_adv holds {N}"
    if kind == "extra-key":
        torch.save({"x_adv": x, "labels": torch.zeros(N)}, path)
        return "unknown key(s) 'labels'"
    if kind == "code-pickle":
        torch.save({"x_adv": x, "n_examples": _Evil(marker)}, path)
        return "could run code: it names"
    if kind == "plain-pickle":
        import pickle

        path.write_bytes(pickle.dumps(_Evil(marker)))
        return "not a tensor file"
    if kind == "huge":
        from a3bench.limits import MAX_ADV_BYTES

        with path.open("wb") as f:
            f.truncate(MAX_ADV_BYTES + 1)  # sparse: nothing is written, the size alone is refused
        return f"up to {MAX_ADV_BYTES} bytes"
    if kind == "stride-0-view":
        torch.save(torch.zeros(1, 1, 1, 1).expand(N, 1, 28, 28), path)
        return "claims more data than the file stores"
    if kind == "fifo":
        os.mkfifo(path)
        return "not a regular file"
    raise AssertionError(kind)


HOSTILE = ["wrong-shape", "nan", "out-of-range", "not-float", "lying-count", "extra-key", "code-pickle", "plain-pickle", "huge",
           "stride-0-view", "fifo"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_external_file_is_one_error_line(tmp_path, clean_images, kind):
    path, marker = tmp_path / "adv.pt", tmp_path / "PWNED"
    fragment = _hostile_external(kind, clean_images[0], path, marker)
    _one_error(cli("verify", "--adv", path, "--model", MODEL, "--eps", "0.1", "--quiet"), fragment)
    assert not marker.exists()  # no code ran


def _hostile_record(kind: str, adv: dict, rec: Path, marker: Path) -> str:
    if kind == "float64-points":
        adv["points"] = adv["points"].double()
        return "points must be a torch.float32 tensor"
    if kind == "nan":
        adv["points"][0, 0, 0, 0] = float("nan")
        return "points[0] holds NaN"
    if kind == "out-of-range":
        adv["points"][1] += 2
        return "outside [0,1]"
    if kind == "extra-key":
        adv["note"] = "hello"
        return "unknown key(s) 'note'"
    if kind == "lying-count":  # one point fewer than the record says it kept
        for key in ("positions", "points", "attack"):
            adv[key] = adv[key][1:]
        return "the record says"
    if kind == "lying-length":
        adv["attack"] = adv["attack"][1:]
        return "differ in length"
    if kind == "duplicate-position":
        adv["positions"][1] = adv["positions"][0]
        return "distinct"
    if kind == "attack-index":
        adv["attack"][0] = 99
        return "attack holds an index outside"
    if kind == "point-for-a-robust-example":
        outcomes = json.loads(rec.with_name("r.outcomes.json").read_text())
        adv["positions"][0] = next(p for p, r in zip(outcomes["indices"], outcomes["robust"]) if r)
        return "the outcomes say it is 'robust'"
    if kind == "another-run":
        adv["run_id"] = "0123456789abcdef"
        return "another run"
    if kind == "code-pickle":
        adv["dataset"] = _Evil(marker)
        return "could run code"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["float64-points", "nan", "out-of-range", "extra-key", "lying-count", "lying-length",
                                  "duplicate-position", "attack-index", "point-for-a-robust-example", "another-run", "code-pickle"])
def test_a_hostile_record_adv_file_is_one_error_line(rec, tmp_path, kind):
    _, _, adv = _load(rec)
    marker = tmp_path / "PWNED"
    fragment = _hostile_record(kind, adv, rec, marker)
    _save_adv(rec, adv)
    _one_error(cli("verify", rec, "--quiet"), fragment)
    assert not marker.exists()


def test_check_and_report_see_an_adv_file_of_another_run(rec):
    from a3bench.results import verify_run_ids

    _, _, adv = _load(rec)
    adv["run_id"] = "0123456789abcdef"
    _save_adv(rec, adv)
    problems = verify_run_ids(rec)
    assert len(problems) == 1 and "another run" in problems[0] and "r.adv.pt" in problems[0]


def test_an_unreadable_audit_the_record_does_not_name_does_not_hide_the_adv_file(rec):
    from a3bench.results import audit_path, verify_run_ids

    _, _, adv = _load(rec)
    adv["run_id"] = "0123456789abcdef"
    _save_adv(rec, adv)
    audit_path(rec).write_text("not json")
    problems = verify_run_ids(rec)
    assert len(problems) == 1 and "another run" in problems[0] and "r.adv.pt" in problems[0]


def test_a_record_spec_that_would_run_code_is_refused(rec, tmp_path):
    marker = tmp_path / "RAN"
    (tmp_path / "evil.py").write_text(f"import pathlib\ndef make():\n    pathlib.Path({str(marker)!r}).touch()\n")
    record = json.loads(rec.read_text())
    record["model"]["spec"] = f"{tmp_path / 'evil.py'}:make"
    rec.write_text(json.dumps(record))
    _one_error(cli("verify", rec, "--quiet"), "would import and run Python code")
    assert not marker.exists()


def test_another_model_is_refused_unless_allowed(rec):
    _one_error(cli("verify", rec, "--model", "smallcnn.a3_joint_fmnist", "--quiet"), "other weights than the record's")
    res = cli("verify", rec, "--model", "smallcnn.a3_joint_fmnist", "--allow-different-model", "--quiet")
    assert res.exit_code in (0, 1) and "claimed" in res.output, res.output


@pytest.mark.parametrize("args, fragment", [
    ([], "give a RECORD"),
    (["--adv", "x.pt", "--eps", "0.1"], "needs --model"),
    (["--adv", "x.pt", "--model", MODEL], "needs --eps"),
    (["r.json", "--eps", "0.1"], "only with --adv"),
])
def test_bad_arguments_are_one_error_line(args, fragment):
    _one_error(cli("verify", *args), fragment)


# --------------------------------------------------------------------------- resume and --no-adv


def _stop_after_fgsm(ev):
    if ev.stage == "attack-end" and ev.attack == "fgsm":
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def whole(tmp_path_factory, fmnist_test):
    from a3bench.eval.runner import evaluate
    from a3bench.models import load_model
    from a3bench.threat import ThreatModel

    out = tmp_path_factory.mktemp("whole") / "w.json"
    return evaluate(load_model(MODEL), fmnist_test, ThreatModel("Linf", 0.1), "fgsm,pgd-5", n_examples=N, batch_size=16,
                    probe=False, out=out)


def _killed(tmp_path, fmnist_test):
    from a3bench.eval.runner import evaluate
    from a3bench.models import load_model
    from a3bench.threat import ThreatModel

    out = tmp_path / "k.json"
    with pytest.raises(KeyboardInterrupt):
        evaluate(load_model(MODEL), fmnist_test, ThreatModel("Linf", 0.1), "fgsm,pgd-5", n_examples=N, batch_size=16, probe=False,
                 out=out, progress=_stop_after_fgsm)
    return out, lambda: evaluate(load_model(MODEL), fmnist_test, ThreatModel("Linf", 0.1), "fgsm,pgd-5", n_examples=N,
                                 batch_size=16, probe=False, out=out, resume=True)


def test_a_killed_run_resumes_with_its_points(tmp_path, fmnist_test, whole):
    from a3bench.advfile import read_adv
    from a3bench.eval.verify import verify_record

    out, resume = _killed(tmp_path, fmnist_test)
    kept = read_adv(out.with_name("k.adv.state.pt"))
    fgsm = sum(by == "fgsm" for by in whole.outcomes.broken_by)
    assert len(kept) == fgsm > 0 and set(kept.attacks) == {"fgsm"}
    res = resume()
    assert res.record.adv == whole.record.adv | {"file": "k.adv.pt"}
    assert torch.equal(res.adv.points, whole.adv.points) and torch.equal(res.adv.positions, whole.adv.positions)
    assert not out.with_name("k.adv.state.pt").exists() and not out.with_name("k.state.json").exists()
    assert verify_record(out).passed


def test_a_state_from_before_points_were_kept_says_how_many_lack_one(tmp_path, fmnist_test, whole):
    out, resume = _killed(tmp_path, fmnist_test)
    out.with_name("k.adv.state.pt").unlink()  # as an a3bench that kept no points left it
    res = resume()
    fgsm = sum(by == "fgsm" for by in whole.outcomes.broken_by)
    assert res.record.adv["points"] == res.record.adv["broken"] - fgsm
    assert any("adversarial examples kept for" in note for note in res.record.notes)
    v = cli("verify", out, "--quiet")
    assert v.exit_code == 1 and v.output.count("unverifiable: position") == fgsm, v.output


def test_a_tampered_points_state_is_refused_on_resume(tmp_path, fmnist_test):
    from a3bench.errors import ResultError

    out, resume = _killed(tmp_path, fmnist_test)
    state = torch.load(out.with_name("k.adv.state.pt"), weights_only=True)
    state["points"][0] = (state["points"][0] + 0.5).clamp(0, 1)
    torch.save(state, out.with_name("k.adv.state.pt"))
    with pytest.raises(ResultError, match="outside .* delete it to resume without its points"):
        resume()


def test_no_adv_keeps_none_and_verify_says_so(rec):
    assert rec.with_name("r.adv.pt").is_file()
    res = cli("attack", "--model", MODEL, "--eps", "0.1", "--attacks", "fgsm", "-n", 8, "--no-probe", "--no-adv",
              "--out", rec, "--quiet", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert not rec.with_name("r.adv.pt").exists()  # the earlier run's points are not this record's
    record = json.loads(rec.read_text())
    assert record["adv"] is None and record["compute"]["adv"] == "off (--no-adv)"
    _one_error(cli("verify", rec, "--quiet"), "--no-adv")


def test_a_users_own_file_where_the_adv_file_belongs_is_never_replaced(rec):
    rec.with_name("r.adv.pt").write_text("my own notes\n")
    _one_error(cli("attack", "--model", MODEL, "--eps", "0.1", "--attacks", "fgsm", "-n", 8, "--out", rec, "--quiet"),
               "r.adv.pt exists and is not an a3bench file kept beside a record")
    assert rec.with_name("r.adv.pt").read_text() == "my own notes\n"


@pytest.mark.parametrize("fail_at", [0, 1, 2], ids=["outcomes", "adv", "record"])
def test_a_run_that_fails_half_way_leaves_record_outcomes_and_points_as_they_were(rec, monkeypatch, fail_at):
    """The points are staged with the outcomes and the record: a full disk while writing any
    of them leaves all three as they were."""
    import errno

    from a3bench.advfile import read_adv
    from a3bench.results import verify_run_ids, write_run
    from a3bench.schema import read_outcomes, read_record

    record, outcomes, adv = read_record(rec), read_outcomes(rec.with_name("r.outcomes.json")), read_adv(rec.with_name("r.adv.pt"))
    before = {p.name: p.read_bytes() for p in rec.parent.iterdir()}
    outcomes.robust[0] = not outcomes.robust[0]  # another run: another run id
    outcomes.clean_correct = outcomes.broken_by = None
    real, calls = os.fsync, []

    def full(fd):
        calls.append(fd)
        if len(calls) > fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        write_run(rec, record, outcomes, adv=adv)
    monkeypatch.setattr(os, "fsync", real)
    assert {p.name: p.read_bytes() for p in rec.parent.iterdir()} == before and verify_run_ids(rec) == []
