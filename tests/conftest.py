"""Shared fixtures. Models that tests attack are trained here, on real Fashion-MNIST,
once per session; they are small so the whole suite stays within minutes on 2 cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# One thread by default: two torch threads on a shared 2-core machine oversubscribe it.
torch.set_num_threads(int(os.environ.get("A3BENCH_TEST_THREADS", "1")))
os.environ.setdefault("A3BENCH_OFFLINE", "1")  # tests never try the network

REPO = Path(__file__).resolve().parents[1]
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def fmnist_available() -> bool:
    return (FMNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file() or bool(os.environ.get("A3BENCH_DATA"))


needs_fmnist = pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


def train_small(model, data, *, steps: int, lr: float = 1e-3, batch_size: int = 128, seed: int = 0, eps: float = 0.0, pgd_steps: int = 0):
    """Plain (eps=0) or PGD adversarial training for a fixed number of steps; returns model in eval mode."""
    from a3bench.attacks.pgd import default_step_size, pgd_loop
    from a3bench.threat import ThreatModel

    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    threat = ThreatModel("Linf", eps) if eps > 0 else None
    gen = torch.Generator().manual_seed(seed)
    model.train()
    step = 0
    epoch = 0
    while step < steps:
        for x, y in data.batches(batch_size, shuffle=True, seed=seed + epoch):
            if threat is not None:
                x0 = threat.random_start(x, generator=gen)
                x = pgd_loop(model, x, y, threat, x0, steps=pgd_steps, step_size=default_step_size(threat, pgd_steps), early_stop=False).x_adv
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= steps:
                break
        epoch += 1
    return model.eval()


@pytest.fixture(scope="session")
def fmnist_test():
    if not fmnist_available():
        pytest.skip("Fashion-MNIST not installed")
    from a3bench.data import load_dataset

    return load_dataset("fmnist", "test")


@pytest.fixture(scope="session")
def fmnist_train():
    if not fmnist_available():
        pytest.skip("Fashion-MNIST not installed")
    from a3bench.data import load_dataset

    return load_dataset("fmnist", "train")


@pytest.fixture(scope="session")
def standard_model(fmnist_train):
    """A normally trained small CNN (no A3): ~80 % clean, ~0 % robust at eps 0.1."""
    from a3bench.models import create_model

    info = fmnist_train.info
    torch.manual_seed(0)  # the initial weights too: the fixture must not depend on test order
    model = create_model("smallcnn", num_classes=10, mean=info.mean, std=info.std)
    return train_small(model, fmnist_train.first(20000), steps=300, seed=0)


@pytest.fixture(scope="session")
def checkpoint(standard_model, tmp_path_factory):
    """The standard model saved as an a3bench checkpoint (for CLI tests)."""
    from a3bench.models import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "std_fmnist.pt"
    save_checkpoint(path, standard_model, {"dataset": "fmnist"})
    return path


def _zoo_model(name: str):
    from a3bench.models import load_model
    from a3bench.models.zoo import zoo_path

    if zoo_path(name) is None:
        pytest.skip(f"bundled model {name} not present")
    return load_model(name).model


@pytest.fixture(scope="session")
def robust_model():
    """The bundled PGD-AT small CNN (no A3), Fashion-MNIST, Linf eps 0.1."""
    return _zoo_model("smallcnn.pgdat_fmnist")


@pytest.fixture(scope="session")
def a3_model():
    """The bundled PGD-AT + A3 (joint) small CNN; deployed mode attenuate."""
    return _zoo_model("smallcnn.a3_joint_fmnist")


@pytest.fixture(scope="session")
def bundled_model_path():
    from a3bench.models.zoo import DEFAULT_MODEL, zoo_path

    path = zoo_path(DEFAULT_MODEL)
    if path is None:
        pytest.skip("bundled model not present")
    return path
