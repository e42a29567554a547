"""Options and option handling shared by the commands that attack a model (``attack``,
``sweep-eps``): declared once here so both commands spell and document them alike."""

from __future__ import annotations

from pathlib import Path

import typer

MODEL = typer.Option(None, "--model", "-m", help="Zoo name, checkpoint path, file.py:factory, package.module:factory, robustbench:NAME or ensemble:SPEC1,SPEC2,...[:agg=crossmax|median|mean] (default: the bundled model).")
DATASET = typer.Option(None, "--dataset", "-d", help="fmnist, mnist, cifar10, cifar100, ... (default: the one the checkpoint was trained on).")
DATA_DIR = typer.Option(None, "--data-dir", help="Folder with the dataset files.")
NORM = typer.Option("Linf", "--norm", help="Linf or L2.")
N_EXAMPLES = typer.Option(1000, "--n-examples", "-n", help="First N test examples (0 = all).")
BATCH_SIZE = typer.Option(256, "--batch-size", "-b", help="Examples per attack call.")
DEVICE = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N.")
SEED = typer.Option(0, "--seed", help="Every random choice derives from it: same seed, same numbers.")


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
