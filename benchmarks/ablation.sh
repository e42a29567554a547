#!/usr/bin/env bash
# The A3 ablation (issue 4): --suite full on the whole Fashion-MNIST test set (10,000
# images, Linf 0.1, seed 0) for the three bundled models, then the leaderboard.
#
#   bash benchmarks/ablation.sh            # all three models, one after the other
#   bash benchmarks/ablation.sh smallcnn.a3_joint_fmnist
#
# Long: AutoAttack's FAB-T and Square dominate; ~4 s per example on one CPU core, i.e.
# about 11 hours per model on this project's machines (minutes on a GPU). Every run is
# resumable: it keeps its state beside the record in runs/ablation/ (saved after every
# batch), and rerunning this script continues where it stopped, with the same numbers.
# A finished record (and its outcomes) is copied to results/fmnist/Linf/ and the
# leaderboard regenerated; an unfinished one never reaches results/.
set -euo pipefail
cd "$(dirname "$0")/.."
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(smallcnn.a3_joint_fmnist smallcnn.a3_attenuate_only_fmnist smallcnn.pgdat_fmnist)
mkdir -p runs/ablation
for m in "${models[@]}"; do
    # finished already: the record is there and its resume state is gone
    if [ -f "runs/ablation/$m.json" ] && [ ! -f "runs/ablation/$m.state.json" ]; then
        cp "runs/ablation/$m.json" "runs/ablation/$m.outcomes.json" results/fmnist/Linf/
        continue
    fi
    a3bench attack --model "$m" --suite full -n 0 --batch-size 1000 --eps 0.1 --seed 0 \
        --out "runs/ablation/$m.json" --resume --quiet
    cp "runs/ablation/$m.json" "runs/ablation/$m.outcomes.json" results/fmnist/Linf/
done
a3bench report results/ --out results/LEADERBOARD.md
