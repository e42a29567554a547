"""Options and option handling shared by the commands that attack a model (``attack``,
``sweep-eps``): declared once here so both commands spell and document them alike."""

from __future__ import annotations

from pathlib import Path

import typer

MODEL = typer.Option(None, "--model", "-m", help="Zoo name, checkpoint path, file.py:factory, package.module:factory, robustbench:NAME or ensemble:SPEC1,SPEC2,...[:agg=crossmax|median|mean] (default: the bundled model). A checkpoint is safe to load (weights only: no code in it runs); file.py:factory and package.module:factory import and RUN that Python code, as does the attack transfer:SPEC with such a SPEC.")
DATASET = typer.Option(None, "--dataset", "-d", help="fmnist, mnist, cifar10, cifar100, ... (default: the one the checkpoint was trained on).")
DATA_DIR = typer.Option(None, "--data-dir", help="Folder with the dataset files.")
NORM = typer.Option("Linf", "--norm", help="Linf or L2.")
N_EXAMPLES = typer.Option(1000, "--n-examples", "-n", help="First N test examples (0 = all).")
BATCH_SIZE = typer.Option(256, "--batch-size", "-b", help="Examples per attack call.")
DEVICE = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N.")
ENGINE = typer.Option("auto", "--engine", help="How attacks call the model: auto (a channels_last copy where it agrees with the model; the judge always uses the model as given), compile (+ torch.compile), plain (the model as given). docs/performance.md.")
def _check_seed(value: int) -> int:
    """--seed within what every generator accepts: a huge one would overflow mid-attack."""
    from a3bench.cli.common import fail
    from a3bench.errors import A3BenchError
    from a3bench.limits import check_seed

    try:
        return check_seed(value, "--seed")
    except A3BenchError as e:
        fail(str(e))


SEED = typer.Option(0, "--seed", callback=_check_seed, help="Every random choice derives from it: same seed, same numbers (0 to 4294967295).")


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
    from a3bench.errors import DataError, excerpt
    from a3bench.models import load_model

    ds_name = canonical_name(dataset) if dataset else None
    loaded = load_model(model, dataset=ds_name, norm=norm, device=device)
    ds_name = ds_name or (canonical_name(loaded.dataset) if loaded.dataset else None)
    if ds_name is None:
        raise DataError(f"model {excerpt(model)} does not say which dataset it was trained on: pass --dataset")
    return loaded, ds_name, load_dataset(ds_name, "test", data_dir)
