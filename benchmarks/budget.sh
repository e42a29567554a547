#!/usr/bin/env bash
# The A3 ablation, beyond the first answer: at 3 epochs `joint` does not beat
# `attenuate-only` or plain PGD-AT (README, Results), so is the training budget the cause?
# Trains both A3 objectives with 3x the epochs (9), same seed, then evaluates each with
# --suite standard on the first 2,000 test images (Linf 0.1, seed 0).
#
#   bash benchmarks/budget.sh                       # both, one after the other
#   bash benchmarks/budget.sh joint9                # one: joint9 or attenuate9
#
# Resumable: a checkpoint is written after every epoch (benchmarks/budget/<name>/model.pt,
# committed as it advances) and the evaluation keeps its state beside its record. At the
# lowest priority: it only uses what other work leaves. One epoch took 12–19 minutes for the
# bundled joint model (model_zoo/smallcnn.a3_joint_fmnist/metrics.jsonl); about an hour on a starved core.
set -euo pipefail
cd "$(dirname "$0")/.."
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(joint9 attenuate9)
for m in "${names[@]}"; do
    case "$m" in
        joint9) cfg=configs/fmnist_a3.yaml ;;
        attenuate9) cfg=configs/fmnist_a3_attenuate_only.yaml ;;
        *) echo "error: unknown run $m (joint9 or attenuate9)" >&2; exit 2 ;;
    esac
    r=()
    [ -f "benchmarks/budget/$m/model.pt" ] && r=(--resume)
    nice -n 19 a3bench train "$cfg" --set train.epochs=9 --out "benchmarks/budget/$m/model.pt" "${r[@]}" --quiet
    nice -n 19 a3bench attack --model "benchmarks/budget/$m/model.pt" --suite standard -n 2000 --batch-size 500 \
        --eps 0.1 --seed 0 --out "benchmarks/budget/$m.json" --resume --keep-state --quiet
done
