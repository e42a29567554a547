"""Dataset sources: a name (and its other spellings) → the object that knows the dataset's
files, how to read them and what they hold (docs/architecture.md#extending).

A source is registered once, in its own module; :func:`a3bench.data.canonical_name`,
:func:`~a3bench.data.dataset_info`, :func:`~a3bench.data.load_dataset` and
:func:`~a3bench.data.search_paths` ask it, never a name. A canonical dataset name is the
source's ``name``, followed by ``:ARGUMENT`` for sources that take one
(``imagefolder:PATH``, ``synthetic:3x32x32``).
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TypeVar

from a3bench.data.base import DatasetInfo, ImageDataset, data_error
from a3bench.errors import excerpt

PathLike = str | os.PathLike[str] | None


class DatasetSource(ABC):
    """Where a dataset comes from. Subclasses set ``name`` and implement the four methods."""

    name: str  # the canonical name, and the prefix of NAME:ARGUMENT
    aliases: tuple[str, ...] = ()  # other spellings, compared as in :func:`normalise`
    usage: str | None = None  # how lists of valid names show it (default: ``name``)
    variants: str | None = None  # a further form worth naming in errors ("synthetic:CxHxW")
    takes_argument: bool = False  # NAME:ARGUMENT
    # Where the labels' order comes from, when the source derives it from the data rather
    # than from an official list (imagefolder: its sorted class folders). Shown to users.
    label_order: str | None = None

    def canonical(self, argument: str | None) -> str:
        """The canonical spelling, given the text after ``NAME:`` (None: there was no ':')."""
        return self.name

    @abstractmethod
    def info_for(self, canon: str) -> DatasetInfo:
        """Classes, input shape and normalisation, without loading the images."""

    def search_paths(self, canon: str, data_dir: PathLike = None) -> list[Path]:
        """The folders searched for the files, in order (none for generated data)."""
        return []

    @abstractmethod
    def load(self, canon: str, split: str, data_dir: PathLike = None, *, download: bool = True) -> ImageDataset:
        """One split in memory; every failure a user can cause is a one-line DataError."""


SOURCES: dict[str, DatasetSource] = {}
S = TypeVar("S", bound=DatasetSource)


def normalise(text: str) -> str:
    """``"Fashion-MNIST"``, ``"fashion_mnist"`` → ``"fashionmnist"``: how names are compared."""
    return re.sub(r"[-_\s]", "", text.lower())


def register_source(source: S) -> S:
    """Add ``source`` under its name; its name and aliases must be new."""
    taken = {normalise(a) for s in SOURCES.values() for a in (s.name, *s.aliases)}
    clash = {normalise(a) for a in (source.name, *source.aliases)} & taken
    if clash:
        raise ValueError(f"dataset source {source.name!r}: {', '.join(sorted(clash))} already registered")
    SOURCES[source.name] = source
    return source


def find_source(prefix: str) -> DatasetSource | None:
    """The source a name's part before ':' refers to, in any accepted spelling."""
    key = normalise(prefix)
    for source in SOURCES.values():
        if key in {normalise(a) for a in (source.name, *source.aliases)}:
            return source
    return None


def source_of(canon: str) -> DatasetSource:
    """The source of a canonical name (as :func:`a3bench.data.canonical_name` returns)."""
    try:
        return SOURCES[canon.partition(":")[0]]
    except KeyError:
        raise data_error(f"unknown dataset {excerpt(canon)}") from None
