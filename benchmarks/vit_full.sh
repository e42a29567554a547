#!/usr/bin/env bash
# --suite full on the two bundled Fashion-MNIST ViTs (issue 13): first 500 test examples,
# Linf 0.1, seed 0, one batch of 500 (AutoAttack's outcome depends on the batch).
#
#   bash benchmarks/vit_full.sh                                  # both models
#   bash benchmarks/vit_full.sh vit_small_p4.trades_fmnist
#
# Resumable: the state sits beside the record in benchmarks/vit/ and is kept after the
# record is written (--keep-state), so rerunning continues where it stopped, or runs only
# the attacks the suite gained since. With one batch of 500 the state is saved after each
# attack. A finished record and its outcomes are copied to results/fmnist/Linf/ and the
# leaderboard regenerated. On a 2-core CPU: AutoAttack ~1 h per model, the adaptive
# attacks ~30 min; where Square breaks what the gradient attacks missed
# (black-box-beats-white-box) the escalation adds SPSA-100 and Square-20000×2, ~3 CPU-hours more.
set -euo pipefail
cd "$(dirname "$0")/.."
A3BENCH=${A3BENCH:-a3bench}
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(vit_small_p4.trades_fmnist vit_small_p4.trades_aas_fmnist)
dir=benchmarks/vit
mkdir -p "$dir"
for m in "${models[@]}"; do
    $A3BENCH attack --model "$m" --suite full -n 500 --batch-size 500 --eps 0.1 --seed 0 \
        --out "$dir/$m.json" --resume --keep-state --quiet
    cp "$dir/$m.json" "$dir/$m.outcomes.json" results/fmnist/Linf/
done
$A3BENCH report results/ --out results/LEADERBOARD.md
