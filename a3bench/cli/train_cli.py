"""``a3bench train CONFIG.yaml [--set key=value ...] [--out PATH] [--resume]``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from a3bench.cli.common import console, esc, handle_errors


@handle_errors
def train_command(
    config: Path = typer.Argument(..., help="YAML training config; a shipped one by name works anywhere (fmnist_a3.yaml, see configs/)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Dotted override, e.g. --set train.epochs=3 (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Checkpoint path (default runs/<config name>/model.pt)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint at --out."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda (overrides the config)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder with the dataset files."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar (CI logs)."),
) -> None:
    """Train a classifier (standard, PGD-AT, FGSM-AT or TRADES; with or without A3; CrossMax in two phases)."""
    from a3bench.bundled import bundled_config
    from a3bench.config import load_config

    if not config.exists():
        # Outside the checkout, `a3bench train configs/fmnist_a3.yaml` (README) means the shipped one.
        config = bundled_config(config) or config
    overrides = list(set_ or [])
    if device:
        overrides.append(f"device={device}")
    if data_dir:
        overrides.append(f"data_dir={data_dir}")
    cfg = load_config(config, overrides)
    out = out or Path("runs") / config.stem / "model.pt"

    from a3bench.cli.options import print_label_notes
    from a3bench.data import dataset_info
    from a3bench.train.loop import train

    con = console()
    callbacks = _EpochLines(con) if quiet else _RichTrainProgress(con)
    try:
        result = train(cfg, out, resume=resume, callbacks=callbacks)
    finally:
        if hasattr(callbacks, "close"):
            callbacks.close()
    if not result.history:
        con.print(f"nothing to train: {esc(result.checkpoint)} has no epoch left to run", soft_wrap=True)
        return
    m = result.final
    con.print(
        f"[bold]done[/]: clean {m.clean_acc:.2f} %, PGD-{m.pgd_steps} {m.pgd_acc:.2f} % "
        f"(first {m.n_eval} test examples, {esc(cfg.attack.norm)} eps {cfg.attack.eps:g}) -> {esc(result.checkpoint)}",
        soft_wrap=True,
    )
    print_label_notes(con, dataset_info(cfg.dataset, cfg.data_dir))  # an image folder: which class each label is


def _epoch_line(m) -> str:
    """One epoch as rich markup: every name in it escaped."""
    phase = esc(f" [{m.phase}]") if m.phase != "model" else ""
    line = (
        f"epoch {m.epoch}{phase}: loss {m.train_loss:.3f}  train {m.train_acc:.1f} %  "
        f"clean {m.clean_acc:.2f} %  PGD-{m.pgd_steps} {m.pgd_acc:.2f} %  ({m.seconds:.0f} s)"
    )
    if m.predictor_acc:  # a CrossMax model's heads: each predictor's clean accuracy
        line += "\n  predictors clean %: " + "  ".join(f"{esc(k)} {v:.1f}" for k, v in m.predictor_acc.items())
    return line


class _EpochLines:
    """--quiet: no progress bar, one line per epoch (CI logs)."""

    def __init__(self, con) -> None:
        self.con = con

    def on_epoch_start(self, epoch, epochs, steps):
        pass

    def on_step(self, epoch, step, loss):
        pass

    def on_epoch_end(self, m):
        self.con.print(_epoch_line(m))


class _RichTrainProgress:
    def __init__(self, con) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.con = con
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=con,
            transient=True,
        )
        self.progress.start()
        self.task = None

    def on_epoch_start(self, epoch, epochs, steps):
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("train", total=steps, epoch=epoch, epochs=epochs, loss="—")  # no batch yet

    def on_step(self, epoch, step, loss):
        self.progress.update(self.task, completed=step, loss=f"{loss:.3f}")

    def on_epoch_end(self, m):
        self.progress.console.print(_epoch_line(m))

    def close(self):
        self.progress.stop()
