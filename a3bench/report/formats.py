"""The output formats of ``a3bench report``: a small registry.

Each format is a module that defines ``FORMAT``, a :class:`ReportFormat` (what ``--out``
names, where it goes by default, how to write a :class:`ReportJob`). To add a format,
write its module and add one line to :data:`FORMAT_MODULES` — two files. Modules are
imported only when their format is used, so ``a3bench --help`` stays light.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from a3bench.errors import ResultError

if TYPE_CHECKING:  # only annotations: the format modules import this one
    from a3bench.report.load import LoadedResult
    from a3bench.report.robustbench import PublishedEntry

# name -> (module defining FORMAT, what it writes: for --help)
FORMAT_MODULES: dict[str, tuple[str, str]] = {
    "md": ("a3bench.report.markdown", "leaderboard + per-model reports (markdown)"),
    "html": ("a3bench.report.site", "a static site: index, one page per model and per flag"),
    "robustbench": ("a3bench.report.robustbench", "RobustBench model_info export"),
    "term": ("a3bench.report.terminal", "the boards in the terminal (writes no file)"),
}


@dataclass
class ReportJob:
    """What a format writes: the results read, and how the user asked for them."""

    results: list[LoadedResult]
    out: Path | None
    published: list[PublishedEntry] = field(default_factory=list)
    docs_url: str = "docs/diagnostics.md"
    model_reports: bool = True
    rank_all: bool = False


@dataclass
class ReportOutput:
    leaderboard: Path | None  # the markdown file or the site's index.html; None for the export and the terminal
    reports: list[Path] = field(default_factory=list)  # per-model markdown or HTML pages, or model_info JSONs
    results: list[LoadedResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    published: list[PublishedEntry] = field(default_factory=list)
    documents: list = field(default_factory=list)  # pages for the caller to show (the terminal format)


@dataclass(frozen=True)
class ReportFormat:
    name: str
    write: Callable[[ReportJob], ReportOutput]
    default_out: Callable[[Sequence[Path]], Path | None]  # from the folders given
    out_is: str = "file"  # "file" | "folder" | "none" (writes nothing: --out is refused)
    takes_published: bool = True  # --robustbench rows can join it
    folder_of: Callable[[Path], Path] | None = None  # the folder ``--out`` writes into, when not the rule of ``out_is``

    def check_out(self, out: Path | None) -> None:
        """``--out`` names what it will be, before anything is written."""
        if out is None:
            return
        if self.out_is == "none":
            raise ResultError(f"--format {self.name} writes no file: drop --out")
        folder = self.folder_of(out) if self.folder_of else out.parent if self.out_is == "file" else out
        if self.out_is == "file" and out.is_dir():
            raise ResultError(f"--out {out} is a folder; the {self.name} output is a file (e.g. {out / 'LEADERBOARD.md'})")
        if folder.exists() and not folder.is_dir():
            raise ResultError(f"--out {out}: {folder} is a file, not a folder")


def format_names() -> list[str]:
    return list(FORMAT_MODULES)


def get_format(name: str) -> ReportFormat:
    if name not in FORMAT_MODULES:
        raise ResultError(f"unknown report format {name!r} (valid: {', '.join(FORMAT_MODULES)})")
    return importlib.import_module(FORMAT_MODULES[name][0]).FORMAT


def first_folder(paths: Sequence[str | os.PathLike]) -> Path:
    first = Path(paths[0]) if paths else Path("results")
    return first if first.is_dir() else first.parent
