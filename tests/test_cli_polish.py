"""CLI details users ran into: -h, names never cut in 80-column logs, time left on progress
bars, sweep-eps --out x.json, A3BENCH_OFFLINE and robustbench: models."""

from __future__ import annotations

import io
import re
import json
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.schema import AttackRecord
from tests.conftest import needs_fmnist
from tests.test_report import make_record

runner = CliRunner()
LONG = "pgd-50:loss=logit-scaled"


def log_console(width: int = 80) -> Console:
    """What rich sees in a CI log: not a terminal, 80 columns."""
    return Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)


@pytest.mark.parametrize("command", ["", "train", "attack", "sweep-eps", "models", "report", "check", "verify"])
def test_dash_h_is_help(command: str):
    args = [command, "-h"] if command else ["-h"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output and "--help" in res.output


def test_attack_table_keeps_names_whole_at_80_columns():
    from a3bench.cli.attack_cli import print_summary

    rec = make_record("m", 90.0, 40.0)
    rec.per_attack += [AttackRecord(LONG, 39.0, broken=1, n_attacked=40, seconds=4.2, forward_passes=2000, backward_passes=2000),
                       AttackRecord("pgd-100:loss=dlr:restarts=5", 38.0, broken=1, n_attacked=39)]
    rec.eps_text = "8/255"
    con = log_console()
    print_summary(con, rec)
    text = con.file.getvalue()
    assert LONG in text and "pgd-100:loss=dlr:restarts=5" in text  # never "pgd-50:loss=c / w"
    assert "…" not in text


def test_print_table_in_a_terminal_keeps_its_width():
    from a3bench.cli.common import print_table

    table = Table()
    table.add_column("name", no_wrap=True)
    table.add_column("x")
    table.add_row("a" * 70, "b " * 40)
    con = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    print_table(con, table)
    lines = con.file.getvalue().splitlines()
    assert max(len(ln) for ln in lines) <= 80 and any("a" * 70 in ln for ln in lines)


def test_models_lists_zoo_names_whole():
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0, res.output
    for name in ("smallcnn.a3_attenuate_only_fmnist", "smallcnn.a3_joint_fmnist", "smallcnn.pgdat_fmnist"):
        assert name in res.output
    assert "…" not in res.output


@pytest.mark.parametrize("name", ["AttackDrawer", "SweepDrawer", "AuditDrawer"])
def test_progress_shows_time_remaining_in_a_terminal_and_in_a_log(name: str):
    """A bar per stage with the time left in it and in the whole run; outside a terminal,
    plain lines with the same estimates (never a silent log)."""
    import io

    from rich.console import Console

    from a3bench.cli import progress
    from a3bench.cli.progress import Step

    for terminal in (True, False):
        con = Console(file=io.StringIO(), width=160, force_terminal=terminal, color_system=None)
        drawer = getattr(progress, name)(con)
        try:
            progress.Drawer.__call__(drawer, Step("k", "apgd-t", 10, 100, "robust 70/100", eta_stage=125.0, eta_total=7200.0, event="start"))
            progress.Drawer.__call__(drawer, Step("k", "apgd-t", 100, 100, "robust 69/100", eta_stage=0.0, eta_total=7000.0, event="end"))
        finally:
            drawer.close()
        out = con.file.getvalue()
        assert "apgd-t" in out and ("2.0 h" in out or "1.9 h" in out), out
        if not terminal:
            assert "left 2 min" in out and "done" in out


@needs_fmnist
def test_sweep_out_accepts_a_json_path(tmp_path: Path):
    out = tmp_path / "sub" / "sweep.json"
    res = runner.invoke(app, ["sweep-eps", "--model", "smallcnn.pgdat_fmnist", "--eps", "0,0.1", "--attacks", "fgsm",
                              "-n", "8", "--quiet", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file()  # a file, not a folder named sweep.json/
    data = json.loads(out.read_text())
    assert data["model"] == "smallcnn.pgdat_fmnist" and (out.parent / data["plot"]).is_file()
    assert (out.parent / "sweep.sweep.md").is_file() and "knows sweeps by the name *.sweep.json" in " ".join(res.output.split())
    # A folder of that name is refused before any work, with one line.
    (tmp_path / "d.json").mkdir()
    res = runner.invoke(app, ["sweep-eps", "--model", "smallcnn.pgdat_fmnist", "--eps", "0,0.1", "-n", "8", "--out", str(tmp_path / "d.json")])
    assert res.exit_code == 2 and res.output.startswith("error:") and "is a folder" in res.output


def test_offline_stops_robustbench_downloads(tmp_path: Path, monkeypatch):
    import a3bench._compat
    from a3bench.errors import ModelSpecError
    from a3bench.models import load_model

    def no_robustbench():
        raise AssertionError("robustbench was imported: a download could start")

    monkeypatch.setattr(a3bench._compat, "import_robustbench", no_robustbench)
    monkeypatch.setenv("A3BENCH_OFFLINE", "1")
    with pytest.raises(ModelSpecError, match="A3BENCH_OFFLINE is set and its weights are not on disk"):
        load_model("robustbench:Standard", dataset="cifar10", robustbench_dir=str(tmp_path))
    res = runner.invoke(app, ["attack", "--model", "robustbench:Carmon2019Unlabeled", "-n", "4"])
    assert res.exit_code == 2 and res.output.startswith("error:") and "A3BENCH_OFFLINE" in res.output
    # With the weights on disk, offline is no obstacle: the loader goes on to RobustBench.
    (tmp_path / "cifar10" / "Linf").mkdir(parents=True)
    (tmp_path / "cifar10" / "Linf" / "Standard.pt").write_bytes(b"")
    with pytest.raises(AssertionError, match="robustbench was imported"):
        load_model("robustbench:Standard", dataset="cifar10", robustbench_dir=str(tmp_path))


# --------------------------------------------------------------------------- discoverability (issue 22, item 10)

COMMANDS = ["", "train", "attack", "attacks", "models", "report", "check", "sweep-eps", "audit", "verify"]


def _words(text: str) -> list[str]:
    """The words of rendered help, box drawing removed (a word folded over two lines or cut
    with '…' is no longer one of them)."""
    return re.sub(r"[│╭╮╰╯─]", " ", text).split()


def _help_texts(command: str) -> list[str]:
    """Every help text the command's --help renders: its parameters' (the suite list of
    ``attack`` as the registry gives it) and its own first line."""
    import typer.main

    from a3bench.cli.attacks_cli import suites_help

    group = typer.main.get_command(app)
    cmd = group.commands[command] if command else group
    texts = [suites_help() if command == "attack" and p.name == "suite" else p.help for p in cmd.params]
    return [t for t in texts if t]


@pytest.mark.parametrize("columns", [None, "80"], ids=["log", "80-column terminal"])
@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_never_cut(command: str, columns: str | None):
    """In a log or a pipe (no terminal, no COLUMNS) rich would assume 80 columns and cut long
    words with '…'; help gets its full width there. At 80 columns no word is too long to fit."""
    env = {"COLUMNS": columns} if columns else {}
    res = runner.invoke(app, ([command] if command else []) + ["--help"], env=env)
    assert res.exit_code == 0, res.output
    shown = set(_words(res.output))
    missing = [w for text in _help_texts(command) for w in text.split() if w not in shown]
    assert missing == []


@pytest.mark.parametrize("command", COMMANDS)
def test_flags_show_no_value_type(command: str):
    res = runner.invoke(app, ([command] if command else []) + ["--help"])
    assert res.exit_code == 0
    assert "<bool>" not in res.output and "BOOLEAN" not in res.output


def test_attacks_lists_every_attack_and_suite_one_line_each():
    from a3bench.attacks.registry import list_attacks, list_suites

    res = runner.invoke(app, ["attacks"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    for name, help_text in list_attacks().items():
        (line,) = [ln for ln in lines if ln.split()[:1] == [name]]
        assert help_text in line
    for name, (names, help_text) in list_suites().items():
        (line,) = [ln for ln in lines if ln.split()[:1] == [name]]
        assert f"{', '.join(names)}  — {help_text}" in line
    assert "quick (default)" in res.output


def test_attack_help_lists_what_each_suite_runs():
    from a3bench.attacks.registry import list_suites

    res = runner.invoke(app, ["attack", "--help"])
    shown = " ".join(_words(res.output))
    for name, (names, _) in list_suites().items():
        assert re.search(rf"\b{name}( \(default\))?: {re.escape(', '.join(names))}[;.]", shown), name
