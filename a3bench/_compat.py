"""The one place that reconciles RobustBench with PyPI's AutoAttack.

RobustBench 1.1.1 imports the module ``autoattack``; PyPI ships AutoAttack as the
distribution ``pyautoattack`` (module ``pyautoattack``). :mod:`a3bench._autoattack_alias`
makes ``import autoattack`` find it (the wheel's ``.pth`` file installs it at start-up, for
every program; this module installs it too, for a source checkout). RobustBench also imports
``pkg_resources`` (hence the ``setuptools<82`` pin in pyproject.toml). Import both through
here, never directly.
"""

from __future__ import annotations

import warnings


def import_autoattack():
    """Return the ``pyautoattack`` module (the version pyproject.toml pins), with ``import
    autoattack`` answered by it unless a real ``autoattack`` is installed."""
    from a3bench._autoattack_alias import install

    install()
    import pyautoattack

    return pyautoattack


def import_robustbench():
    import_autoattack()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources deprecation noise
        import robustbench
    return robustbench
