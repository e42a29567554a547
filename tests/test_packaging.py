"""The package as users install it: the wheel carries the zoo, the configs, the diagnostics
guide and py.typed; installed code finds them wherever it runs. (.ci/smoke-wheel installs the
wheel into a fresh venv and attacks from an empty folder; this checks the pieces quickly.)"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from a3bench.bundled import BUNDLED, bundled_config, bundled_path
from a3bench.models import zoo

REPO = Path(__file__).resolve().parents[1]
PTH = REPO / "a3bench-autoattack.pth"


def _python_with_pth(code: str, tmp_path: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that read the wheel's .pth file at start-up, as an
    installed a3bench's interpreter does (site-packages is where site.addsitedir looks)."""
    site_dir = tmp_path / "site-packages"
    site_dir.mkdir(exist_ok=True)
    (site_dir / PTH.name).write_bytes(PTH.read_bytes())
    paths = [str(p) for p in (extra_path, REPO) if p is not None]
    prelude = f"import site, sys; sys.path[:0] = {paths!r}; site.addsitedir({str(site_dir)!r})\n"
    return subprocess.run([sys.executable, "-W", "ignore", "-c", prelude + code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)


def test_import_robustbench_works_where_a3bench_is_installed(tmp_path: Path):
    """RobustBench imports `autoattack`; PyPI ships it as `pyautoattack`: the .pth file bridges them."""
    out = _python_with_pth("import robustbench, autoattack, pyautoattack, sys\n"
                           "assert autoattack is pyautoattack\n"
                           "assert sys.modules['autoattack.state'] is sys.modules['pyautoattack.state']\n"
                           "print(robustbench.load_model.__module__)", tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "robustbench.utils"


def test_a_real_autoattack_wins_over_the_alias(tmp_path: Path):
    real = tmp_path / "elsewhere"
    (real / "autoattack").mkdir(parents=True)
    (real / "autoattack" / "__init__.py").write_text("REAL = True\n")
    out = _python_with_pth("import autoattack; print(autoattack.REAL)", tmp_path, extra_path=real)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"


def test_the_pth_line_never_breaks_start_up(tmp_path: Path):
    """Without a3bench importable (a broken install), Python still starts, silently."""
    site_dir = tmp_path / "site-packages"
    site_dir.mkdir()
    (site_dir / PTH.name).write_bytes(PTH.read_bytes())
    code = f"import site, sys; sys.modules['a3bench'] = None; site.addsitedir({str(site_dir)!r}); print('started')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "started" and out.stderr == ""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="pip install build (the test extra has it)")
def test_wheel_carries_bundled_data(tmp_path: Path):
    """Built the way `python -m build` does it: the sdist, then the wheel from the sdist (so
    MANIFEST.in is tested too)."""
    out = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (wheel,) = tmp_path.glob("a3bench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    zoo_names = sorted(p.parent.name for p in (REPO / "model_zoo").glob("*/model.pt"))
    assert zoo_names
    for name in zoo_names:
        assert {f"a3bench/model_zoo/{name}/model.pt", f"a3bench/model_zoo/{name}/card.yaml"} <= names
    assert {f"a3bench/configs/{p.name}" for p in (REPO / "configs").glob("*.yaml")} <= names
    assert {"a3bench/docs/diagnostics.md", "a3bench/py.typed", "a3bench/cli/__init__.py"} <= names
    templates = {f"a3bench/report/templates/{p.name}" for p in (REPO / "a3bench" / "report" / "templates").iterdir()}
    assert templates and templates <= names  # the site's Jinja2 templates, CSS and script
    assert "a3bench/model_zoo/publish.py" not in names  # a maintainer's tool, not package code
    # beside the package, where Python reads .pth files, and the same file as the checkout's
    assert zipfile.ZipFile(wheel).read(PTH.name) == PTH.read_bytes()
    record = zipfile.ZipFile(wheel).read("a3bench-0.1.0.dist-info/RECORD").decode()
    assert f"{PTH.name}," in record  # so pip uninstall removes it


def test_bundled_data_found_from_the_checkout():
    for name in BUNDLED:
        assert bundled_path(name) == REPO / name
    assert bundled_config("configs/fmnist_a3.yaml") == REPO / "configs" / "fmnist_a3.yaml"
    assert bundled_config("fmnist_a3") == REPO / "configs" / "fmnist_a3.yaml"
    assert bundled_config("../pyproject.toml") is None and bundled_config("nope.yaml") is None


def test_zoo_search_order(tmp_path: Path, monkeypatch):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for d in (mine, theirs):
        (d / "my.model").mkdir(parents=True)
        (d / "my.model" / "model.pt").write_bytes(b"")
    monkeypatch.setenv("A3BENCH_ZOO", f"{mine}:{theirs}")
    monkeypatch.chdir(tmp_path)
    dirs = zoo.zoo_dirs()
    assert dirs[:2] == [mine, theirs] and dirs[-1] == REPO / "model_zoo"
    assert zoo.zoo_path("my.model") == mine / "my.model" / "model.pt"
    assert "my.model" in zoo.list_zoo() and "smallcnn.a3_joint_fmnist" in zoo.list_zoo()
    for bad in ("../theirs/my.model", "/etc", "..", ""):
        assert zoo.zoo_path(bad) is None


def test_train_finds_a_shipped_config_anywhere(tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from a3bench.cli import app

    monkeypatch.chdir(tmp_path)  # no configs/ here
    res = CliRunner().invoke(app, ["train", "configs/fmnist_a3.yaml", "--set", "train.epochs=-1"])
    assert "does not exist" not in res.output  # found the shipped one; then refused the bad override
    assert res.exit_code == 2 and res.output.startswith("error:")
