"""``import autoattack`` finds PyPI's AutoAttack (the distribution ``pyautoattack``).

RobustBench 1.1.1 imports ``autoattack`` (the package name of AutoAttack on GitHub); PyPI
ships AutoAttack as ``pyautoattack``, so after ``pip install robustbench`` alone, ``import
robustbench`` fails with "No module named 'autoattack'". a3bench's wheel installs
``a3bench-autoattack.pth``, which calls :func:`install` when Python starts: a finder at the
end of ``sys.meta_path``, asked only after every other one, that answers only for
``autoattack`` — a real ``autoattack`` (``pip install git+https://github.com/fra31/auto-attack``)
always wins. It costs nothing until ``autoattack`` is imported: no import happens here.
"""

from __future__ import annotations

import sys

NAME = "autoattack"
TARGET = "pyautoattack"


class _AliasFinder:
    """Meta-path finder and loader: ``autoattack`` → the ``pyautoattack`` module itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != NAME:
            return None
        import importlib.machinery
        import importlib.util

        if importlib.util.find_spec(TARGET) is None:
            return None  # nothing to alias: the usual "No module named 'autoattack'"
        return importlib.machinery.ModuleSpec(NAME, self)

    def create_module(self, spec):
        return None  # a placeholder; exec_module replaces it in sys.modules

    def exec_module(self, module) -> None:
        import importlib

        real = importlib.import_module(TARGET)
        # The import statement returns sys.modules[NAME]: the real module, not the placeholder.
        # Its submodules are aliased too (autoattack.state is pyautoattack.state), so no class
        # exists twice under two names.
        for name, mod in list(sys.modules.items()):
            if name == TARGET or name.startswith(TARGET + "."):
                sys.modules.setdefault(NAME + name[len(TARGET):], mod)
        sys.modules[NAME] = real


def install() -> None:
    """Add the finder (once). Called by the ``.pth`` file at start-up and by :mod:`a3bench._compat`."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
