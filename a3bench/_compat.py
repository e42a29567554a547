"""The one place that reconciles RobustBench with PyPI's AutoAttack.

RobustBench 1.1.1 imports the module ``autoattack``; PyPI ships AutoAttack as the
distribution ``pyautoattack`` (module ``pyautoattack``). RobustBench also imports
``pkg_resources`` (hence ``setuptools<81``). Import both through here, never directly.
"""

from __future__ import annotations

import sys
import warnings


def import_autoattack():
    """Return the ``pyautoattack`` module, registered under the name ``autoattack`` too."""
    import pyautoattack

    sys.modules.setdefault("autoattack", pyautoattack)
    return pyautoattack


def import_robustbench():
    import_autoattack()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources deprecation noise
        import robustbench
    return robustbench
