"""Two processes × one thread against one process × two threads, side by side in one run.

    python benchmarks/shard_speed.py [--model smallcnn.a3_joint_fmnist] [--n 200] [--suite standard]
                                     [--batch-size 25] [--repeat 2] [--threaded-engine auto] [--sharded-engine auto]

    # issue 21's first target: today's path (the model as given, one process x 2 threads)
    # against the fast one (the execution layer, two processes x 1 thread), --suite full:
    python benchmarks/shard_speed.py --model smallcnn.pgdat_fmnist --suite full --n 1000 --batch-size 125 \
        --threaded-engine plain --repeat 1

Runs ``a3bench attack`` on the same model, examples, seed and batch size two ways,
interleaved, ``--repeat`` times each:

  sharded:  torchrun --standalone --nproc_per_node 2 -m a3bench attack …   (OMP_NUM_THREADS=1)
  threaded: python -m a3bench attack …                                      (OMP_NUM_THREADS=2)

and prints the wall time of each (process start included: what a user waits for), the
ratio sharded / threaded (target ≤ 0.6: Square and FAB spend much of their time in
single-threaded Python per iteration, which two processes split and two threads do not),
and whether the per-example outcomes are the same bytes. The batch size matters: the
batches of each attack are what the ranks share, so 200 examples in batches of 256 leave
one rank idle; it must be the same on both sides (AutoAttack's outcome depends on it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.pop("WORLD_SIZE", None)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smallcnn.a3_joint_fmnist")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--suite", default="standard")
    ap.add_argument("--eps", default="0.1")
    ap.add_argument("--batch-size", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threaded-engine", default="auto", help="--engine of the one-process side (plain: the model as given)")
    ap.add_argument("--sharded-engine", default="auto", help="--engine of the two-process side")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shard_speed_"))
    common = ["attack", "--model", args.model, "--suite", args.suite, "-n", str(args.n), "--eps", args.eps,
              "--batch-size", str(args.batch_size), "--seed", "0", "--device", "cpu", "--quiet", "--no-probe"]
    print(f"{args.model}, --suite {args.suite}, {args.n} examples, batch {args.batch_size}, {args.repeat} repeat(s), interleaved; "
          f"engines: threaded {args.threaded_engine}, sharded {args.sharded_engine}")
    times: dict[str, list[float]] = {"sharded (2 processes x 1 thread)": [], "threaded (1 process x 2 threads)": []}
    outcomes: dict[str, bytes] = {}
    for r in range(args.repeat):
        for label in times:
            out = work / f"{'sharded' if label.startswith('sharded') else 'threaded'}_{r}.json"
            if label.startswith("sharded"):
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "a3bench",
                       *common, "--engine", args.sharded_engine, "--out", str(out)]
                seconds = run(cmd, threads=1)
            else:
                seconds = run([sys.executable, "-m", "a3bench", *common, "--engine", args.threaded_engine, "--out", str(out)], threads=2)
            times[label].append(seconds)
            outcomes[label] = out.with_name(out.stem + ".outcomes.json").read_bytes()
            print(f"  run {r + 1}: {label}: {seconds:.1f} s", flush=True)
    (sharded, s), (threaded, t) = [(k, statistics.median(v)) for k, v in times.items()]
    print(f"median {sharded}: {s:.1f} s")
    print(f"median {threaded}: {t:.1f} s")
    print(f"ratio sharded / threaded: {s / t:.2f} (target <= 0.6)")
    same = len(set(outcomes.values())) == 1
    print(f"per-example outcomes identical: {same}" + ("" if same else " (different thread counts may round differently)"))
    if not same:
        import json

        a, b = (json.loads(v)["broken_by"] for v in outcomes.values())
        flips = [i for i, (p, q) in enumerate(zip(a, b)) if (p is None) != (q is None)]
        print(f"examples robust on one side only: {len(flips)} {flips[:20]}")


if __name__ == "__main__":
    main()
