#!/usr/bin/env bash
# The A3 ablation (issue 4): --suite full on the whole Fashion-MNIST test set (10,000
# images, Linf 0.1, seed 0) for the three bundled models, then the leaderboard.
#
#   bash benchmarks/ablation.sh            # all three models, one after the other
#   bash benchmarks/ablation.sh smallcnn.a3_joint_fmnist
#
# Long: on one CPU core, 10,000 images: APGD-CE 8 min, APGD-T 65-68 min, FAB-T ~95 min,
# then Square and the adaptive attacks (not timed yet): an estimated 5 hours per model
# (minutes on a GPU); run
# one model per core (bash benchmarks/ablation.sh MODEL in parallel). Every run is
# resumable: it keeps its state beside the record in benchmarks/ablation/ (saved after
# every batch; A3BENCH_ABLATION_DIR overrides), and rerunning this script continues where
# it stopped, with the same numbers. The state files are small and committed, so the run
# continues on any machine, one session's CPU hours after another.
# A finished record (and its outcomes) is copied to results/fmnist/Linf/ and the
# leaderboard regenerated; an unfinished one never reaches results/.
set -euo pipefail
cd "$(dirname "$0")/.."
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(smallcnn.a3_joint_fmnist smallcnn.a3_attenuate_only_fmnist smallcnn.pgdat_fmnist)
dir="${A3BENCH_ABLATION_DIR:-benchmarks/ablation}"
mkdir -p "$dir"
for m in "${models[@]}"; do
    # finished already: the record is there and its resume state is gone
    if [ -f "$dir/$m.json" ] && [ ! -f "$dir/$m.state.json" ]; then
        cp "$dir/$m.json" "$dir/$m.outcomes.json" results/fmnist/Linf/
        continue
    fi
    a3bench attack --model "$m" --suite full -n 0 --batch-size 1000 --eps 0.1 --seed 0 \
        --out "$dir/$m.json" --resume --quiet
    cp "$dir/$m.json" "$dir/$m.outcomes.json" results/fmnist/Linf/
done
a3bench report results/ --out results/LEADERBOARD.md
