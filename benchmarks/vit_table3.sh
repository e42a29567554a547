#!/usr/bin/env bash
# The seed paper's Table 3 (Jain & Dutta, CVPR 2024) on the two bundled Fashion-MNIST ViTs:
# first 500 test examples, Linf 0.1, seed 0, each attack its own run (not a cascade), so
# each row is that attack's robust accuracy with its Wilson 95 % interval.
#
#   bash benchmarks/vit_table3.sh                       # both models
#   bash benchmarks/vit_table3.sh vit_small_p4.trades_fmnist
#
# Rows: PGD-100; PGD-100 + scale (attn-scale:s=0.01); PGD-100 + AAS (aas, base pgd-100);
# GAMA-PGD-100; GAMA-PGD-100 + AAS; and attn-scale:s=auto (this project's addition).
# Records go to benchmarks/vit_table3/<model>/<attack>.json (not results/: one record per
# attack would be read as competing leaderboard entries). Resumable: rerun to continue.
# Set A3BENCH="python -m a3bench" to run a checkout's code instead of the installed one.
set -euo pipefail
cd "$(dirname "$0")/.."
A3BENCH=${A3BENCH:-a3bench}
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(vit_small_p4.trades_fmnist vit_small_p4.trades_aas_fmnist)
attacks=(pgd-100 attn-scale:s=0.01 aas gama-pgd-100 aas:base=gama-pgd-100 attn-scale:s=auto)
dir="${A3BENCH_TABLE3_DIR:-benchmarks/vit_table3}"
for m in "${models[@]}"; do
    mkdir -p "$dir/$m"
    for a in "${attacks[@]}"; do
        slug=$(echo "$a" | tr ':=' '_-')
        if [ -f "$dir/$m/$slug.json" ] && [ ! -f "$dir/$m/$slug.state.json" ]; then
            continue  # finished
        fi
        $A3BENCH attack --model "$m" --attacks "$a" -n 500 --batch-size 500 --eps 0.1 --seed 0 \
            --out "$dir/$m/$slug.json" --resume --quiet
    done
done
