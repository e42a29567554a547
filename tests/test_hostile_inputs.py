"""Hostile input and faults (issue 14), outside the evaluation core and the reports.

Every case runs a real command and asserts what a user is promised: exactly one line on
stderr, starting with ``error:``; exit code 2; no traceback; nothing written anywhere
in the sandbox (the named folder included) and every existing file unchanged.

Bombs are a few KB on disk. They run under a lowered address-space limit and an alarm,
so a regression that allocates what the input claims fails the test (MemoryError, which
the CLI would report as "out of memory", does not match the expected refusal) instead of
eating the machine.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import math
import os
import pickle
import re
import resource
import signal
import struct
import subprocess
import sys
import typing
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from a3bench.cli import app
from tests.conftest import REPO

# --------------------------------------------------------------------------- harness


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a hash of its bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class Sandbox:
    """A working folder (the cwd) in which commands run; files are put there first."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, data: bytes | str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def refuses(self, args: list[str], match: str, code: int = 2) -> str:
        """Run ``a3bench ARGS``; assert one error line matching ``match``, ``code``, no
        traceback, and the sandbox exactly as it was. Returns the error line."""
        before = _snapshot(self.root)
        result = CliRunner().invoke(app, [str(a) for a in args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}") from result.exception
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert "Traceback" not in result.output
        assert len(lines) == 1, f"expected one stderr line, got {lines[:5]}"
        line = lines[0]
        assert line.startswith("error: "), line
        assert len(line) <= 2100, f"an error line of {len(line)} characters"
        assert result.exit_code == code, (result.exit_code, line)
        assert re.search(match, line), f"{match!r} not in {line!r}"
        assert _snapshot(self.root) == before, "the command wrote or changed files"
        return line


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    root = tmp_path / "sandbox"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("A3BENCH_OFFLINE", "1")
    monkeypatch.setenv("A3BENCH_ZOO", str(root / "zoo"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no dataset download cache outside
    return Sandbox(root)


def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(autouse=True)
def bounded():
    """At most ~1 GiB more address space and 60 s for every test here: a bomb that gets
    expanded (or a huge value printed) fails the test rather than the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = _vm_bytes()
    if vm:
        limit = vm + (1 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))

    def timeout(*_):
        raise TimeoutError("a hostile input took more than 60 s to refuse")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """YAML whose last anchor expands to width**levels strings: a few hundred bytes."""
    rows = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


# A small valid checkpoint (smallcnn on Fashion-MNIST shapes); its payload is mutated below.
@pytest.fixture(scope="module")
def good_payload(tmp_path_factory):
    from a3bench.models import A3Config, create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("smallcnn", a3=A3Config(), mean=(0.286,), std=(0.353,))
    path = tmp_path_factory.mktemp("good") / "model.pt"
    save_checkpoint(path, model, {"dataset": "fmnist", "metrics": {"clean_acc": 50.0}})
    return torch.load(path, weights_only=True)


def _save(sandbox: Sandbox, rel: str, payload) -> Path:
    path = sandbox.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def _with_meta(payload, **changes):
    meta = dict(payload["meta"])
    for key, value in changes.items():
        if value is _DELETE:
            meta.pop(key, None)
        else:
            meta[key] = value
    return {**payload, "meta": meta}


_DELETE = object()


# --------------------------------------------------------------------------- 1. cheap to refuse


def test_yaml_alias_bomb_in_a_config(sandbox):
    cfg = sandbox.write("bomb.yaml", "dataset: synthetic\nmodel:\n  options:\n" + "".join(
        "    " + line + "\n" for line in _alias_bomb().splitlines()) + "seed: 0\n")
    assert cfg.stat().st_size < 1000
    sandbox.refuses(["train", cfg, "--out", "run/m.pt"], "expands to more than .* through its aliases")


def test_yaml_alias_bomb_in_a_used_value_names_no_huge_value(sandbox):
    anchors = "".join("    " + line + "\n" for line in _alias_bomb(levels=4).splitlines())
    cfg = sandbox.write("bomb.yaml", "model:\n  options:\n" + anchors + "seed: *a3\n")
    # 9**4 strings twice: under the expansion bound, so the value reaches the typed check,
    # whose error quotes a short excerpt of it, not the whole list.
    line = sandbox.refuses(["train", cfg, "--out", "run/m.pt"], r"seed: expected an integer, got \[\[")
    assert len(line) < 200


def test_yaml_alias_bomb_in_a_set_value(sandbox):
    cfg = sandbox.write("c.yaml", "dataset: synthetic\n")
    bomb = "[" + ", ".join(["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + ["*a"] * 8) + "]"
    for _ in range(7):  # each level: a list of 9 copies of the previous one
        bomb = f"&b{_} " + bomb
        bomb = "[" + ", ".join([bomb] + [f"*b{_}"] * 8) + "]"
    sandbox.refuses(["train", cfg, "--set", f"model.options={bomb}", "--out", "run/m.pt"], "through its aliases")


@pytest.mark.parametrize(
    "text,match",
    [
        ("seed: &a [*a]\n", "refers to itself"),
        ("seed: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
        ("seed: 0\nblob: '" + "x" * (2 << 20) + "'\n", "up to .* bytes"),
        ("\xff\xfe not utf8", "not UTF-8|not valid YAML"),
        ("train: {epochs: 2\n", "not valid YAML"),
        ("1: 2\nseed: 0\n", "unknown config key"),
    ],
    ids=["recursive", "deep", "huge", "binary", "broken", "int-key"],
)
def test_hostile_yaml_configs(sandbox, text, match):
    cfg = sandbox.write("c.yaml", text.encode("latin1") if text.startswith("\xff") else text)
    sandbox.refuses(["train", cfg, "--out", "run/m.pt"], match)


def _zoo_entry(sandbox: Sandbox, payload, card: str, name: str = "mine.hostile") -> str:
    _save(sandbox, f"zoo/{name}/model.pt", payload)
    sandbox.write(f"zoo/{name}/card.yaml", card)
    return name


def test_yaml_alias_bomb_in_a_model_card(sandbox, good_payload):
    name = _zoo_entry(sandbox, good_payload, _alias_bomb())
    sandbox.refuses(["models", name], "card.yaml expands to more than")


def _idx(dims: tuple[int, ...], body: bytes = b"") -> bytes:
    return struct.pack(">I", 0x0800 | len(dims)) + struct.pack(f">{len(dims)}I", *dims) + body


def _gzip_of_zeros(header: bytes, n_zeros: int) -> bytes:
    """gzip of ``header`` + ``n_zeros`` zero bytes, streamed: ~1 KB per MB on disk."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(header)]
    chunk = bytes(1 << 20)
    for _ in range(n_zeros >> 20):
        parts.append(comp.compress(chunk))
    parts.append(comp.flush())
    return b"".join(parts)


@pytest.fixture()
def fmnist_checkpoint(sandbox, good_payload):
    return _save(sandbox, "ck/model.pt", good_payload)


def _idx_labels(sandbox: Sandbox, n: int = 5) -> None:
    sandbox.write("data/t10k-labels-idx1-ubyte.gz", gzip.compress(_idx((n,), bytes(n))))


@pytest.mark.parametrize(
    "images,match",
    [
        (lambda: _gzip_of_zeros(_idx((5, 28, 28)), 1 << 30), "longer than its header says"),  # 1 GiB behind a 5-image header
        (lambda: gzip.compress(_idx((2**32 - 1, 28, 28))), "labels|up to"),  # header claims 3 TB
        (lambda: gzip.compress(_idx((2**32 - 1, 2**32 - 1, 2**32 - 1))), "items, expected 28x28"),  # product overflows int64
        (lambda: gzip.compress(_idx((5, 28, 28), bytes(100))), "truncated"),
    ],
    ids=["gzip-bomb", "huge-header", "overflowing-header", "truncated"],
)
def test_idx_bombs_and_lying_headers(sandbox, fmnist_checkpoint, images, match):
    _idx_labels(sandbox)
    blob = images()
    assert len(blob) < 4 << 20
    sandbox.write("data/t10k-images-idx3-ubyte.gz", blob)
    sandbox.refuses(["attack", "--model", fmnist_checkpoint, "--dataset", "fmnist", "--data-dir", "data", "-n", "5"], match)


def test_idx_header_over_the_data_bound(sandbox, fmnist_checkpoint):
    n = 2**32 - 1
    sandbox.write("data/t10k-labels-idx1-ubyte.gz", gzip.compress(_idx((n,))))
    sandbox.write("data/t10k-images-idx3-ubyte.gz", gzip.compress(_idx((n, 28, 28))))
    sandbox.refuses(["attack", "--model", fmnist_checkpoint, "--dataset", "fmnist", "--data-dir", "data", "-n", "5"],
                    "reads IDX files up to")


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width×height RGB pixels and holds one compressed row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _noise_png(side: int = 28) -> bytes:
    from PIL import Image

    ok = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8)).save(ok, format="PNG")
    return ok.getvalue()


@pytest.mark.parametrize("first", [True, False], ids=["reference-image", "later-image"])
@pytest.mark.parametrize(
    "side,match",
    [(100_000, "DecompressionBomb|declares 100000x100000"),  # 30 GB declared: PIL's own limit, one line
     (8_000, "declares 8000x8000 pixels")],  # 192 MB declared: under PIL's error limit, over a3bench's
)
def test_decompression_bomb_image(sandbox, fmnist_checkpoint, first, side, match):
    sandbox.write("imgs/a/0.png" if not first else "imgs/b/0.png", _noise_png())
    sandbox.write("imgs/a/1.png", _png_header(side, side))
    sandbox.refuses(["attack", "--model", fmnist_checkpoint, "--dataset", "imagefolder:imgs", "-n", "5", "--eps", "0.1"], match)


def test_training_on_non_square_images_is_refused_before_work(sandbox):
    from PIL import Image

    for i in range(2):
        buf = io.BytesIO()
        Image.new("L", (32, 28)).save(buf, format="PNG")
        sandbox.write(f"imgs/train/c{i}/0.png", buf.getvalue())
        sandbox.write(f"imgs/test/c{i}/0.png", buf.getvalue())
    cfg = _tiny_config(sandbox)
    sandbox.refuses(["train", cfg, "--set", "dataset=imagefolder:imgs", "--out", "run/m.pt"], "28x32 images")


def test_broken_image_file_is_one_line(sandbox, fmnist_checkpoint):
    png = _noise_png()
    sandbox.write("imgs/a/0.png", png)
    sandbox.write("imgs/a/1.png", png[: len(png) // 2])  # header intact, pixels cut
    sandbox.refuses(["attack", "--model", fmnist_checkpoint, "--dataset", "imagefolder:imgs", "-n", "5", "--eps", "0.1"],
                    "cannot read image")


class _Placeholder:
    """Pickles as numpy's array placeholder, but claiming a terabyte."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (10**6, 10**6), b"b"))


class _DirectArray:
    """Pickles as a direct call of numpy.ndarray(shape): an allocation of 1 TB."""

    def __reduce__(self):
        return (np.ndarray, ((10**6, 10**6),))


@pytest.mark.parametrize("data", [_Placeholder(), _DirectArray()], ids=["placeholder", "direct-call"])
def test_cifar_pickle_with_absurd_arrays(sandbox, fmnist_checkpoint, data):
    blob = pickle.dumps({b"data": data, b"labels": [0]}, protocol=2)
    assert len(blob) < 1000
    sandbox.write("data/cifar-10-batches-py/test_batch", blob)
    sandbox.refuses(["attack", "--model", fmnist_checkpoint, "--dataset", "cifar10", "--data-dir", "data", "-n", "5"],
                    "refusing to load|cannot read")


def test_cifar_labels_that_overflow(sandbox, fmnist_checkpoint):
    blob = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10**30]}, protocol=2)
    sandbox.write("data/cifar-10-batches-py/test_batch", blob)
    sandbox.refuses(["attack", "--model", fmnist_checkpoint, "--dataset", "cifar10", "--data-dir", "data", "-n", "5"],
                    "are not integers")


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"num_classes": 12_000_000}, r"num_classes must be between 1 and 100000"),
        ({"num_classes": 50_000}, r"does not match .* from the metadata"),  # under the bound, not what the weights are
        ({"input_shape": [1, 4096, 4096]}, r"would have .* parameters"),
        ({"input_shape": [1, 10**9, 10**9]}, r"input_shape side must be between"),
        ({"input_shape": [10**6, 28, 28]}, r"channels must be between"),
        ({"mean": [0.5] * 50_000}, r"meta.mean has 50000 values"),
        ({"arch_options": {"depth": 10**9}}, r"unknown option"),
    ],
    ids=["12M-classes", "50k-classes", "giant-input", "overflowing-input", "million-channels", "long-mean", "option"],
)
def test_checkpoint_metadata_declaring_absurd_sizes(sandbox, good_payload, changes, match):
    path = _save(sandbox, "ck/model.pt", _with_meta(good_payload, **changes))
    sandbox.refuses(["models", path], match)


def test_checkpoint_with_a_compressed_entry(sandbox, good_payload):
    plain = _save(sandbox, "plain.pt", good_payload)
    bomb = sandbox.root / "ck" / "model.pt"
    bomb.parent.mkdir()
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    sandbox.refuses(["models", bomb], "compressed")


def test_checkpoint_tensor_claiming_more_than_stored(sandbox, good_payload):
    state = dict(good_payload["state_dict"])
    state["backbone.head.weight"] = torch.zeros(1).expand(10**10)  # 40 GB over 4 stored bytes
    path = _save(sandbox, "ck/model.pt", {**good_payload, "state_dict": state})
    assert path.stat().st_size < 5 << 20
    sandbox.refuses(["models", path], "claims more data than the file stores")


@pytest.mark.parametrize("eps", ["0:1:1000000000", ",".join(["0.1"] * 5000)], ids=["range", "list"])
def test_an_eps_list_that_claims_a_billion_values(sandbox, eps):
    sandbox.refuses(["sweep-eps", "--eps", eps, "--dataset", "synthetic", "-n", "5"], "at most 1000")


# --------------------------------------------------------------------------- 2. numbers and options


def _tiny_config(sandbox: Sandbox, **train) -> Path:
    lines = ["dataset: synthetic", "objective:", "  name: none", "train:", "  method: standard", "  epochs: 1",
             "  batch_size: 32", "  n_train: 64", "  schedule: none"]
    lines += [f"  {k}: {v}" for k, v in train.items()]
    lines += ["eval:", "  n_examples: 32", "  pgd_steps: 1", "  batch_size: 32"]
    return sandbox.write("tiny.yaml", "\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "override,match",
    [
        ("eval.batch_size=0", r"eval.batch_size must be ≥ 1, got 0"),
        ("train.batch_size=-3", r"train.batch_size must be ≥ 1"),
        ("train.lr=.nan", r"train.lr must be a finite number"),
        ("train.lr=.inf", r"train.lr must be a finite number"),
        ("train.lr=0", r"train.lr must be > 0"),
        ("train.lr=1e999", r"train.lr: expected a number|train.lr must be a finite number"),
        ("train.momentum=-0.5", r"train.momentum must be ≥ 0"),
        ("train.weight_decay=-1", r"train.weight_decay must be ≥ 0"),
        ("train.epochs=1e400", r"expected an integer"),
        ("train.epochs=99999999999999999999999", r"train.epochs must be ≤"),
        ("train.n_train=0", r"train.n_train must be ≥ 1"),
        ("attack.eps=-0.1", r"attack.eps must be ≥ 0"),
        ("attack.step_size=0", r"attack.step_size must be > 0"),
        ("eval.pgd_steps=0", r"eval.pgd_steps must be ≥ 1"),
        ("objective.temperature=0", r"objective.temperature must be > 0"),
        ("seed=-1", r"seed must be ≥ 0"),
        ("seed=340282366920938463463374607431768211456", r"seed must be ≤ 4294967295"),
        ("model.a3.tau=.nan", r"a3.tau must be a finite number"),
        ("model.a3.tau=abc", r"a3.tau must be a number"),
        ("model.a3.init_strength=.inf", r"a3.init_strength must be a finite number"),
        ("model.a3.placement=[1, 2]", r"a3.placement must be a list of insertion-point names"),
        ("device=cuda:zero", r"device must be"),
        ("model.arch=vit_small_p4", None),  # below: options checked against the architecture
    ],
)
def test_numbers_and_options_refused_before_any_work(sandbox, override, match):
    cfg = _tiny_config(sandbox)
    if match is None:
        for options, why in [("{depth: x}", "option depth of vit_small_p4 must be an integer"),
                             ("{dim: 100000}", "option dim of vit_small_p4 must be between 1 and 16384"),
                             ("{heads: 7}", "dim 192 must be a multiple of heads 7"),
                             ("{dim: 16383, depth: 100, heads: 1}", "would have .* parameters"),
                             ("{depth: [1, 2]}", "must be an integer")]:
            sandbox.refuses(["train", cfg, "--set", override, "--set", f"model.options={options}", "--out", "run/m.pt"], why)
        return
    sandbox.refuses(["train", cfg, "--set", override, "--out", "run/m.pt"], match)


def test_every_numeric_config_field_declares_its_range():
    """A new number in a config must say its valid range, or this fails."""
    from a3bench import config

    for cls in (config.Config, config.ModelConfig, config.AttackConfig, config.ObjectiveConfig, config.TrainConfig, config.EvalConfig):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            args = set(typing.get_args(hints[f.name])) or {hints[f.name]}
            if args & {int, float}:
                assert "range" in f.metadata, f"{cls.__name__}.{f.name} has no range"


@pytest.mark.parametrize("command", ["attack", "sweep-eps"])
@pytest.mark.parametrize("seed", ["-1", str(2**32), str(10**40)])
def test_seed_option_is_bounded(sandbox, command, seed):
    sandbox.refuses([command, "--seed", seed, "--dataset", "synthetic", "-n", "5"], r"--seed must be between 0 and 4294967295")


# --------------------------------------------------------------------------- 3. train and its output


def test_train_refuses_an_existing_run_and_changes_nothing(sandbox):
    cfg = _tiny_config(sandbox)
    sandbox.write("run/m.pt", b"precious weights")
    sandbox.write("run/m.metrics.jsonl", '{"epoch": 1}\n')
    sandbox.refuses(["train", cfg, "--out", "run/m.pt"], "already exist: pass --resume")


def test_train_refuses_an_existing_metrics_log_alone(sandbox):
    cfg = _tiny_config(sandbox)
    sandbox.write("run/m.metrics.jsonl", '{"epoch": 1}\n')
    sandbox.refuses(["train", cfg, "--out", "run/m.pt"], "m.metrics.jsonl already exists: pass --resume")


@pytest.mark.parametrize(
    "out,match",
    [
        ("run", "is a folder"),
        ("notes.txt/m.pt", "notes.txt is a file, not a folder"),
        ("/proc/a3bench/m.pt", "cannot write the run to /proc/a3bench"),
    ],
    ids=["folder", "under-a-file", "unwritable"],
)
def test_train_output_checked_before_any_work(sandbox, out, match):
    cfg = _tiny_config(sandbox)
    sandbox.write("run/keep", "x")
    sandbox.write("notes.txt", "mine")
    sandbox.refuses(["train", cfg, "--out", out], match)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_train_into_a_read_only_folder(sandbox):
    cfg = _tiny_config(sandbox)
    ro = sandbox.root / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        sandbox.refuses(["train", cfg, "--out", "ro/m.pt"], "cannot write the run to")
    finally:
        ro.chmod(0o755)


def test_train_whose_loss_diverges_stops_with_one_line(sandbox):
    cfg = _tiny_config(sandbox, lr="1.0e+30", grad_clip="null")
    before = _snapshot(sandbox.root)
    result = CliRunner().invoke(app, ["train", str(cfg), "--out", "run/m.pt", "--quiet"])
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output
    assert errors[0].startswith("error: training diverged") and "nothing was saved" in errors[0]
    assert "done" not in result.stdout
    assert not (sandbox.root / "run" / "m.pt").exists()  # no checkpoint with NaN weights
    assert set(_snapshot(sandbox.root)) - set(before) <= {"run"}


def test_a_loss_that_turns_nan_later_keeps_the_last_good_checkpoint(sandbox, monkeypatch):
    from a3bench.config import load_config
    from a3bench.errors import TrainingError
    from a3bench.models import load_checkpoint
    from a3bench.train import objectives
    from a3bench.train.loop import train

    cfg = load_config(_tiny_config(sandbox), ["train.epochs=2"])
    real, calls = objectives.compute_loss, []

    def nan_in_epoch_two(model, x, x_adv, y, cfg):
        parts = real(model, x, x_adv, y, cfg)
        calls.append(1)
        if len(calls) > 2:  # 2 steps per epoch: the first step of epoch 2
            parts.total = parts.total * float("nan")
        return parts

    monkeypatch.setattr(objectives, "compute_loss", nan_in_epoch_two)
    with pytest.raises(TrainingError, match="diverged at epoch 2, step 1: the loss is nan.*kept at"):
        train(cfg, sandbox.root / "run" / "m.pt")
    ck = load_checkpoint(sandbox.root / "run" / "m.pt")
    assert ck.train_state["epoch"] == 1
    assert all(bool(torch.isfinite(p).all()) for p in ck.model.parameters())


def test_progress_bar_shows_a_dash_before_the_first_batch():
    from rich.console import Console

    from a3bench.cli.train_cli import _RichTrainProgress

    bar = _RichTrainProgress(Console(file=io.StringIO(), force_terminal=False))
    try:
        bar.on_epoch_start(1, 3, 10)
        task = bar.progress.tasks[0]
        rendered = " ".join(str(col.render(task)) for col in bar.progress.columns if hasattr(col, "text_format"))
        assert "loss —" in rendered and "nan" not in rendered
        bar.on_step(1, 1, 2.3456)
        rendered = " ".join(str(col.render(task)) for col in bar.progress.columns if hasattr(col, "text_format"))
        assert "loss 2.346" in rendered
    finally:
        bar.close()


# --------------------------------------------------------------------------- 4. user code and metadata


FACTORIES = """
import sys
import torch

class Boom(BaseException):
    pass

def value_error():
    raise ValueError("x" * 100000)

def exits():
    sys.exit(3)

def exits_quietly():
    sys.exit()

def interrupts():
    raise KeyboardInterrupt

def base_exception():
    raise Boom("kaboom")

def not_a_module():
    return 42
"""


@pytest.mark.parametrize(
    "factory,match",
    [
        ("value_error", r"value_error\(\) failed: ValueError: xxx"),
        ("exits", r"exits\(\) failed: it called sys.exit\(3\)"),
        ("exits_quietly", r"exits_quietly\(\) failed: it called sys.exit\(None\)"),
        ("interrupts", r"interrupts\(\) failed: KeyboardInterrupt"),
        ("base_exception", r"base_exception\(\) failed: Boom: kaboom"),
        ("not_a_module", r"returned int, not an nn.Module"),
        ("nothing_here", r"has no callable 'nothing_here'"),
    ],
)
def test_whatever_a_factory_raises_is_one_line(sandbox, factory, match):
    sandbox.write("mine.py", FACTORIES)
    line = sandbox.refuses(["models", f"mine.py:{factory}"], match)
    assert "mine.py:" in line  # names the source


@pytest.mark.parametrize(
    "module,match",
    [
        ("import sys\nsys.exit('bye')\n", r"cannot import 'mine.py': it called sys.exit\('bye'\)"),
        ("def broken(:\n", r"cannot import 'mine.py': SyntaxError"),
        ("raise KeyboardInterrupt\n", r"cannot import 'mine.py': KeyboardInterrupt"),
    ],
)
def test_whatever_a_factory_module_raises_on_import_is_one_line(sandbox, module, match):
    sandbox.write("mine.py", module)
    sandbox.refuses(["models", "mine.py:make"], match)


def test_factory_exit_in_attack_is_reported_not_silent(sandbox):
    sandbox.write("mine.py", FACTORIES)
    sandbox.refuses(["attack", "--model", "mine.py:exits_quietly", "--dataset", "synthetic", "-n", "5"], "sys.exit")


def _cyclic():
    a: list = []
    a.append(a)
    return a


def _shared(levels: int = 12):
    x: list = ["lol"] * 9
    for _ in range(levels):
        x = [x] * 9  # 9**12 items counting every reference, a few hundred bytes pickled
    return x


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"num_classes": "10"}, r"meta.num_classes missing or not a int"),
        ({"num_classes": True}, r"num_classes must be an integer"),
        ({"num_classes": 10.0}, r"num_classes missing or not a int"),
        ({"num_classes": 0}, r"num_classes must be between"),
        ({"architecture": 5}, r"meta.architecture missing or not a str"),
        ({"architecture": "../../etc/passwd"}, r"unknown architecture"),
        ({"input_shape": ["a", 28, 28]}, r"channels must be an integer"),
        ({"input_shape": [1, 28]}, r"input_shape must be \[C, H, W\]"),
        ({"input_shape": [1, 28, 14]}, r"must be square"),
        ({"mean": ["x"]}, r"mean must be a number"),
        ({"std": [0.0]}, r"std must be > 0"),
        ({"std": [float("nan")]}, r"std must be a finite number"),
        ({"a3": "junk"}, r"meta.a3 must be a dict"),
        ({"a3": {"tau": "x"}}, r"a3.tau must be a number"),
        ({"a3": {"colour": 1}}, r"unknown a3 key"),
        ({"a3": {"placement": [{"a": 1}]}}, r"a3.placement must be a list of insertion-point names"),
        ({"arch_options": [1]}, r"meta.arch_options must be a dict"),
        ({"dataset": 5}, r"meta.dataset must be a str"),
        ({"metrics": "x"}, r"meta.metrics must be a dict"),
        ({"metrics": {"eps": float("nan"), "norm": "Linf"}}, r"meta.metrics.eps must be a finite number"),
        ({"metrics": {"eps": True}}, r"meta.metrics.eps must be a number"),
        ({"metrics": {"eps": -1.0}}, r"meta.metrics.eps must be ≥ 0"),
        ({"train": _cyclic()}, r"too large|nested more than"),
        ({"train": _shared()}, r"too large"),
        ({"junk": {1: 2}}, r"key 1 is not a string"),
        ({"junk": b"bytes"}, r"holds a bytes, not plain data"),
        ({"mean": _DELETE}, r"meta.mean missing"),
    ],
)
def test_checkpoint_metadata_of_any_type(sandbox, good_payload, changes, match):
    path = _save(sandbox, "ck/model.pt", _with_meta(good_payload, **changes))
    line = sandbox.refuses(["models", path], match)
    assert "ck/model.pt" in line  # names the source


def test_checkpoint_metadata_junk_through_attack(sandbox, good_payload):
    path = _save(sandbox, "ck/model.pt", _with_meta(good_payload, metrics={"clean_acc": "x"}, a3={"tau": [1]}))
    sandbox.refuses(["attack", "--model", path, "--dataset", "synthetic", "-n", "5"], "meta.metrics.clean_acc must be a number")


def test_models_table_survives_junk_metrics(sandbox, good_payload):
    _save(sandbox, "zoo/mine.junk/model.pt", _with_meta(good_payload, metrics={"note": "high", "eps": None}))
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "mine.junk" in result.stdout


@pytest.mark.parametrize(
    "card,match",
    [
        ("number_forward_passes: many\n", r"number_forward_passes: expected an integer"),
        ("number_forward_passes: 0\n", r"number_forward_passes must be in"),
        ("reported: .nan\n", r"reported: expected a finite number"),
        ("reported: [1]\n", r"reported: expected a finite number"),
        ("authors: {a: 1}\n", r"authors: .*is not"),
        ("additional_data: maybe\n", r"additional_data: expected true or false"),
        ("link: [javascript]\n", r"link: expected a string"),
        ("metrics: 5\n", r"metrics: expected an object"),
        ("- just\n- a list\n", r"a model card must be a mapping"),
        ("name: &a [*a]\n", r"refers to itself"),
    ],
)
def test_model_card_of_any_type(sandbox, good_payload, card, match):
    name = _zoo_entry(sandbox, good_payload, card)
    line = sandbox.refuses(["models", name], match)
    assert "card.yaml" in line


def test_text_file_as_model_is_not_a_pytorch_checkpoint(sandbox):
    sandbox.write("notes.pt", "these are my notes, not weights\n")
    line = sandbox.refuses(["models", "notes.pt"], "not a PyTorch checkpoint")
    assert "run code" not in line
    sandbox.write("notes.txt", "cos(x) = 1 - x^2/2\n")
    sandbox.refuses(["models", "notes.txt"], "not a PyTorch checkpoint")


def test_a_model_name_too_long_for_the_file_system(sandbox):
    line = sandbox.refuses(["models", "a" * 5000], "cannot resolve model")
    assert len(line) < 1000


def test_a_resume_state_that_was_edited(sandbox, good_payload):
    from a3bench.config import load_config

    cfg = _tiny_config(sandbox)
    state = {"config": load_config(cfg).to_dict(), "optimizer": {"junk": 1}, "rng_cpu": "x", "rng_pgd": None,
             "epoch": 0, "global_step": 0, "history": []}
    # A checkpoint of the architecture the config builds, with an edited training state.
    from a3bench.data import dataset_info
    from a3bench.models import save_checkpoint
    from a3bench.train.loop import build_model

    model = build_model(load_config(cfg), dataset_info("synthetic"))
    path = sandbox.root / "run" / "m.pt"
    save_checkpoint(path, model, {"dataset": "synthetic"}, train_state=state)
    sandbox.refuses(["train", cfg, "--out", path, "--resume"], "training state in .* is damaged")


# --------------------------------------------------------------------------- 5. documented code execution


def test_help_and_readme_say_what_runs_user_code():
    result = CliRunner().invoke(app, ["attack", "--help"], env={"COLUMNS": "400"})
    help_text = " ".join(result.stdout.split())
    assert "RUN that Python code" in help_text and "weights only" in help_text
    readme = (REPO / "README.md").read_text()
    paragraph = readme[readme.index("Every command has `--help`"):]
    paragraph = " ".join(paragraph[: paragraph.index("\n\n")].split())
    for needle in ("file.py:factory", "package.module:factory", "transfer:SPEC", "run that Python code", "weights_only=True"):
        assert needle in paragraph, needle
    assert (REPO / "docs" / "untrusted-input.md").is_file()


# --------------------------------------------------------------------------- a real process


def test_real_process_alias_bomb_no_traceback(tmp_path):
    cfg = tmp_path / "bomb.yaml"
    anchors = "".join("    " + line + "\n" for line in _alias_bomb().splitlines())
    cfg.write_text("dataset: synthetic\nmodel:\n  options:\n" + anchors + "seed: *a8\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))

    env = {**os.environ, "PYTHONPATH": str(REPO), "A3BENCH_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "a3bench", "train", str(cfg), "--out", str(tmp_path / "run" / "m.pt")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, preexec_fn=limit, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "through its aliases" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml"]


# --------------------------------------------------------------------------- fuzz (bounded in time)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4)), max_leaves=12)
_CONFIG_KEYS = ["seed", "device", "dataset", "model.arch", "model.options", "model.a3", "model.a3.tau", "model.a3.placement",
                "attack.eps", "attack.steps", "attack.step_size", "attack.norm", "objective.name", "objective.alpha",
                "objective.temperature", "train.epochs", "train.batch_size", "train.lr", "train.momentum", "train.grad_clip",
                "train.n_train", "eval.n_examples", "eval.batch_size", "train", "eval"]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(_CONFIG_KEYS), _values, max_size=4))
def test_fuzz_config_values_are_valid_or_one_config_error(changes):
    """Any value anywhere in a config: a valid Config whose numbers are in range, or one ConfigError line."""
    from a3bench.config import config_from_dict
    from a3bench.errors import ConfigError

    data: dict = {}
    for key, value in changes.items():
        node = data
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[last] = value
    try:
        cfg = config_from_dict(data)
    except ConfigError as e:
        assert "\n" not in str(e) and len(str(e)) < 2000
        return
    assert 0 <= cfg.seed <= 2**32 - 1 and cfg.train.lr > 0 and cfg.eval.batch_size >= 1
    assert all(math.isfinite(v) for v in (cfg.train.lr, cfg.attack.eps, cfg.model.a3.tau, cfg.objective.alpha))


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(["architecture", "num_classes", "input_shape", "mean", "std", "a3", "arch_options",
                                        "dataset", "metrics", "train", "a3bench_version"]), _values, min_size=1, max_size=3))
def test_fuzz_checkpoint_metadata_builds_or_one_checkpoint_error(good_payload, tmp_path_factory, changes):
    """Any value in any metadata field: the model loads, or one CheckpointError line naming the file."""
    from a3bench.errors import CheckpointError
    from a3bench.models import load_checkpoint

    path = tmp_path_factory.mktemp("fuzz") / "model.pt"
    torch.save(_with_meta(good_payload, **changes), path)
    try:
        load_checkpoint(path)
    except CheckpointError as e:
        assert "\n" not in str(e) and str(path) in str(e)
