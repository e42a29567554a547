"""What ships with a3bench besides code: the model zoo, the training configs and the
diagnostics guide.

They are edited at the repository root (``model_zoo/``, ``configs/``,
``docs/diagnostics.md``). A wheel carries copies inside the package
(``a3bench/model_zoo`` ...; see setup.py), so an installed a3bench finds them wherever it
is installed and whatever the working directory is.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent

# Paths relative to the repository root, and to the package in a wheel.
BUNDLED = ("model_zoo", "configs", "docs/diagnostics.md")


def _is_checkout(root: Path) -> bool:
    # site-packages is the parent of an installed package: its docs/ or configs/ belong to
    # someone else, so the source root is used only when it is a3bench's own checkout.
    return (root / "pyproject.toml").is_file() and (root / "a3bench" / "__init__.py").is_file()


def bundled_path(name: str) -> Path | None:
    """Where the bundled ``name`` (one of :data:`BUNDLED`) is: inside the installed package,
    else in the source checkout this package was imported from; None when neither has it."""
    if name not in BUNDLED:
        raise ValueError(f"{name!r} is not bundled (bundled: {', '.join(BUNDLED)})")
    candidates = [PACKAGE_DIR / name] + ([SOURCE_ROOT / name] if _is_checkout(SOURCE_ROOT) else [])
    return next((p for p in candidates if p.exists()), None)


def bundled_config(name: str | Path) -> Path | None:
    """A shipped training config by file name (``fmnist_a3.yaml``, ``configs/fmnist_a3.yaml``
    or ``fmnist_a3``), for ``a3bench train`` run outside the checkout; None if not shipped."""
    folder = bundled_path("configs")
    if folder is None:
        return None
    stem = Path(name).name
    for candidate in (stem, f"{stem}.yaml"):
        p = folder / candidate
        if p.is_file() and p.parent == folder:
            return p
    return None
