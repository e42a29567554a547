"""a3bench: train A3-defended classifiers and evaluate them honestly."""

__version__ = "0.1.0"
