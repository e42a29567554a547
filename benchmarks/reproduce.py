"""Do committed records reproduce? Re-run a record's attacks on its first N examples and
compare the per-example outcomes with the committed ones (issue 20: the evaluation core was
rebuilt; its numbers must not move).

    python benchmarks/reproduce.py [--n 50] [--engine plain] RECORD [RECORD ...]

Only attacks whose randomness is drawn per example (PGD, GAMA-PGD, …: a3bench's own) give
an example the same outcome whatever batch it sits in; AutoAttack's components draw per
batch, so a record of them reproduces only on its own batches (``check`` validates those).
Prints, per record, how many of the first N examples have the committed outcome (robust or
broken, and by which attack), and exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def reproduce(record_path: Path, n: int, engine: str) -> list[int]:
    from a3bench.data import load_dataset
    from a3bench.eval.runner import evaluate
    from a3bench.models import load_model
    from a3bench.schema import read_outcomes, read_record
    from a3bench.threat import ThreatModel

    rec = read_record(record_path)
    committed = read_outcomes(record_path.with_name(record_path.name[: -len(".json")] + ".outcomes.json"))
    loaded = load_model(rec.model["spec"])
    data = load_dataset(rec.dataset, "test")
    res = evaluate(loaded, data, ThreatModel(rec.norm, rec.eps), ",".join(rec.attacks), n_examples=n, seed=rec.seed,
                   batch_size=n, probe=False, engine=engine, adapt_plan=False)
    return [i for i in range(n) if (res.outcomes.broken_by[i], res.outcomes.clean_pred[i])
            != (committed.broken_by[i], committed.clean_pred[i])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="+", type=Path)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--engine", default="plain")
    args = ap.parse_args()
    bad = 0
    for path in args.records:
        differ = reproduce(path, args.n, args.engine)
        bad += len(differ)
        print(f"{path}: {args.n - len(differ)} of {args.n} examples as committed (engine {args.engine})"
              + (f"; differ: {differ}" if differ else ""))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
