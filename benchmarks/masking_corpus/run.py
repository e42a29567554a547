"""Run the masking benchmark: for each corpus model, the known-truth attack and a3bench's
``--suite full``, then the table (docs/masking-benchmark.md).

    nice -n 19 python benchmarks/masking_corpus/run.py --n 200          # everything (hours of CPU)
    python benchmarks/masking_corpus/run.py --n 200 --only jpeg,standard
    python benchmarks/masking_corpus/run.py --n 200 --table             # the table from what is done

First N Fashion-MNIST test examples, Linf eps 0.1, seed 0. Per model, in
``results/n<N>/``:

- ``<name>.reference.json`` — the known-truth attack (``reference.py``) and plain PGD-20;
- ``<name>.a3bench.json`` (+ ``.outcomes.json``) — a3bench's record, made by the public CLI
  (``a3bench attack --model SPEC --dataset fmnist --suite full -n N --batch-size N --eps 0.1
  --seed 0 --resume``): clean accuracy, AutoAttack (the first part of the full cascade: the
  record's ``autoattack_acc``), the worst case, the verdict and the flags;
- ``<name>.json`` — the two side by side: truth = the lower of the reference's and
  a3bench's numbers (a3bench's own attacks are valid adversarial examples too), flagged =
  verdict not ``reliable``, and the distance between a3bench's worst case and the truth.

Resumable: a finished file is never redone; a killed a3bench run continues (``--resume``).
``TABLE.md`` in the same folder is rewritten at the end of every model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from corpus import CORPUS, Entry, entry  # noqa: E402

EPS = 0.1
SEED = 0
WITHIN = 3.0  # points: the target distance between a3bench's worst case and the truth


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _load_model(spec: str):
    from a3bench.models.spec import load_model

    return load_model(spec, dataset="fmnist").model.eval()


def run_reference(e: Entry, n: int, path: Path) -> None:
    import torch

    from a3bench.data import load_dataset
    from reference import run_reference as reference_attack

    x, y = load_dataset("fmnist", "test").first(n).tensors()
    model = _load_model(e.spec)
    for p in model.parameters():
        p.requires_grad_(False)
    surrogate = _load_model(e.reference.transfer_from) if e.reference.transfer_from else None
    torch.manual_seed(SEED)
    result = reference_attack(model, x, y, EPS, e.reference, randomised=e.randomised, seed=SEED, surrogate=surrogate,
                              progress=lambda s: print(f"  [{e.name}] reference {s}", flush=True))
    _write(path, {"name": e.name, "spec": e.spec, "seed": SEED, "reference": asdict(e.reference), **result.to_dict()})


def run_a3bench(e: Entry, n: int, path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    cmd = [sys.executable, "-m", "a3bench", "attack", "--model", e.spec, "--dataset", "fmnist", "--suite", "full",
           "-n", str(n), "--batch-size", str(n), "--eps", str(EPS), "--seed", str(SEED), "--out", str(path),
           "--resume", "--quiet"]
    print(f"  [{e.name}] {' '.join(cmd[1:])}", flush=True)
    done = subprocess.run(cmd, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"error: a3bench attack failed on {e.name} (exit {done.returncode})")


def summarise(e: Entry, ref: dict, rec: dict) -> dict:
    worst, refacc = float(rec["robust_acc"]), float(ref["robust_acc"])
    truth = min(worst, refacc)
    flags = [{"name": f["name"], "severity": f.get("severity")} for f in rec.get("flags", [])]
    flagged = rec["verdict"] != "reliable"
    return {
        "name": e.name, "spec": e.spec, "masked": e.masked, "randomised": e.randomised, "defense": e.defense,
        "source": e.source, "n": rec["n_examples"], "eps": rec["eps"], "seed": rec["seed"],
        "clean": rec["clean_acc"], "naive_pgd20": ref.get("naive_pgd20_acc"), "autoattack": rec.get("autoattack_acc"),
        "a3bench_worst": worst, "a3bench_ci": rec.get("robust_acc_ci"), "verdict": rec["verdict"], "flags": flags,
        "reference": refacc, "reference_what": ref["what"],
        "truth": truth, "truth_from": "both" if worst == refacc else ("a3bench" if worst < refacc else "reference"),
        "distance": round(worst - truth, 2), "within": worst - truth <= WITHIN,
        "flagged": flagged, "verdict_right": flagged == e.masked,
        "seconds": {"reference": ref.get("seconds"), "a3bench": (rec.get("compute") or {}).get("seconds")},
        "attacks": [{"name": a["name"], "robust_acc": a["robust_acc"], "broken": a["broken"], "status": a["status"]}
                    for a in rec.get("per_attack", [])],
    }


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.1f}"


def table(rows: list[dict], n: int) -> str:
    lines = [f"First {n} Fashion-MNIST test examples, Linf {EPS}, seed {SEED}. Robust accuracy %.", "",
             "| model | masked | clean | PGD-20 | AutoAttack | a3bench worst | known truth | distance | verdict | flags |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        flags = ", ".join(f"`{f['name']}`" for f in r["flags"]) or "—"
        truth = _fmt(r["truth"]) + ("" if r["truth_from"] != "a3bench" else " (a3bench)")
        lines.append(f"| `{r['name']}` | {'yes' if r['masked'] else 'no'} | {_fmt(r['clean'])} | {_fmt(r['naive_pgd20'])} | "
                     f"{_fmt(r['autoattack'])} | {_fmt(r['a3bench_worst'])} | {truth} | {r['distance']:.1f} | "
                     f"{r['verdict']} | {flags} |")
    tp = sum(r["flagged"] and r["masked"] for r in rows)
    fn = sum(not r["flagged"] and r["masked"] for r in rows)
    fp = sum(r["flagged"] and not r["masked"] for r in rows)
    tn = sum(not r["flagged"] and not r["masked"] for r in rows)
    far = max(rows, key=lambda r: r["distance"]) if rows else None
    lines += ["", "Verdict (flagged = not `reliable`) against the label:", "",
              "| | truly masked | honest |", "|---|---:|---:|",
              f"| flagged | {tp} | {fp} |", f"| not flagged | {fn} | {tn} |", ""]
    if far is not None:
        lines.append(f"Largest distance between a3bench's worst case and the known truth: {far['distance']:.1f} points "
                     f"(`{far['name']}`); within {WITHIN:.0f} points: {sum(r['within'] for r in rows)} of {len(rows)}.")
    return "\n".join(lines) + "\n"


def collect(folder: Path) -> list[dict]:
    rows = []
    for e in CORPUS:
        path = folder / f"{e.name}.json"
        if path.is_file():
            rows.append(json.loads(path.read_text()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="the masking benchmark (docs/masking-benchmark.md)")
    parser.add_argument("--n", type=int, default=200, help="first N test examples (default 200)")
    parser.add_argument("--only", default="", help="comma-separated corpus names (default: all)")
    parser.add_argument("--table", action="store_true", help="only rewrite and print the table")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")
    try:
        chosen = [entry(s.strip()) for s in args.only.split(",") if s.strip()] or list(CORPUS)
    except KeyError as err:
        parser.error(str(err.args[0]))
    folder = HERE / "results" / f"n{args.n}"
    folder.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for e in chosen:
            final = folder / f"{e.name}.json"
            if final.is_file():
                continue
            start = time.time()
            print(f"[{e.name}] ({'masked' if e.masked else 'honest'}) {e.defense}", flush=True)
            ref_path, rec_path = folder / f"{e.name}.reference.json", folder / f"{e.name}.a3bench.json"
            if not ref_path.is_file():
                run_reference(e, args.n, ref_path)
            if not rec_path.is_file() or "verdict" not in json.loads(rec_path.read_text()):
                run_a3bench(e, args.n, rec_path)
            row = summarise(e, json.loads(ref_path.read_text()), json.loads(rec_path.read_text()))
            _write(final, row)
            (folder / "TABLE.md").write_text(table(collect(folder), args.n))
            print(f"[{e.name}] done in {time.time() - start:.0f} s: a3bench {row['a3bench_worst']} ({row['verdict']}), "
                  f"reference {row['reference']}, distance {row['distance']}", flush=True)
    text = table(collect(folder), args.n)
    (folder / "TABLE.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
