"""Build hook: the wheel carries the bundled model zoo, the training configs and the
diagnostics guide as package data (a3bench/model_zoo, a3bench/configs, a3bench/docs),
and ``a3bench-autoattack.pth`` at the top of site-packages, which lets ``import robustbench``
find PyPI's AutoAttack (a3bench/_autoattack_alias.py says how).

They stay at the repository root, where they are edited and where a source checkout
reads them; only the built package gets copies. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("model_zoo", "configs", "docs/diagnostics.md")  # as a3bench.bundled.BUNDLED
PTH = "a3bench-autoattack.pth"  # installed beside the package, not inside it: Python reads .pth files there
SKIP = shutil.ignore_patterns("__pycache__", "*.py", "*.pyc", "*.tmp", ".*")  # model_zoo/publish.py is a maintainer tool


class BuildPyWithBundledData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout (a3bench.bundled)
        shutil.copy2(ROOT / PTH, Path(self.build_lib) / PTH)
        for name in BUNDLED:
            src, dst = ROOT / name, Path(self.build_lib) / "a3bench" / name
            if not src.exists():
                raise FileNotFoundError(f"{src} is missing: the wheel would ship without it")
            if src.is_dir():
                shutil.copytree(src, dst, ignore=SKIP, dirs_exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildPyWithBundledData})
