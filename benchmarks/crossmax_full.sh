#!/usr/bin/env bash
# The bundled CrossMax model under --suite full (issue 12): first 500 Fashion-MNIST test
# examples, Linf 0.1, seed 0. Resumable (state kept in benchmarks/crossmax/, --keep-state:
# rerunning after the suite grew runs only the new attacks); the record and outcomes are
# copied to results/fmnist/Linf/ and the leaderboard regenerated.
set -euo pipefail
cd "$(dirname "$0")/.."
m=smallcnn_deep.crossmax_fmnist
dir=benchmarks/crossmax
procs="${A3BENCH_PROCS:-$(nproc)}"
if [ "$procs" -gt 1 ]; then run=(torchrun --standalone --nproc_per_node "$procs" --no-python a3bench); else run=(a3bench); fi
"${run[@]}" attack --model "$m" --suite full -n 500 --batch-size 125 --eps 0.1 --seed 0 \
    --out "$dir/$m.json" --resume --keep-state --quiet
cp "$dir/$m.json" "$dir/$m.outcomes.json" results/fmnist/Linf/
a3bench report results/ --out results/LEADERBOARD.md
