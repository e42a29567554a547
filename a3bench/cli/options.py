"""Option handling shared by the commands that attack a model (``attack``, ``sweep-eps``).

``attack_cli`` still has its own inline copy of :func:`load_model_and_dataset`; new
commands use this one.
"""

from __future__ import annotations

from pathlib import Path


def check_counts(batch_size: int, n_examples: int | None) -> None:
    from a3bench.errors import AttackError, DataError

    if batch_size < 1:
        raise AttackError(f"--batch-size must be ≥ 1, got {batch_size}")
    if n_examples is not None and n_examples < 0:
        raise DataError(f"--n-examples must be ≥ 0, got {n_examples}")


def load_model_and_dataset(model: str | None, dataset: str | None, data_dir: Path | None, norm: str, device):
    """``--model`` / ``--dataset`` / ``--data-dir`` → (LoadedModel, canonical dataset name, test split).

    The dataset defaults to the one the checkpoint was trained on; a model that does not
    say (a factory) needs ``--dataset``.
    """
    from a3bench.data import canonical_name, load_dataset
    from a3bench.errors import DataError
    from a3bench.models import load_model

    ds_name = canonical_name(dataset) if dataset else None
    loaded = load_model(model, dataset=ds_name, norm=norm, device=device)
    ds_name = ds_name or (canonical_name(loaded.dataset) if loaded.dataset else None)
    if ds_name is None:
        raise DataError(f"model {model!r} does not say which dataset it was trained on: pass --dataset")
    return loaded, ds_name, load_dataset(ds_name, "test", data_dir)
