"""Publish a trained checkpoint into the model zoo: model.pt, config.yaml, metrics, card.yaml.

    python model_zoo/publish.py runs/zoo/smallcnn.a3_joint_fmnist/model.pt \
        --name smallcnn.a3_joint_fmnist --config configs/fmnist_a3.yaml

The checkpoint is copied without its training state (optimizer, RNG), which `--resume`
needs but a published model does not. The card is generated from the checkpoint's own
metadata, so the numbers in it are the ones the training run measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
import yaml

from a3bench.io import atomic_write_bytes
from a3bench.models.attention import trained_attention_scales
from a3bench.models.checkpoint import build_from_meta, read_checkpoint
from a3bench.models.crossmax import crossmax_info

ZOO = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--description", default="")
    args = ap.parse_args()

    payload = read_checkpoint(args.checkpoint)  # validates, refuses unsafe files
    history = payload.get("train_state", {}).get("history", [])
    payload.pop("train_state", None)
    dest = ZOO / args.name
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest / "model.pt", lambda f: torch.save(payload, f))
    shutil.copyfile(args.config, dest / "config.yaml")
    (dest / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in history))

    meta = payload["meta"]
    train = meta["train"]
    metrics = meta["metrics"]
    model = build_from_meta(meta, source=str(args.checkpoint))
    model.load_state_dict(payload["state_dict"], strict=True)
    scales = trained_attention_scales(model)  # the pre-softmax scales a ViT carries (AAS-AT)
    card = {
        "name": args.name,
        "description": args.description,
        "architecture": meta["architecture"],
        "dataset": meta["dataset"],
        "threat_model": {"norm": metrics["norm"], "eps": metrics["eps"]},
        "objective": train["objective"]["name"],
        "method": train["train"]["method"],
        "a3": meta.get("a3"),
        "arch_options": meta.get("arch_options") or None,
        "attention_scales": scales or None,
        "training": {
            "epochs": train["train"]["epochs"],
            "batch_size": train["train"]["batch_size"],
            "optimizer": train["train"]["optimizer"],
            "lr": train["train"]["lr"],
            "attack": train["attack"],
            "seed": train["seed"],
            **({"aas_every": train["train"]["aas_every"]} if train["train"].get("aas_every") else {}),
            "config": f"configs/{args.config.name}",
        },
        "metrics": {
            "clean_acc": metrics["clean_acc"],
            "pgd_acc": metrics["pgd_acc"],
            "pgd_steps": metrics["pgd_steps"],
            "n_examples": metrics["n_examples"],
            "note": "held-out monitoring during training (first n test examples); see results/ for the full evaluation",
        },
        # RobustBench model_info fields for reports and leaderboards
        "link": f"model_zoo/{args.name}",
        "authors": "a3bench",
        "venue": "a3bench model zoo",
        "additional_data": False,
        "reported": None,
        "footnote": None,
        "a3bench_version": meta.get("a3bench_version"),
    }
    crossmax = crossmax_card(meta, train, history)
    if crossmax is not None:
        card["crossmax"] = crossmax
    (dest / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    print(f"published {args.name}: clean {metrics['clean_acc']:.2f} %, PGD-{metrics['pgd_steps']} {metrics['pgd_acc']:.2f} % -> {dest}")


def crossmax_card(meta: dict, train: dict, history: list[dict]) -> dict | None:
    """A CrossMax model's card section: its predictors and aggregation (asked of the rebuilt
    model), the multi-resolution amounts, the heads' training, each predictor's accuracy."""
    info = crossmax_info(build_from_meta(meta))
    if info is None:
        return None
    options = meta.get("arch_options") or {}
    last_heads = next((m for m in reversed(history) if m.get("predictor_acc")), None)
    return {
        "backbone": options.get("backbone"),
        "predictors": info.predictors,
        "aggregation": info.aggregation,
        "k": info.k,
        "randomized": info.randomized,  # fresh multi-resolution draws at every forward pass
        "multiresolution": {key: options[key] for key in (
            "resolutions", "shift", "contrast", "noise_kind", "noise_down", "noise_up", "down_mode", "up_mode"
        ) if key in options},
        "heads_training": train.get("heads"),
        "predictor_clean_acc": last_heads["predictor_acc"] if last_heads else None,
    }


if __name__ == "__main__":
    main()
