"""``a3bench attack``: a real run (CliRunner and a subprocess), and one test per bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from a3bench.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["attack", *args])


def test_attack_writes_record(checkpoint, tmp_path):
    out = tmp_path / "r.json"
    res = invoke("--model", str(checkpoint), "--eps", "0.1", "--attacks", "fgsm,pgd-5:loss=dlr", "-n", "64",
                 "--batch-size", "32", "--out", str(out), "--quiet", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "worst case" in res.output and "verdict" in res.output
    rec = json.loads(out.read_text())
    assert rec["dataset"] == "fmnist" and rec["norm"] == "Linf" and rec["eps"] == 0.1 and rec["n_examples"] == 64
    assert [a["name"] for a in rec["per_attack"]] == ["fgsm", "pgd-5:loss=dlr"]
    assert isinstance(rec["clean_acc"], float) and rec["robust_acc"] <= rec["clean_acc"]
    assert rec["model"]["spec"] == str(checkpoint) and rec["architecture"] == "smallcnn"
    assert (tmp_path / "r.outcomes.json").is_file()


def test_default_eps_and_suite(checkpoint, tmp_path):
    out = tmp_path / "r.json"
    res = invoke("--model", str(checkpoint), "-n", "32", "--out", str(out), "--quiet", "--norm", "L2")
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    assert rec["eps"] == 1.5 and rec["suite"] == "quick" and rec["attacks"] == ["pgd-20"]


def test_subprocess_run(checkpoint, tmp_path):
    out = tmp_path / "sub.json"
    env = {**os.environ, "A3BENCH_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "a3bench", "attack", "--model", str(checkpoint), "--eps", "8/255",
                           "--attacks", "pgd-3", "-n", "40", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(out.read_text())
    assert rec["eps_text"] == "8/255" and "a3bench attack" in rec["provenance"]["command"].replace("__main__.py", "a3bench")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--eps", "8/0"], "divides by zero"),
        (["--eps", "-1"], "eps"),
        (["--eps", "abc"], "not a number"),
        (["--eps", "0.1", "--attacks", "pgd-x"], "unknown attack"),
        (["--eps", "0.1", "--suite", "nope"], "unknown suite"),
        (["--eps", "0.1", "--suite", "quick", "--attacks", "fgsm"], "not both"),
        (["--eps", "0.1", "--norm", "L3"], "unknown norm"),
        (["--eps", "0.1", "--batch-size", "0"], "batch-size"),
        (["--eps", "0.1", "--dataset", "synthetic:3x32x32"], "shape"),
    ],
)
def test_bad_input(checkpoint, args, fragment):
    res = invoke("--model", str(checkpoint), "-n", "8", "--quiet", *args)
    assert res.exit_code == 2, res.output
    err = res.stderr if hasattr(res, "stderr") else res.output
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], err


def test_bad_model_spec(tmp_path):
    res = invoke("--model", "no-such-model", "--eps", "0.1", "--quiet")
    assert res.exit_code == 2 and "cannot resolve model" in res.output
    res = invoke("--model", str(tmp_path / "missing.py") + ":make", "--dataset", "fmnist", "--eps", "0.1")
    assert res.exit_code == 2 and "does not exist" in res.output


def test_factory_needs_dataset(tmp_path):
    factory = tmp_path / "net.py"
    factory.write_text("import torch\ndef make():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))\n")
    res = invoke("--model", f"{factory}:make", "--eps", "0.1", "--quiet")
    assert res.exit_code == 2 and "--dataset" in res.output
    out = tmp_path / "r.json"
    res = invoke("--model", f"{factory}:make", "--dataset", "fmnist", "--eps", "0.1", "-n", "16", "--attacks", "fgsm", "--quiet", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["name"] == "make"


def test_resume_flag(checkpoint, tmp_path):
    out = tmp_path / "r.json"
    res = invoke("--model", str(checkpoint), "--eps", "0.1", "--attacks", "fgsm", "-n", "16", "--out", str(out), "--quiet", "--resume")
    assert res.exit_code == 0, res.output  # nothing to resume: a normal run
    assert json.loads(out.read_text())["n_examples"] == 16


def test_default_path_keeps_a_different_evaluation(checkpoint, tmp_path, monkeypatch):
    """A quick default run must not replace a longer evaluation at results/…: it goes to runs/…;
    the same evaluation rerun replaces its own record; --out replaces on purpose."""
    monkeypatch.chdir(tmp_path)
    base = ("--model", str(checkpoint), "--quiet", "--device", "cpu", "--attacks", "fgsm")
    assert invoke(*base, "-n", "40").exit_code == 0
    published = tmp_path / "results" / "fmnist" / "Linf" / "std_fmnist.json"
    before = published.read_text()
    assert json.loads(before)["n_examples"] == 40

    res = invoke(*base, "-n", "20")
    assert res.exit_code == 0, res.output
    assert published.read_text() == before  # kept
    side = tmp_path / "runs" / "fmnist" / "Linf" / "std_fmnist.json"
    assert json.loads(side.read_text())["n_examples"] == 20
    assert "n_examples" in res.output and "kept" in res.output

    res = invoke(*base, "-n", "40")  # the same evaluation: replaced in place, nothing new in runs/
    assert res.exit_code == 0 and "kept" not in res.output
    assert json.loads(published.read_text())["n_examples"] == 40

    assert invoke(*base, "-n", "20", "--out", str(published)).exit_code == 0
    assert json.loads(published.read_text())["n_examples"] == 20


# Fashion-MNIST's classes as a user names class folders: sorted, they are not Fashion-MNIST's order.
FOLDERS = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]


def _fmnist_as_image_folder(fmnist_test, root, names=FOLDERS, per_class: int = 3):
    from PIL import Image

    counts = dict.fromkeys(range(10), 0)
    for image, label in zip(fmnist_test.images, fmnist_test.labels.tolist()):
        if counts[label] < per_class:
            (root / names[label]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy()).save(root / names[label] / f"{counts[label]}.png")
            counts[label] += 1
        if min(counts.values()) == per_class:
            return root


def test_image_folder_label_order_is_shown_and_a_disagreeing_model_is_warned(checkpoint, fmnist_test, tmp_path):
    """The imagefolder order is the sorted folder names; the Fashion-MNIST model's is Fashion-MNIST's.
    A user once lost 26.7 points of clean accuracy to it without a word: now the summary says so."""
    root = _fmnist_as_image_folder(fmnist_test, tmp_path / "imgs")
    res = invoke("--model", str(checkpoint), "--dataset", f"imagefolder:{root}", "--eps", "0.1", "--attacks", "fgsm",
                 "--out", str(tmp_path / "r.json"), "--quiet", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert f"imagefolder:{root}: labels follow the class folders' names, sorted: 0=ankle_boot, 1=bag, 2=coat" in res.stdout
    assert "warning: " in res.stdout and "label 0 is 'T-shirt/top' for the model but 'ankle_boot' in the data" in res.stdout
    # folders that sort in the model's order: the order is shown, and nothing is wrong
    ordered = _fmnist_as_image_folder(fmnist_test, tmp_path / "ordered", [f"{i}_{n}" for i, n in enumerate(FOLDERS)])
    res = invoke("--model", str(checkpoint), "--dataset", f"imagefolder:{ordered}", "--eps", "0.1", "--attacks", "fgsm",
                 "--out", str(tmp_path / "o.json"), "--quiet", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "labels follow the class folders' names, sorted: 0=0_tshirt_top" in res.stdout and "warning" not in res.output


def test_training_on_an_image_folder_records_its_class_order(fmnist_test, tmp_path):
    from a3bench.config import load_config
    from a3bench.data import dataset_info
    from a3bench.models import load_checkpoint, load_model
    from a3bench.train.loop import train
    from tests.conftest import REPO

    root = _fmnist_as_image_folder(fmnist_test, tmp_path / "imgs")
    shutil.copytree(root, tmp_path / "split" / "train")
    shutil.copytree(root, tmp_path / "split" / "test")
    cfg = load_config(REPO / "configs" / "fmnist_pgdat.yaml", [f"dataset=imagefolder:{tmp_path / 'split'}", "train.max_steps=1",
                                                                 "train.batch_size=8", "attack.steps=1", "eval.n_examples=8",
                                                                 "eval.pgd_steps=1"])
    train(cfg, tmp_path / "m.pt")
    assert load_checkpoint(tmp_path / "m.pt").meta["classes"] == sorted(FOLDERS) == list(dataset_info(cfg.dataset).classes)
    assert load_model(str(tmp_path / "m.pt")).declared_classes == sorted(FOLDERS)
