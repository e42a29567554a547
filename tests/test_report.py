"""`a3bench report`: leaderboards parsed back, per-model reports, the RobustBench export.

Records are built with ResultRecord and written to tmp_path: no model, no training."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.schema import AttackRecord, Flag, ResultRecord, default_result_path, outcomes_path, write_record
from a3bench.io import write_json_atomic
from a3bench.report.generate import generate_report
from a3bench.report.leaderboard import COLUMNS
from a3bench.report.load import load_results
from a3bench.schema import read_outcomes, read_sweep
from a3bench.report.robustbench import model_info

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


AA = "autoattack"


def full_cascade(clean: float, robust: float) -> list[AttackRecord]:
    """AutoAttack standard (all four components ran), then an adaptive attack."""
    return [
        AttackRecord("apgd-ce", robust + 3, broken=int(clean - robust - 3), n_attacked=int(clean), group=AA),
        AttackRecord("apgd-t", robust + 1, broken=2, n_attacked=int(robust + 3), group=AA),
        AttackRecord("fab-t", robust + 1, broken=0, n_attacked=int(robust + 1), group=AA),
        AttackRecord("square", robust + 1, broken=0, n_attacked=int(robust + 1), group=AA, kind="black-box"),
        AttackRecord("a3-adaptive", robust, broken=1, n_attacked=int(robust + 1)),
    ]


def weak_cascade(clean: float, robust: float) -> list[AttackRecord]:
    """PGD-20 alone: weaker than AutoAttack."""
    return [AttackRecord("pgd-20", robust, broken=int(clean - robust), n_attacked=int(clean))]


def make_record(name: str = "m", clean: float = 90.0, robust: float = 40.0, *, dataset: str = "cifar10", norm: str = "Linf", eps: float = 8 / 255,
                weak: bool = False, **kw) -> ResultRecord:
    """A record of a full evaluation (AutoAttack standard + an adaptive attack); ``weak``: PGD-20 only."""
    n = kw.pop("n_examples", 100)
    aa = kw.pop("autoattack_acc", None if weak else robust + 1.0)
    return ResultRecord(
        name=kw.pop("title", f"Paper of {name}"),
        dataset=dataset,
        eps=eps,
        clean_acc=clean,
        robust_acc=robust,
        autoattack_acc=aa,
        norm=norm,
        eps_text="8/255" if abs(eps - 8 / 255) < 1e-12 else "",
        n_examples=n,
        seed=0,
        suite=kw.pop("suite", "quick" if weak else "full"),
        attacks=["pgd-20"] if weak else ["autoattack", "a3-adaptive"],
        per_attack=kw.pop("per_attack", None) or (weak_cascade if weak else full_cascade)(clean, robust),
        robust_acc_ci=[robust - 9.0, robust + 9.5],
        compute={"seconds": 12.0, "forward_passes": 250000, "backward_passes": 240000},
        model=kw.pop("model", {"spec": f"zoo:{name}", "parameters": 1_234_567}),
        **kw,
    )


def write(root: Path, name: str, record: ResultRecord) -> Path:
    path = default_result_path(record.dataset, record.norm, name, root)
    write_record(path, record)
    return path


def unescape(cell: str) -> str:
    """A markdown cell as it reads: brackets and pipes unescaped, links left as they are."""
    return re.sub(r"\\([\[\]|])", r"\1", cell)


def parse_md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every GitHub-markdown table in ``text`` as (headers, rows)."""
    tables, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1]):
            split = lambda ln: [unescape(c.strip()) for c in re.split(r"(?<!\\)\|", ln.strip())[1:-1]]
            headers, rows, i = split(lines[i]), [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(split(lines[i]))
                i += 1
            tables.append((headers, rows))
        else:
            i += 1
    return tables


def boards(text: str) -> list[list[dict[str, str]]]:
    """Every leaderboard table of a markdown page, each row a dict by column name."""
    return [[dict(zip(h, r)) for r in rows] for h, rows in parse_md_tables(text) if h == COLUMNS]


def link_text(cell: str) -> str:
    """A cell with its links replaced by their text."""
    return re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", cell)


def worst(row: dict) -> float:
    return float(row["Worst case (%) [95% CI]"].split()[0])


@pytest.fixture()
def results_dir(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write(root, "weak", make_record("weak", 95.0, 10.0, link="https://example.org/weak"))
    strong = make_record(
        "strong",
        85.0,
        55.0,
        reported=60.0,
        architecture="WideResNet-28-10",
        a3={"n_layers": 2, "n_parameters": 1000, "config": {"mode": "joint", "k": 4}},
        footnote="Trained | with PGD.",
    )
    write(root, "strong", strong)
    masked = make_record(
        "masked",
        80.0,
        70.0,
        flags=[Flag("zero-gradients", "error", "12 % of inputs have zero gradient", 0.12)],
        verdict="unreliable",
        verdict_reason="zero gradients",
    )
    mp = write(root, "masked", masked)
    # Things a scan must skip.
    write_json_atomic(outcomes_path(mp), {"indices": list(range(4)), "labels": [0, 1, 2, 3], "clean_correct": [True, True, True, False], "broken_by": [None, "apgd-ce", "apgd-ce", None]})
    write_json_atomic(mp.with_name("masked.state.json"), {"whatever": 1})
    # Another threat model: its own table.
    write(root, "weak", make_record("weak", 95.0, 30.0, norm="L2", eps=0.5))
    return root


def test_leaderboard_columns_and_sort(results_dir: Path, tmp_path: Path):
    out = tmp_path / "LB.md"
    res = runner.invoke(app, ["report", str(results_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    tables = parse_md_tables(text)
    assert len(tables) == 2  # (cifar10, Linf, 8/255) and (cifar10, L2, 0.5)
    headers, rows = next(t for t in tables if len(t[1]) == 3)
    assert headers == COLUMNS
    col = {h: i for i, h in enumerate(headers)}
    worst = [float(r[col["Worst case (%) [95% CI]"]].split()[0]) for r in rows]
    assert worst == sorted(worst, reverse=True) == [70.0, 55.0, 10.0]
    # 70 [61.0, 79.5] and 55 [46.0, 64.5] overlap: the data cannot order them; 10 [1.0, 19.5] is third for sure.
    assert [r[col["Rank"]] for r in rows] == ["1–2", "1–2", "3"]
    by_model = {re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", r[col["Model"]]).split(" · ")[0]: r for r in rows}
    assert set(by_model) == {"masked", "strong", "weak"}
    assert by_model["masked"][col["Verdict"]] == "**unreliable**"
    assert "zero-gradients" in by_model["masked"][col["Flags"]] and "diagnostics.md#zero-gradients" in by_model["masked"][col["Flags"]]
    assert by_model["strong"][col["Reported (%)"]] == "60.00 (Δ -5.00)"
    assert by_model["strong"][col["Audit (%)"]] == "—"  # no audit ran
    assert by_model["strong"][col["Clean (%)"]] == "85.00"
    assert by_model["strong"][col["AutoAttack (%)"]] == "56.00"
    assert by_model["weak"][col["Model"]] == "[weak](reports/cifar10_Linf_weak.md) · [paper](https://example.org/weak)"
    assert by_model["weak"][col["Suite"]] == "full" and by_model["weak"][col["n"]] == "100"  # suite and n per row
    assert "- strong: Trained \\| with PGD." in text  # footnotes sit below the table, pipes escaped
    # Narrow enough for GitHub: architecture, A3, parameters and compute are in the model's report.
    assert not {"Architecture", "A3", "Params", "Compute / example"} & set(headers)
    report = (tmp_path / "reports" / "cifar10_Linf_strong.md").read_text()
    summary = dict(r for h, rows in parse_md_tables(report) if h == ["", ""] for r in rows)
    assert summary["A3"].startswith("A3×2 (mode=joint") and summary["Parameters"] == "1.23M"
    assert summary["Compute per example"] == "2.5k fwd / 2.4k bwd / 120 ms" and summary["Total time"] == "12 s"
    # tabulate's pipe format: numbers right-aligned on GitHub.
    align = next(ln for ln in text.splitlines() if re.fullmatch(r"\|[:|-]+\|", ln))
    marks = ["right" if c.endswith(":") and not c.startswith(":") else "left" if c.startswith(":") else "?" for c in align.strip("|").split("|")]
    assert marks == ["right", "left", "left", "right", "right", "right", "right", "left", "left", "right", "right"]


def test_per_model_reports(results_dir: Path, tmp_path: Path):
    out = tmp_path / "site" / "LEADERBOARD.md"
    generate_report([results_dir], out)
    reports = sorted(p.name for p in (out.parent / "reports").iterdir())
    assert reports == ["cifar10_L2_weak.md", "cifar10_Linf_masked.md", "cifar10_Linf_strong.md", "cifar10_Linf_weak.md"]
    lb = out.read_text()
    assert "(reports/cifar10_Linf_masked.md)" in lb
    text = (out.parent / "reports" / "cifar10_Linf_masked.md").read_text()
    tables = parse_md_tables(text)
    attack_table = next(rows for h, rows in tables if h[:2] == ["Attack", "Status"])
    assert [r[0] for r in attack_table] == ["apgd-ce", "apgd-t", "fab-t", "square", "a3-adaptive"]
    breakers = next(rows for h, rows in tables if h[:3] == ["Attack", "Broken (record)", "Broken (outcomes)"])
    assert breakers[0] == ["apgd-ce", "7", "2", "8.8"]  # record: 7 of 80 clean-correct; outcomes file: 2
    assert "covers 4 examples, the record 100" in text  # a stale outcomes file is called out
    assert "**zero-gradients** (error)" in text
    # The docs link is relative to the report's folder, so it works wherever the tree is viewed.
    href = re.search(r"\[What this means\]\(([^)#]+)#zero-gradients\)", text).group(1)
    assert ((out.parent / "reports" / href).resolve()) == (Path.cwd() / "docs" / "diagnostics.md").resolve()


def test_sweep_in_report(results_dir: Path, tmp_path: Path):
    """A sweep of the record's evaluation (same folder, model, n and eps) is shown, with what
    it was run with; one in another folder or on another n is not (issue 22 item 3)."""
    folder = results_dir / "cifar10" / "Linf"
    (folder / "strong.png").write_bytes(b"\x89PNG\r\n\x1a\n fake")
    sweep = {"schema_version": 1, "model": "strong", "dataset": "cifar10", "norm": "Linf", "eps": [0.0, 8 / 255, 0.5], "n_examples": 100,
             "curves": {"pgd-20": [85.0, 40.0, 0.0], "a3-adaptive": [85.0, 30.0, None]}, "plot": "strong.png", "flags": []}
    write_json_atomic(folder / "strong.sweep.json", sweep)
    elsewhere = results_dir / "sweeps"
    elsewhere.mkdir()
    write_json_atomic(elsewhere / "weak.sweep.json", {**sweep, "model": "weak", "plot": None})  # a scratch sweep in another folder
    write_json_atomic(folder / "masked.sweep.json", {**sweep, "model": "masked", "n_examples": 50, "plot": None})  # another n
    out = tmp_path / "LB.md"
    res = runner.invoke(app, ["report", str(results_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "reports" / "cifar10_Linf_strong.md").read_text()
    assert "![robust accuracy against eps, one curve per attack](../results/cifar10/Linf/strong.png)" in text
    curve = next(rows for h, rows in parse_md_tables(text) if h == ["eps", "pgd-20", "a3-adaptive"])
    assert curve == [["0", "85.00", "85.00"], ["0.0313725", "40.00", "30.00"], ["0.5", "0.00", "—"]]
    assert "pgd-20, a3-adaptive on 100 examples, seed 0 (cascade)" in text  # what the sweep was run with
    # The sweep is not a record; the scratch sweep and the 50-example one are not shown, and a warning says why.
    assert "eps-curve" not in text.lower() or "sweep" in text
    for name in ("weak", "masked"):
        assert "against eps" not in (tmp_path / "reports" / f"cifar10_Linf_{name}.md").read_text()
    output = " ".join(res.output.split())
    assert "masked.sweep.json not shown with" in output and "another number of examples (50, the record 100)" in output


def test_html_format(results_dir: Path, tmp_path: Path):
    """The site itself is tested in tests/test_site.py (in a browser); here: the CLI writes it."""
    out = tmp_path / "site"
    res = runner.invoke(app, ["report", str(results_dir), "--format", "html", "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('<table class="board"') == 2
    assert '<a class="ext" href="https://example.org/weak" rel="noopener noreferrer">paper</a>' in page
    assert '<a href="models/cifar10_Linf_weak.html">weak</a>' in page and (out / "models" / "cifar10_Linf_weak.html").is_file()
    assert "Worst case (%) [95% CI]" in page


def _robustbench_read(models_folder: Path, dataset: str, threat_model: str) -> list[dict]:
    """RobustBench's own reading of model_info files (robustbench.utils.list_available_models
    and get_leaderboard_latex), with its enums, ACC_FIELDS and get_key."""
    from a3bench._compat import import_robustbench

    import_robustbench()
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    from robustbench.utils import ACC_FIELDS, get_key

    ds, tm = BenchmarkDataset(dataset), ThreatModel(threat_model)
    acc_field = ACC_FIELDS[tm]
    out = []
    for path in sorted((models_folder / ds.value / tm.value).glob("*.json")):
        d = json.loads(path.read_text())
        d["venue"] = "Unpublished" if d["venue"] == "" else d["venue"]
        for k in acc_field:
            if k in d:
                d[k] = float(d[k]) / 100
        d["clean_acc"] = float(d["clean_acc"]) / 100
        "{} {} {} {} {}".format(d["name"], d["link"], d["architecture"], d["venue"], d["authors"])
        d["_key"] = get_key(d, acc_field)
        d["_additional_data"] = "Y" if d["additional_data"] else "N"
        d["_stem"] = path.stem
        out.append(d)
    return sorted(out, key=lambda d: -d["_key"])


def test_robustbench_export_round_trip(results_dir: Path, tmp_path: Path):
    res = runner.invoke(app, ["report", str(results_dir), "--format", "robustbench", "--out", str(tmp_path / "rb")])
    assert res.exit_code == 0, res.output
    folder = tmp_path / "rb" / "model_info"
    strong = json.loads((folder / "cifar10" / "Linf" / "strong.json").read_text())
    # RobustBench's field types: accuracies and eps are strings, flags are JSON types.
    assert strong["clean_acc"] == "85.0" and strong["autoattack_acc"] == "56.0" and strong["external"] == "55.0"
    assert strong["eps"] == "8/255" and strong["reported"] == "60.0"
    assert strong["additional_data"] is False and strong["number_forward_passes"] == 1 and strong["unreliable"] is False
    assert strong["dataset"] == "cifar10" and strong["architecture"] == "WideResNet-28-10"
    read = _robustbench_read(folder, "cifar10", "Linf")
    assert [d["_stem"] for d in read] == ["masked", "strong", "weak"]  # ranked as our leaderboard
    loaded = {r.model_id: r for r in load_results([results_dir])[0] if r.record.norm == "Linf"}
    for d in read:
        rec = loaded[d["_stem"]].record
        assert d["_key"] == pytest.approx(rec.robust_acc / 100)  # RobustBench ranks by our worst case
        assert d["clean_acc"] == pytest.approx(rec.clean_acc / 100)
        assert d["name"] == rec.name and d["dataset"] == rec.dataset
    assert json.loads((folder / "cifar10" / "Linf" / "masked.json").read_text())["unreliable"] is True
    assert (folder / "cifar10" / "L2" / "weak.json").is_file()
    # The export is never read back as records by a later report over the same tree.
    assert len(load_results([tmp_path])[0]) == 4


def test_robustbench_no_external_when_autoattack_is_worst():
    rec = make_record("x", 90.0, 50.0, autoattack_acc=50.0)
    from a3bench.report.load import LoadedResult

    info = model_info(LoadedResult(rec, Path("x.json")))
    assert "external" not in info and info["autoattack_acc"] == "50.0"
    rec2 = make_record("y", 90.0, 50.0, autoattack_acc=None)
    info2 = model_info(LoadedResult(rec2, Path("y.json")))
    assert "autoattack_acc" not in info2 and info2["external"] == "50.0"


def test_robustbench_warns_for_other_datasets(tmp_path: Path):
    root = tmp_path / "results"
    write(root, "f", make_record("f", dataset="fmnist", eps=0.1))
    res = runner.invoke(app, ["report", str(root), "--format", "robustbench", "--out", str(tmp_path / "rb")])
    assert res.exit_code == 0
    assert "no 'fmnist' leaderboard" in res.output
    assert json.loads((tmp_path / "rb/model_info/fmnist/Linf/f.json").read_text())["eps"] == "0.1"


def test_empty_folder(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert res.exit_code == 1
    assert "no result records found" in res.output and "run `a3bench attack` first" in res.output


def test_invalid_record_exits_2(tmp_path: Path):
    bad = tmp_path / "results" / "cifar10" / "Linf"
    bad.mkdir(parents=True)
    (bad / "broken.json").write_text("{not json")
    res = runner.invoke(app, ["report", str(tmp_path / "results")])
    assert res.exit_code == 2 and "not valid JSON" in res.output
    (bad / "broken.json").write_text(json.dumps({"schema_version": 99}))
    res = runner.invoke(app, ["report", str(tmp_path / "results")])
    assert res.exit_code == 2 and "schema_version" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_outcomes_reader_is_defensive(tmp_path: Path):
    p = tmp_path / "a.outcomes.json"
    write_json_atomic(p, {"robust": [True, False], "threat": {"norm": "Linf"}})
    o = read_outcomes(p)
    assert o.robust == [True, False] and o.indices is None and o.broken_counts() == {}
    write_json_atomic(p, {"clean_correct": [True, False, True], "broken_by": [None, None, "apgd-ce"], "indices": [5, 6, 7], "seed": 0})
    o = read_outcomes(p)
    assert o.robust == [True, False, False] and o.broken_counts() == {"apgd-ce": 1}
    write_json_atomic(p, {"indices": [1, 2]})
    with pytest.raises(Exception, match="needs 'robust'"):
        read_outcomes(p)


def test_sweep_reader_rejects_bad_curves(tmp_path: Path):
    p = tmp_path / "m.sweep.json"
    write_json_atomic(p, {"schema_version": 1, "model": "m", "dataset": "d", "norm": "Linf", "eps": [0.1, 0.2], "curves": {"pgd": [1.0]}, "plot": None, "flags": []})
    with pytest.raises(Exception, match="one value per eps"):
        read_sweep(p)


def test_report_over_repository_results(tmp_path: Path):
    """The records the project ships (results/) must all be readable and reportable."""
    from a3bench.report.load import find_json

    root = REPO / "results"
    if not root.is_dir() or not find_json([root]):
        pytest.skip("no result records in results/ yet")
    out = generate_report([root], tmp_path / "LEADERBOARD.md")
    assert out.results and out.leaderboard.is_file()
    tables = parse_md_tables(out.leaderboard.read_text())
    for headers, rows in tables:
        assert headers == COLUMNS
        worst = [float(r[COLUMNS.index("Worst case (%) [95% CI]")].split()[0]) for r in rows]
        assert worst == sorted(worst, reverse=True)


def test_several_records_of_one_model_show_the_best_known(tmp_path: Path, monkeypatch):
    """`report results/ runs/`: a user's own run of a bundled model and the committed record
    are one row, with the model's best known (lowest) worst case, as RobustBench does; the
    other record is listed behind it, labelled with its folder (issue 22 item 1)."""
    monkeypatch.chdir(tmp_path)
    write(Path("results"), "m", make_record("m", 90.0, 40.0))
    write(Path("runs"), "m", make_record("m", 90.0, 20.0))
    write(Path("results"), "other", make_record("other", 90.0, 30.0))
    res = runner.invoke(app, ["report", "results", "runs", "results", "--out", "LB.md"])
    assert res.exit_code == 0, res.output
    assert "shown beside it as 'm (runs/cifar10/Linf)'" in " ".join(res.output.split())
    text = (tmp_path / "LB.md").read_text()
    (rows,) = boards(text)
    assert [link_text(r["Model"]) for r in rows] == ["other", "m (runs/cifar10/Linf)"]  # results/ read once, though given twice
    assert [worst(r) for r in rows] == [30.0, 20.0]
    assert "- m (runs/cifar10/Linf): also [m](reports/cifar10_Linf_m.md), worst case 40.00 \\[31.0, 49.5\\] % (full, n = 100, results/cifar10/Linf)" in text
    assert (tmp_path / "reports" / "cifar10_Linf_m__runs_cifar10_Linf_.md").is_file() and (tmp_path / "reports" / "cifar10_Linf_m.md").is_file()


def test_weaker_evaluations_are_listed_apart(tmp_path: Path):
    """A PGD-20-only row of a masked model (76 %) must not rank above AutoAttack rows, nor
    beside them: it is listed apart, not green, with its suite (issue 22 item 1). A model
    with both keeps its full evaluation in the ranking, the weak record behind it."""
    root = tmp_path / "results"
    write(root, "masked", make_record("masked", 90.0, 76.0, weak=True, model={"spec": "masked", "sha256": "a" * 64}))
    write(tmp_path / "runs", "masked", make_record("masked", 90.0, 47.0, model={"spec": "masked", "sha256": "a" * 64}))
    write(root, "honest", make_record("honest", 90.0, 50.0))
    write(root, "quick", make_record("quick", 90.0, 80.0, weak=True))
    out = tmp_path / "LB.md"
    res = runner.invoke(app, ["report", str(root), str(tmp_path / "runs"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    ranked, apart = boards(text)
    assert [link_text(r["Model"]).split(" (")[0] for r in ranked] == ["honest", "masked"]
    assert [worst(r) for r in ranked] == [50.0, 47.0] and all(r["Suite"] == "full" for r in ranked)
    assert [link_text(r["Model"]) for r in apart] == ["quick"] and apart[0]["Rank"] == "—"
    assert apart[0]["Suite"] == "quick (no full AA)" and apart[0]["Verdict"] == "not-evaluated-fully" and apart[0]["n"] == "100"
    assert "Not ranked: evaluated with less than AutoAttack" in text
    assert "also [masked](reports/cifar10_Linf_masked.md), worst case 76.00" in text  # the weak record, behind the full one
    # --rank-all ranks everything together: the weak rows join the table.
    runner.invoke(app, ["report", str(root), str(tmp_path / "runs"), "--out", str(out), "--rank-all"])
    (everything,) = boards(out.read_text())
    assert [worst(r) for r in everything] == [80.0, 50.0, 47.0]


def test_record_and_outcomes_disagree(tmp_path: Path):
    rec = make_record("m", 80.0, 70.0, n_examples=4)
    p = write(tmp_path / "results", "m", rec)
    write_json_atomic(outcomes_path(p), {"clean_correct": [True] * 4, "broken_by": [None, None, None, "apgd-t"]})
    generate_report([tmp_path / "results"], tmp_path / "LB.md")
    text = (tmp_path / "reports" / "cifar10_Linf_m.md").read_text()
    assert "disagree on who broke what" in text


def test_model_links_relative_to_the_page(tmp_path, monkeypatch):
    """A card's ``link: model_zoo/<name>`` is relative to the working directory (the repo
    root); the leaderboard in results/ and the reports in results/reports/ must reach it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model_zoo" / "zoo_m").mkdir(parents=True)
    write(tmp_path / "results", "zoo_m", make_record("zoo_m", link="model_zoo/zoo_m"))
    write(tmp_path / "results", "web_m", make_record("web_m", robust=30.0, link="https://example.org/paper"))
    write(tmp_path / "results", "gone_m", make_record("gone_m", robust=20.0, link="model_zoo/not_here"))
    out = generate_report(["results"], "results/LEADERBOARD.md")
    board = out.leaderboard.read_text()
    assert "(../model_zoo/zoo_m)" in board and "(https://example.org/paper)" in board
    (rows,) = boards(board)
    assert next(r["Model"] for r in rows if "gone_m" in r["Model"]) == "[gone_m](reports/cifar10_Linf_gone_m.md)"  # no dead link
    assert "not_here" not in board
    report = (tmp_path / "results" / "reports" / "cifar10_Linf_zoo_m.md").read_text()
    assert "(../../model_zoo/zoo_m)" in report
    assert (tmp_path / "results" / "reports" / "../../model_zoo/zoo_m").resolve() == (tmp_path / "model_zoo" / "zoo_m").resolve()


# --------------------------------------------------------------------------- RobustBench's published rows

PUBLISHED = REPO / "tests" / "data" / "robustbench_model_info"  # RobustBench's model_info, MIT (LICENSE there)
SHARED_PUBLISHED = REPO.parent / "shared" / "robustbench_model_info"


def _rb_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/*.json"))


def test_every_published_entry_loads():
    from a3bench.report.robustbench import read_published

    entries = read_published(PUBLISHED)
    assert len(entries) == len(_rb_files(PUBLISHED)) == 236
    by_threat = {}
    for e in entries:
        by_threat[(e.dataset, e.threat_model)] = by_threat.get((e.dataset, e.threat_model), 0) + 1
        assert 0 <= e.clean_acc <= 100
        if e.threat_model in ("Linf", "L2"):
            assert e.robust_acc is not None and 0 <= e.robust_acc <= e.clean_acc + 1e-9 and e.eps > 0
    assert by_threat[("cifar10", "Linf")] == 99 and by_threat[("cifar10", "L2")] == 21 and by_threat[("imagenet", "Linf")] == 30
    carmon = next(e for e in entries if e.model_id == "Carmon2019Unlabeled")
    assert (carmon.clean_acc, carmon.autoattack_acc, carmon.reported, carmon.venue) == (89.69, 59.53, 62.5, "NeurIPS 2019")
    salman = next(e for e in entries if e.model_id == "Salman2020Do_R50")
    assert salman.reported is None  # RobustBench writes "" for an unknown number
    engstrom = next(e for e in entries if e.model_id == "Engstrom2019Robustness" and e.dataset == "imagenet")
    assert engstrom.venue == "GitHub, Oct 2019"  # RobustBench's "<br>" is not HTML here
    # The folder of a RobustBench checkout (with model_info/ inside) is accepted too.
    assert len(read_published(PUBLISHED.parent if (PUBLISHED.parent / "model_info").is_dir() else PUBLISHED)) == 236


@pytest.mark.skipif(not SHARED_PUBLISHED.is_dir(), reason="the project's shared/robustbench_model_info is not beside this checkout")
def test_committed_copy_matches_shared_files():
    from a3bench.report.robustbench import read_published

    assert [p.relative_to(SHARED_PUBLISHED) for p in _rb_files(SHARED_PUBLISHED)] == [p.relative_to(PUBLISHED) for p in _rb_files(PUBLISHED)]
    assert len(read_published(SHARED_PUBLISHED)) == 236


def test_export_has_every_field_robustbench_files_have(results_dir: Path, tmp_path: Path):
    """Fields every published Linf/L2 entry has are in every export; the export adds none
    RobustBench does not know; each field has RobustBench's JSON type."""
    files = [json.loads(p.read_text()) for p in _rb_files(PUBLISHED) if p.parent.name in ("Linf", "L2")]
    always = set.intersection(*(set(d) for d in files))
    known = set.union(*(set(d) for d in files))
    types = {k: {type(d[k]) for d in files if k in d and d[k] is not None} for k in known}
    roots = [results_dir] + ([REPO / "results"] if (REPO / "results").is_dir() else [])
    for root in roots:
        out = tmp_path / root.name
        res = runner.invoke(app, ["report", str(root), "--format", "robustbench", "--out", str(out)])
        assert res.exit_code == 0, res.output
        exported = [json.loads(p.read_text()) for p in (out / "model_info").rglob("*.json")]
        assert exported
        for info in exported:
            assert always <= set(info), always - set(info)
            assert set(info) <= known, set(info) - known
            for k, v in info.items():
                assert type(v) in types[k], (k, v)
    strong = json.loads((tmp_path / "results" / "model_info" / "cifar10" / "Linf" / "strong.json").read_text())
    weak = json.loads((tmp_path / "results" / "model_info" / "cifar10" / "Linf" / "weak.json").read_text())
    assert strong["reported"] == "60.0" and weak["reported"] == ""  # "" as RobustBench's files without one
    assert weak["link"] == "https://example.org/weak" and strong["link"] == ""


def test_export_link_is_a_url_or_empty():
    from a3bench.report.load import LoadedResult

    for link, expected in (("https://arxiv.org/abs/1", "https://arxiv.org/abs/1"), ("model_zoo/x", ""), ("javascript:alert(1)", ""), (None, "")):
        info = model_info(LoadedResult(make_record("x", link=link), Path("x.json")))
        assert info["link"] == expected


def test_published_rows_merge_into_one_table(tmp_path: Path):
    root = tmp_path / "results"
    write(root, "mine", make_record("mine", 90.0, 60.0))  # 60 [51.0, 69.5]
    write(root, "other", make_record("other", 80.0, 40.0, dataset="cifar100"))
    write(root, "fm", make_record("fm", 80.0, 40.0, dataset="fmnist", eps=0.1))
    out = tmp_path / "LB.md"
    res = runner.invoke(app, ["report", str(root), "--out", str(out), "--robustbench", str(PUBLISHED)])
    assert res.exit_code == 0, res.output
    assert "RobustBench publishes no fmnist Linf eps 0.1 entry" in " ".join(res.output.split())
    text = out.read_text()
    tables = parse_md_tables(text)
    assert len(tables) == 3
    c10 = next(rows for rows in boards(text) if any("mine" in r["Model"] for r in rows))
    assert len(c10) == 1 + 99  # the 93 entries at "8/255" and the 6 RobustBench writes as "0.031"
    assert [worst(r) for r in c10] == sorted((worst(r) for r in c10), reverse=True)
    mine = next(r for r in c10 if r["Model"].startswith("[mine]"))
    assert mine["Verdict"] == "reliable" and "published" not in mine["Model"]
    carmon = next(r for r in c10 if "Carmon2019Unlabeled" in r["Model"])
    assert carmon["Model"] == "[Carmon2019Unlabeled](https://arxiv.org/abs/1905.13736) · NeurIPS 2019, published"
    assert [carmon[k] for k in ("Clean (%)", "AutoAttack (%)", "Worst case (%) [95% CI]", "Verdict", "Reported (%)")] == \
        ["89.69", "59.53", "59.53 [58.6, 60.5]", "published", "62.50"]
    assert carmon["Suite"] == "AutoAttack" and carmon["n"] == "10,000"
    # A rank range where the intervals overlap ours; a single rank only where they cannot.
    intervals = [tuple(float(x) for x in re.search(r"\[([\d.]+), ([\d.]+)\]", r["Worst case (%) [95% CI]"]).groups()) for r in c10]
    lo = 1 + sum(1 for a, _ in intervals if a > 69.5)
    hi = len(c10) - sum(1 for _, b in intervals if b < 51.0)
    assert mine["Rank"] == f"{lo}–{hi}" and 1 < lo < hi < len(c10)
    assert "Rows marked *published* are RobustBench's own entries, not measured here" in text
    c100 = next(rows for rows in boards(text) if any("other" in r["Model"] for r in rows))
    assert len(c100) == 1 + 38


def test_robustbench_option_errors(results_dir: Path, tmp_path: Path):
    res = runner.invoke(app, ["report", str(results_dir), "--robustbench", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.md")])
    assert res.exit_code == 2 and res.output.startswith("error:") and len(res.output.strip().splitlines()) == 1
    bad = tmp_path / "rb" / "cifar10" / "Linf"
    bad.mkdir(parents=True)
    (bad / "X.json").write_text(json.dumps({"clean_acc": "ninety", "autoattack_acc": "1"}))
    res = runner.invoke(app, ["report", str(results_dir), "--robustbench", str(tmp_path / "rb"), "--out", str(tmp_path / "x.md")])
    assert res.exit_code == 2 and "'clean_acc' must be a number" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["report", str(results_dir), "--format", "robustbench", "--robustbench", str(PUBLISHED), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--robustbench adds published rows" in res.output


def test_rank_ranges():
    from a3bench.report.leaderboard import Row, assign_ranks

    def row(name, lo, hi):
        return Row(name, 90.0, (lo + hi) / 2, None, (lo, hi), 100, None, None)

    rows = [row("a", 80, 90), row("b", 75, 85), row("c", 60, 70), row("d", 10, 20)]
    assign_ranks(rows)
    assert [r.rank_text for r in rows] == ["1–2", "1–2", "3", "4"]
    rows = [row("a", 50, 90), row("b", 60, 70), row("c", 20, 55)]
    assign_ranks(rows)
    assert [r.rank_text for r in rows] == ["1–3", "1–2", "2–3"]


def test_readable_times():
    from a3bench.report.fmt import duration

    assert [duration(s) for s in (0, 0.012, 0.12, 4.75, 47.5, 4750.0)] == ["0 s", "12 ms", "120 ms", "4.8 s", "48 s", "1.3 h"]


# --------------------------------------------------------------------------- hostile records (issue 14)

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def test_markdown_reports_escape_hostile_records(tmp_path: Path):
    root = tmp_path / "results"
    rec = make_record("h", 90.0, 40.0, title=HOSTILE, authors=HOSTILE, footnote=HOSTILE, venue=HOSTILE, link="javascript:alert(3)",
                      flags=[Flag("x](javascript:alert(4))", "warning", HOSTILE, 1.0)], verdict="suspicious", verdict_reason=HOSTILE)
    rec.per_attack.append(AttackRecord("<svg onload=alert(5)>", 40.0, note=HOSTILE))
    write_record(root / "cifar10" / "Linf" / "x](javascript:alert(6)).json", rec)
    write(root, "data_link", make_record("data_link", link="data:text/html,<script>alert(7)</script>"))
    out = tmp_path / "LB.md"
    res = runner.invoke(app, ["report", str(root), "--out", str(out), "--docs-url", "javascript:alert(8)//"])
    assert res.exit_code == 0, res.output
    texts = [out.read_text()] + [p.read_text() for p in (tmp_path / "reports").iterdir()]
    for text in texts:
        assert "<script" not in text and "<img" not in text and "<svg" not in text
        text = re.sub(r"(`+)(.+?)\1", "CODE", text)  # a code span shows its content as it is: nothing in it is a link
        assert not re.search(r"(?<!\\)\]\(\s*(javascript|data):", text, re.IGNORECASE), text
        # An unescaped "](" can only come from a link a3bench built.
        for m in re.finditer(r"(?<!\\)\]\(([^)]*)\)", text):
            assert m.group(1).startswith(("https://", "http://", "reports/", "../", "cifar10_", "#")) or "/" in m.group(1), m.group(0)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in texts[0] or any("&lt;script&gt;" in t for t in texts)
    names = [p.name for p in (tmp_path / "reports").iterdir()]
    assert all("](" not in n and "javascript:" not in n for n in names)


def test_robustbench_export_stays_inside_out(tmp_path: Path):
    """A record whose dataset or norm is an absolute path or climbs with ../ is exported under --out all the same."""
    root = tmp_path / "in"
    escape = tmp_path / "escaped"
    write_record(root / "a.json", make_record("a", dataset=str(escape), norm="Linf"))
    write_record(root / "b.json", make_record("b", dataset="../../../escaped2", norm="../../x"))
    write_record(root / "c.json", make_record("c", dataset="cifar10", norm="/etc"))
    before = set(tmp_path.rglob("*"))
    out = tmp_path / "rb"
    res = runner.invoke(app, ["report", str(root), "--format", "robustbench", "--out", str(out)])
    assert res.exit_code == 0, res.output
    created = {p for p in set(tmp_path.rglob("*")) - before if p.is_file()}
    assert len(created) == 3 and all(p.resolve().is_relative_to(out.resolve()) for p in created), created
    assert not escape.exists() and not (tmp_path.parent / "escaped2").exists()


def test_check_summary_escapes_hostile_records(tmp_path: Path):
    base = write(tmp_path / "base", "m", make_record("m", 90.0, 40.0))
    cur_rec = make_record("m", 90.0, 40.0, flags=[Flag("<img src=x onerror=alert(1)>", "warning", HOSTILE)], verdict="suspicious")
    cur_rec.per_attack.append(AttackRecord("<script>alert(2)</script>", 40.0))
    cur = tmp_path / "cur" / "x](javascript:alert(3)).json"
    write_record(cur, cur_rec)
    summary = tmp_path / "summary.md"
    res = runner.invoke(app, ["check", str(cur), "--baseline", str(base), "--summary", str(summary)])
    assert res.exit_code == 1, res.output
    text = re.sub(r"(`+)(.+?)\1", "CODE", summary.read_text())
    assert "<script" not in text and "<img" not in text and not re.search(r"(?<!\\)\]\(javascript", text)
    assert "&lt;script&gt;" in text


def test_out_checked_and_write_failures_are_one_line(results_dir: Path, tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    for fmt, out in (("md", tmp_path / "adir"), ("html", tmp_path / "afile"), ("robustbench", tmp_path / "afile")):
        res = runner.invoke(app, ["report", str(results_dir), "--format", fmt, "--out", str(out)])
        assert res.exit_code == 2 and res.output.startswith("error:") and len(res.output.strip().splitlines()) == 1, res.output
    assert (tmp_path / "afile").read_text() == "x" and not any((tmp_path / "adir").iterdir())
    # A folder that cannot be made (under a file) is refused before any work, in one line.
    res = runner.invoke(app, ["report", str(results_dir), "--out", str(tmp_path / "afile" / "LB.md")])
    assert res.exit_code == 2 and res.output.startswith("error: --out") and "is a file, not a folder" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and (tmp_path / "afile").read_text() == "x"


def test_report_replaces_its_own_leaderboard(results_dir: Path, tmp_path: Path):
    """Regenerating the leaderboard over an existing LEADERBOARD.md is the normal case."""
    out = tmp_path / "LB.md"
    for _ in range(2):
        res = runner.invoke(app, ["report", str(results_dir), "--out", str(out)])
        assert res.exit_code == 0, res.output
    assert out.read_text().startswith("# a3bench leaderboard")


# --------------------------------------------------------------------------- what is attached to a record (issue 22 item 3)

SHA = "a" * 64


def write_audit_file(path: Path, *, attacks=("apgd-ce", "apgd-t"), n=100, eps=8 / 255, sha: str | None = SHA, flags=(), name="m"):
    from a3bench.schema import AuditResult, AuditSettings, BinarizationTest, write_audit

    tests = [BinarizationTest(a, passed=[True] * n, n_testable=n, n_passed=n, pass_rate=100.0) for a in attacks]
    write_audit(path, AuditResult(name=name, dataset="cifar10", norm="Linf", eps=eps, seed=0, n_examples=n, indices=list(range(n)),
                                  settings=AuditSettings(), features="penultimate", randomized=False, testable=[True] * n, binarization=tests,
                                  suite=BinarizationTest("suite", pass_rate=42.0), control=BinarizationTest("random-point", pass_rate=0.0),
                                  indicators=[], flags=list(flags), model={"sha256": sha} if sha else {}))


def _audited(tmp_path: Path, **audit) -> tuple[str, str, str]:
    """(leaderboard, the model's report, report's output) with one record and an audit file beside it."""
    from a3bench.flags import BINARIZATION_TEST_FAILED

    root = tmp_path / "results"
    p = write(root, "m", make_record("m", model={"spec": "m", "name": "m", "sha256": SHA}))
    write_audit_file(p.with_name("m.audit.json"), flags=[BINARIZATION_TEST_FAILED("the attacks missed <b>known</b> examples", value=42.0)], **audit)
    res = runner.invoke(app, ["report", str(root), "--out", str(tmp_path / "LB.md")])
    assert res.exit_code == 0, res.output
    return (tmp_path / "LB.md").read_text(), (tmp_path / "reports" / "cifar10_Linf_m.md").read_text(), " ".join(res.output.split())


def test_an_audit_of_the_same_evaluation_is_attached_with_its_flags(tmp_path: Path):
    board, report, _ = _audited(tmp_path)
    (row,) = boards(board)[0]
    assert row["Audit (%)"] == "42.0"
    assert "binarization-test-failed" in row["Flags"] and "(audit)" in row["Flags"]  # the audit's own flag reaches the Flags column
    assert "Audited: apgd-ce, apgd-t on the first 100 examples, seed 0; file `m.audit.json`." in report  # what it was run with
    assert "**binarization-test-failed** (error)" in report and "&lt;b&gt;known&lt;/b&gt;" in report  # in the diagnostics, escaped


@pytest.mark.parametrize("audit, why", [
    ({"n": 50}, "another number of examples (50, the record 100)"),
    ({"attacks": ("pgd-20", "apgd-ce")}, "it audited attacks this run did not run (pgd-20)"),
    ({"sha": "b" * 64}, "another model (the weights differ)"),
    ({"sha": None}, "does not record which weights it ran on"),
    ({"eps": 0.5}, "another threat"),
])
def test_an_audit_of_another_evaluation_is_not_attached(tmp_path: Path, audit, why):
    """An audit of other attacks, another n, other weights or another eps says nothing about
    this record: it is left out, and a warning says why (the committed audits of pgd-20 on
    the full-suite records showed as "Audit 100 %" before)."""
    board, report, output = _audited(tmp_path, **audit)
    (row,) = boards(board)[0]
    assert row["Audit (%)"] == "—" and "binarization" not in row["Flags"]
    assert "Attack audit" not in report and "binarization" not in report
    assert "m.audit.json not shown with" in output and why in output


MALFORMED_AUDITS = [
    "not an object",
    {"per_attack": ["pgd-20"]},
    {"pass_rate": 150.0},
    {"pass_rate": -5},
    {"n_testable": "many"},
    {"indicators": {"silent_success": {"deep": [1, 2]}}},
    {"per_attack": {"pgd-20": 1e300}},
    [[[[[[[[[[[]]]]]]]]]]],
]


@pytest.mark.parametrize("audit", MALFORMED_AUDITS)
def test_a_malformed_record_audit_is_one_line_not_a_traceback(tmp_path: Path, audit):
    """Issue 24 items 6 and 12: ``record.audit`` is untrusted; report reads records through the
    schema's checks, as ``check`` does, and refuses one whose audit is malformed, with one
    line naming the field (never a traceback, never shown as if it were sound)."""
    root = tmp_path / "results"
    p = write(root, "m", make_record("m"))
    data = json.loads(p.read_text())
    data["audit"] = audit
    p.write_text(json.dumps(data))
    for fmt, out in (("md", tmp_path / "LB.md"), ("html", tmp_path / "site"), ("term", None)):
        res = runner.invoke(app, ["report", str(root), "--format", fmt] + (["--out", str(out)] if out else []))
        assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit)), res.output
        assert res.exit_code == 2 and res.output.startswith("error:") and "audit" in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- untrusted text (issue 24 item 8)

PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "<iframe src=javascript:alert(3)></iframe>"]
TAGS = re.compile(r"<\s*(script|img|iframe)\b", re.IGNORECASE)


def hostile_record() -> ResultRecord:
    """Every text a record carries — its own fields, its attacks, flags, dicts and its audit — hostile."""
    h = " ".join(PAYLOADS)
    rec = make_record("h", title=h, authors=h, venue=h, footnote=h, architecture=h, link="javascript:alert(4)", verdict="suspicious",
                      verdict_reason=h, notes=[h], flags=[Flag(h, "warning", h, 1.0)], model={"spec": h, "name": h, "sha256": h},
                      a3={"n_layers": 1, "config": {h: h}}, provenance={h: h, "command": h})
    rec.per_attack[-1] = AttackRecord(h, rec.robust_acc, broken=1, n_attacked=1, note=h, config={h: h})
    rec.audit = {"file": h, "pass_rate": 50.0, "per_attack": {p: 10.0 for p in PAYLOADS}, "indicators": {h: 1}, "flags": [h],
                 "n_testable": 3, "n_not_testable": 0}
    rec.compute = {**rec.compute, h: h}
    return rec


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_every_field_of_a_hostile_record_is_escaped(tmp_path: Path, fmt):
    root = tmp_path / "results"
    write_record(root / "cifar10" / "Linf" / "h.json", hostile_record())
    out = tmp_path / ("LB.md" if fmt == "md" else "site")
    res = runner.invoke(app, ["report", str(root), "--format", fmt, "--out", str(out)])
    assert res.exit_code == 0, res.output
    from a3bench.report.render_html import TEMPLATES

    own_script = "<script>" + (TEMPLATES / "site.js").read_text() + "</script>"  # the index's sorting and search
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".md", ".html")]
    assert len(files) >= 2
    shown = 0
    for f in files:
        text = f.read_text()
        if fmt == "html":
            text = text.replace(own_script, "")
            assert not re.search(r"<[^>]*\b(href|src)\s*=\s*[\"']?\s*javascript", text, re.IGNORECASE)  # in a tag, not in text
        else:
            text = re.sub(r"(`+)(.+?)\1", "CODE", text)  # a code span shows its content as it is
        assert not TAGS.search(text), f
        assert "](javascript" not in text
        shown += text.count("&lt;script&gt;alert(1)&lt;/script&gt;") + text.count("&lt;iframe src=javascript:alert(3)&gt;")
    assert shown >= 10  # shown as text, in many places


# --------------------------------------------------------------------------- RobustBench's files, hostile (issue 24 item 12)

def _deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize("name, body", [
    ("deep nesting", '{"clean_acc": ' + _deep(100_000) + "}"),
    ("a 5,000-digit number", '{"clean_acc": ' + "9" * 5000 + "}"),
    ("a 5,000-digit string", json.dumps({"clean_acc": "9" * 5000, "autoattack_acc": "1"})),
    ("150", json.dumps({"clean_acc": "150", "autoattack_acc": "50"})),
    ("-5", json.dumps({"clean_acc": "90", "autoattack_acc": "-5"})),
    ("1e300", json.dumps({"clean_acc": "90", "autoattack_acc": "1e300"})),
    ("NaN", '{"clean_acc": NaN}'),
    ("a name that is a list", json.dumps({"clean_acc": "90", "autoattack_acc": "50", "name": [1, [2]]})),
    ("eps as an object", json.dumps({"clean_acc": "90", "autoattack_acc": "50", "eps": {"x": 1}})),
    ("forward passes 10**30", json.dumps({"clean_acc": "90", "autoattack_acc": "50", "number_forward_passes": 10 ** 30})),
])
def test_hostile_robustbench_entries_are_one_error_line(results_dir: Path, tmp_path: Path, name, body):
    bad = tmp_path / "rb" / "cifar10" / "Linf"
    bad.mkdir(parents=True)
    (bad / "X.json").write_text(body)
    res = runner.invoke(app, ["report", str(results_dir), "--robustbench", str(tmp_path / "rb"), "--out", str(tmp_path / "x.md")])
    assert res.exit_code == 2 and res.exception is None or isinstance(res.exception, SystemExit), (name, res.output)
    assert res.output.startswith("error:") and len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output, (name, res.output)
    assert not (tmp_path / "x.md").exists()


def test_export_footnote_names_only_the_attacks_that_ran():
    from a3bench.report.load import LoadedResult

    rec = make_record("x", 90.0, 40.0)
    rec.per_attack.insert(4, AttackRecord("bpda", 41.0, status="skipped", note="no zero-gradient module"))
    rec.per_attack.insert(5, AttackRecord("crossmax-mean", 41.0, status="failed", note="boom"))
    rec.attacks = ["autoattack", "bpda", "crossmax-mean", "a3-adaptive"]
    info = model_info(LoadedResult(rec, Path("x.json")))
    assert "(apgd-ce, apgd-t, fab-t, square, a3-adaptive)" in info["footnote"]
    assert "bpda" not in info["footnote"] and "crossmax-mean" not in info["footnote"]


# --------------------------------------------------------------------------- flag explanations that exist (issue 22 item 11)

def test_markdown_flag_links_point_to_docs_that_exist(results_dir: Path, tmp_path: Path, monkeypatch):
    """In a folder without docs/ (a pip user's), a report does not link to a
    docs/diagnostics.md that is not there: it names the command that explains the flag."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "LB.md"
    res = runner.invoke(app, ["report", str(results_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    texts = [out.read_text()] + [p.read_text() for p in (tmp_path / "reports").iterdir()]
    assert not any("diagnostics.md" in t for t in texts)
    masked = (tmp_path / "reports" / "cifar10_Linf_masked.md").read_text()
    assert "What this means: `a3bench flags zero-gradients`" in masked
    # Every relative link of the markdown resolves to a file.
    for path in [out] + list((tmp_path / "reports").iterdir()):
        for href in re.findall(r"(?<!\\)\]\(([^)]+)\)", path.read_text()):
            if not href.startswith(("http://", "https://")):
                assert (path.parent / href.split("#")[0]).exists(), (path.name, href)


def test_pyautoattack_pointer_to_its_own_docs_does_not_leak():
    """pyautoattack's "See flags_doc.md for details." names a file a3bench's user does not have."""
    import torch

    from a3bench._compat import import_autoattack
    from a3bench.eval.diagnostics import apgd_warning_flags

    logged = []

    class Log:
        def warning(self, msg):
            logged.append(msg)

    import_autoattack().checks.check_zero_gradients(torch.zeros(3, 4), logger=Log())
    assert logged and "flags_doc.md" in logged[0]  # what pyautoattack says
    (flag,) = apgd_warning_flags(logged)
    assert "flags_doc" not in flag.message and "zero gradient" in flag.message


# --------------------------------------------------------------------------- the output formats, one registry (issue 20)

@pytest.mark.parametrize("name", __import__("a3bench.report.formats", fromlist=["x"]).format_names())
def test_every_registered_format_writes_the_results(results_dir: Path, tmp_path: Path, name):
    from a3bench.report.formats import get_format

    fmt = get_format(name)
    assert fmt.name == name
    out = None if fmt.out_is == "none" else tmp_path / "out" / ("LB.md" if fmt.out_is == "file" else "folder")
    res = runner.invoke(app, ["report", str(results_dir), "--format", name] + (["--out", str(out)] if out else []))
    assert res.exit_code == 0, res.output
    if out is None:
        assert "strong" in res.output and "Worst case" in res.output  # the boards, on the terminal
        assert not (tmp_path / "out").exists()
    else:
        written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
        assert written and any("strong" in p.name or "strong" in p.read_text(errors="ignore") for p in written)


def test_eps_has_one_rule():
    """report/fmt.py formats eps with a3bench.threat.format_eps, not a copy of it."""
    from a3bench.report import fmt
    from a3bench.threat import format_eps

    assert not hasattr(fmt, "format_eps")
    for eps in (8 / 255, 0.1, 0.25, 1 / 3, 2e-3, 1.5):
        assert fmt.eps_text(make_record(eps=eps)) == format_eps(eps)


def test_total_time_counts_every_resume():
    """A record resumed before the runner summed time across resumes (the committed CrossMax
    record said 1.4 s for about 65 minutes of attacks) shows the attacks' total, said so."""
    from a3bench.report.load import LoadedResult
    from a3bench.report.sections import total_time

    rec = make_record("x")
    rec.compute = {"seconds": 1.45}
    for a, s in zip(rec.per_attack, (1200.0, 1300.0, 600.0, 800.0, 3.0)):
        a.seconds = s
    assert total_time(LoadedResult(rec, Path("x.json"))).startswith("1.1 h (the attacks' times; the record's own total, 1.4 s")
    rec.compute = {"seconds": 4000.0}
    assert total_time(LoadedResult(rec, Path("x.json"))) == "1.1 h"


def test_an_audit_made_by_a3bench_audit_attaches_to_the_record_of_its_weights(tmp_path: Path):
    """End to end: `a3bench audit` records the weights it audited, so its file joins the
    record `a3bench attack` wrote of the same model, attacks and examples."""
    common = ["--model", "smallcnn.pgdat_fmnist", "--attacks", "pgd-3", "-n", "16", "--device", "cpu", "--eps", "0.1"]
    record = tmp_path / "r" / "m.json"
    res = runner.invoke(app, ["attack", *common, "--batch-size", "16", "--out", str(record), "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["audit", *common, "--out", str(record.with_name("m.audit.json"))])
    assert res.exit_code == 0, res.output
    assert json.loads(record.with_name("m.audit.json").read_text())["model"]["sha256"] == json.loads(record.read_text())["model"]["sha256"]
    res = runner.invoke(app, ["report", str(tmp_path / "r"), "--out", str(tmp_path / "LB.md")])
    assert res.exit_code == 0 and "not shown" not in res.output, res.output
    ((row,),) = [rows for rows in boards((tmp_path / "LB.md").read_text()) if rows]
    assert row["Audit (%)"] != "—" and row["Verdict"] == "not-evaluated-fully" and row["Suite"] == "pgd-3 (no full AA)"
