"""The masking corpus's own models as ``--model`` factories (nn.Modules on [0,1] pixels
returning logits), e.g.

    a3bench attack --model benchmarks/masking_corpus/models.py:jpeg --dataset fmnist --eps 0.1 --suite full

Weights are state dicts in ``weights/`` beside this file, made by ``train.py`` (nothing
trains at evaluation time); the front ends on the bundled PGD-AT network use the zoo's
``smallcnn.pgdat_fmnist``. Which model is which, its label and its known-truth attack:
``corpus.py``. The defenses themselves: ``defenses.py``. docs/masking-benchmark.md has
the results.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights"
if str(HERE) not in sys.path:  # a3bench imports this file by path; its siblings must resolve
    sys.path.insert(0, str(HERE))

from defenses import JPEG, MLP, SAP, BitDepth, NoiseDenoise, PixelDeflection, TVMinimise  # noqa: E402

# Each defense's settings, in one place (train.py trains with the same ones).
JPEG_QUALITY = 75
BITS = 3
DISTILL_T = 100.0
NOISE_SIGMA = 0.25


def smallcnn() -> nn.Module:
    """The bundled ``smallcnn`` architecture, no A3, Fashion-MNIST's normalisation."""
    from a3bench.models import create_model

    return create_model("smallcnn", num_classes=10, mean=(0.2860,), std=(0.3530,))


def _weights(name: str) -> dict:
    path = WEIGHTS / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: python benchmarks/masking_corpus/train.py {name}")
    return torch.load(path, map_location="cpu", weights_only=True)


def _trained_smallcnn(name: str) -> nn.Module:
    model = smallcnn()
    model.load_state_dict(_weights(name))
    return model.eval()


def _pgdat() -> nn.Module:
    from a3bench.models import load_model

    return load_model("smallcnn.pgdat_fmnist").model.eval()


# --------------------------------------------------------------------------- honest


def standard() -> nn.Module:
    """Undefended: the small CNN, standard training (2 epochs)."""
    return _trained_smallcnn("standard")


def pgdat_mlp() -> nn.Module:
    """PGD-AT (PGD-7, Linf 0.1, 2 epochs) of a 3-layer MLP: an honest model of another architecture."""
    model = MLP()
    model.load_state_dict(_weights("pgdat_mlp"))
    return model.eval()


# --------------------------------------------------------------------------- masked


def jpeg() -> nn.Module:
    """JPEG (quality 75) in front of the bundled PGD-AT network."""
    return nn.Sequential(JPEG(JPEG_QUALITY), _pgdat()).eval()


def bit_depth() -> nn.Module:
    """3-bit colour depth (feature squeezing) in front of the standard network."""
    return nn.Sequential(BitDepth(BITS), standard()).eval()


def tv_minimise() -> nn.Module:
    """Pixel dropout + TV minimisation in front of a network trained on such images."""
    return nn.Sequential(TVMinimise(), _trained_smallcnn("tv_minimise")).eval()


def pixel_deflection() -> nn.Module:
    """Pixel deflection + wavelet denoising in front of the standard network."""
    return nn.Sequential(PixelDeflection(), standard()).eval()


def sap() -> nn.Module:
    """Stochastic activation pruning after both conv blocks of the standard network (in the
    A3 insertion points, empty in a plain smallcnn), at evaluation time."""
    model = standard()
    model.backbone.a3_block1 = SAP()
    model.backbone.a3_block2 = SAP()
    return model.eval()


def distillation() -> nn.Module:
    """Defensive distillation at T = 100, deployed at T = 1 (its logits, unscaled)."""
    return _trained_smallcnn("distillation")


def gradient_regularisation() -> nn.Module:
    """Input-gradient regularisation (double backpropagation), no adversarial training."""
    return _trained_smallcnn("gradient_regularisation")


def noise_denoise() -> nn.Module:
    """Gaussian noise (σ 0.25) + a learned denoiser in front of a network trained on its outputs."""
    front = NoiseDenoise(NOISE_SIGMA)
    front.denoiser.load_state_dict(_weights("noise_denoise.denoiser"))
    return nn.Sequential(front, _trained_smallcnn("noise_denoise")).eval()
