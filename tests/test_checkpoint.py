"""A checkpoint is untrusted input: unsafe pickles, truncated files, other formats and
mismatched state dicts each give one readable line, exit ≠ 0, and nothing executes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.errors import CheckpointError
from a3bench.models import A3Config, create_model, load_checkpoint, load_model, save_checkpoint


@pytest.fixture()
def good_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = create_model("smallcnn", a3=A3Config(), mean=(0.286,), std=(0.353,)).eval()
    path = tmp_path / "good.pt"
    save_checkpoint(path, model, {"dataset": "fmnist", "metrics": {"clean_acc": 1.0}})
    return path, model


def test_round_trip_keeps_weights_a3_and_normalisation(good_checkpoint):
    path, model = good_checkpoint
    ck = load_checkpoint(path)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(ck.model(x), model(x))
    assert ck.meta["dataset"] == "fmnist" and ck.meta["a3"]["eval_mask"] == "soft"
    assert ck.meta["mean"] == pytest.approx([0.286]) and not ck.model.training


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _assert_one_line_error(path, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_code_executing_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "a3bench-checkpoint", "payload": _Exploit(marker)}, path)
    _assert_one_line_error(path, "refused")
    assert not marker.exists()
    # plain pickle (not a torch zip) too
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_truncated_file(good_checkpoint, tmp_path):
    path, _ = good_checkpoint
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _assert_one_line_error(cut, "not a readable checkpoint")


def test_other_formats(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello, I am not a checkpoint\n")
    _assert_one_line_error(text, "not a PyTorch checkpoint")
    bare = tmp_path / "bare_state_dict.pt"
    torch.save(create_model("smallcnn").state_dict(), bare)
    _assert_one_line_error(bare, "not an a3bench checkpoint")
    _assert_one_line_error(tmp_path / "missing.pt", "does not exist")


def test_state_dict_that_does_not_match_its_architecture(good_checkpoint, tmp_path):
    path, _ = good_checkpoint
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["backbone.fc.weight"] = torch.zeros(5, 5)
    bad = tmp_path / "mismatch.pt"
    torch.save(payload, bad)
    _assert_one_line_error(bad, "does not match architecture")
    payload = torch.load(path, weights_only=True)
    payload["meta"]["a3"] = None  # A3 weights present, architecture says none
    torch.save(payload, bad)
    _assert_one_line_error(bad, "does not match architecture")
    payload["meta"]["architecture"] = "resnet9000"
    torch.save(payload, bad)
    _assert_one_line_error(bad, "unknown architecture")


def test_cli_reports_bad_checkpoint_in_one_line(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04garbage")
    result = CliRunner().invoke(app, ["models", str(bad)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output


def test_cli_subprocess_no_traceback(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"x": _Exploit(marker)}, evil)
    proc = subprocess.run([sys.executable, "-m", "a3bench", "models", str(evil)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error:")
    assert not marker.exists()


def test_model_spec_errors(tmp_path):
    from a3bench.errors import ModelSpecError

    with pytest.raises(ModelSpecError, match="cannot resolve"):
        load_model("no-such-model")
    factory = tmp_path / "mine.py"
    factory.write_text("import torch\ndef make():\n    return torch.nn.Flatten()\ndef bad():\n    return 3\n")
    assert isinstance(load_model(f"{factory}:make").model, torch.nn.Flatten)
    with pytest.raises(ModelSpecError, match="not an nn.Module"):
        load_model(f"{factory}:bad")
    with pytest.raises(ModelSpecError, match="no callable"):
        load_model(f"{factory}:nothing")
    with pytest.raises(ModelSpecError, match="cannot import"):
        load_model("a3bench.no_such_module:make")
    assert load_model("torch.nn:Identity").source == "factory"


@pytest.mark.parametrize("classes, ok", [
    ([f"c{i}" for i in range(10)], True),
    (["a", "b"], False),  # not one per class
    ([f"c{i}" for i in range(9)] + [7], False),
    ([f"c{i}" for i in range(9)] + ["x" * 500], False),
])
def test_class_names_in_a_checkpoint_are_checked(tmp_path, classes, ok):
    model = create_model("smallcnn").eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, {"dataset": "imagefolder:/data", "classes": classes})
    if ok:
        assert load_model(str(path)).declared_classes == classes
    else:
        _assert_one_line_error(path, "meta.classes must name each of the 10 classes")
