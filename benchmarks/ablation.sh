#!/usr/bin/env bash
# The A3 ablation (issue 16): --suite full on the whole Fashion-MNIST test set (10,000
# images, Linf 0.1, seed 0, batches of 1000) for the three bundled models, then the leaderboard.
#
#   bash benchmarks/ablation.sh            # all three models, one after the other
#   bash benchmarks/ablation.sh smallcnn.a3_joint_fmnist
#
# Long on a CPU: per model and core, APGD-CE ~8 min, APGD-T ~65 min, FAB-T ~95 min, Square
# ~40 min (batches of 1000: Square's 5,000 iterations are per batch), the adaptive attacks
# ~10 min; minutes on a GPU. It runs on every core through torchrun (A3BENCH_PROCS overrides
# the number of processes; 1 runs without torchrun) at the lowest priority, so it only
# uses what other work leaves. Every run is resumable: its state sits beside the record in
# benchmarks/ablation/ (A3BENCH_ABLATION_DIR overrides), saved after every round of
# batches, and is kept after the record is written (--keep-state), so rerunning this script
# continues where it stopped — and, if the full suite has grown since, runs only the new
# attacks — with the same numbers. The state files are committed, so the run continues on
# any machine, one session's CPU hours after another. A finished record and its outcomes
# are copied to results/fmnist/Linf/ and the leaderboard regenerated.
set -euo pipefail
cd "$(dirname "$0")/.."
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(smallcnn.a3_joint_fmnist smallcnn.a3_attenuate_only_fmnist smallcnn.pgdat_fmnist)
dir="${A3BENCH_ABLATION_DIR:-benchmarks/ablation}"
procs="${A3BENCH_PROCS:-$(nproc)}"
mkdir -p "$dir"
if [ "$procs" -gt 1 ]; then
    run=(nice -n 19 torchrun --standalone --nproc_per_node "$procs" --no-python a3bench)
else
    run=(nice -n 19 a3bench)
fi
for m in "${models[@]}"; do
    "${run[@]}" attack --model "$m" --suite full -n 0 --batch-size 1000 --eps 0.1 --seed 0 \
        --out "$dir/$m.json" --resume --keep-state --quiet
    cp "$dir/$m.json" "$dir/$m.outcomes.json" results/fmnist/Linf/
done
a3bench report results/ --out results/LEADERBOARD.md
