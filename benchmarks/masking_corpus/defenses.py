"""The published defenses of the masking corpus, rebuilt small for Fashion-MNIST (28×28×1).

Each front end is a leaf ``nn.Module`` on [0,1] pixels that returns [0,1] pixels of the
same shape, placed in front of a classifier (``nn.Sequential(front, classifier)``), the
way the papers deployed them. Those whose original was library code outside the
framework (PIL's JPEG, a TV solver, numpy pixel deflection and wavelet denoising) run
here outside autograd too, or through ``round``: their input gradient is zero, which is
what PyTorch gives for them unless someone writes a backward pass. Randomised ones draw
from torch's global generator at every forward pass, as deployed.

The defense, its paper and the attack that showed its masking (Athalye, Carlini & Wagner,
ICML 2018, "Obfuscated gradients give a false sense of security"; Tramèr, Carlini,
Brendel & Madry, NeurIPS 2020, "On adaptive attacks to adversarial example defenses"):

- :class:`JPEG` — Das et al. 2017 / Guo et al. 2018; BPDA with the identity.
- :class:`BitDepth` — feature squeezing, Xu et al. NDSS 2018; BPDA with the identity.
- :class:`TVMinimise` — Guo et al. ICLR 2018 (pixel dropout + total-variation minimisation);
  BPDA with the identity + EOT over the dropout.
- :class:`PixelDeflection` — Prakash et al. CVPR 2018; BPDA with the identity + EOT.
- :class:`SAP` — stochastic activation pruning, Dhillon et al. ICLR 2018; EOT.
- :class:`NoiseDenoise` — random noise then a learned denoiser (the family of
  randomised/denoising front ends, e.g. Liao et al. CVPR 2018, Xie et al. ICLR 2018); EOT.
- defensive distillation at T = 100 (Papernot et al. S&P 2016) and input-gradient
  regularisation (Ross & Doshi-Velez AAAI 2018) are trained networks, no front end
  (``train.py``); Carlini & Wagner 2017's margin loss / logit rescaling, and strong PGD
  with restarts plus transfer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- JPEG

# The JPEG standard's luminance quantisation table (ITU T.81, Annex K), quality 50.
_LUMA_Q50 = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=torch.float32)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    """Orthonormal DCT-II: JPEG's 2-D transform of a block B is D·B·Dᵀ."""
    k = torch.arange(n, dtype=torch.float64)
    d = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


def jpeg_table(quality: int) -> torch.Tensor:
    """libjpeg's scaling of the quality-50 table to ``quality`` (1…100)."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return torch.clamp(torch.floor((_LUMA_Q50 * scale + 50) / 100), min=1)


class JPEG(nn.Module):
    """Grayscale baseline JPEG, encode then decode: 8×8 block DCT of the pixels (0…255,
    shifted by −128), each coefficient rounded to its quantisation step, inverse DCT,
    rounded to 8 bits. The 28×28 image is padded to 32×32 by edge replication (as an
    encoder pads partial blocks) and cropped back. Batched torch; the rounding makes the
    input gradient zero. No chroma (one channel), no entropy coding (lossless anyway)."""

    def __init__(self, quality: int = 75) -> None:
        super().__init__()
        self.quality = quality
        self.register_buffer("d", _dct_matrix(), persistent=False)
        self.register_buffer("q", jpeg_table(quality), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        ph, pw = -h % 8, -w % 8
        p = F.pad(x * 255 - 128, (0, pw, 0, ph), mode="replicate")
        hb, wb = (h + ph) // 8, (w + pw) // 8
        blocks = p.reshape(n, c, hb, 8, wb, 8).transpose(3, 4)  # n, c, hb, wb, 8, 8
        coef = self.d @ blocks @ self.d.T
        coef = torch.round(coef / self.q) * self.q
        rec = (self.d.T @ coef @ self.d).transpose(3, 4).reshape(n, c, h + ph, w + pw)[..., :h, :w]
        return torch.clamp(torch.round(rec + 128), 0, 255) / 255


# --------------------------------------------------------------------------- bit depth


class BitDepth(nn.Module):
    """Feature squeezing's colour-depth reduction: ``round(x·(2^b − 1)) / (2^b − 1)``."""

    def __init__(self, bits: int = 3) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2**self.bits - 1
        return torch.round(x * levels) / levels


# --------------------------------------------------------------------------- TV minimisation


def _tv_grad(z: torch.Tensor, smooth: float) -> torch.Tensor:
    """Gradient of the smoothed anisotropic total variation Σ sqrt(Δ² + s) over z."""
    dx = z[..., :, 1:] - z[..., :, :-1]
    dy = z[..., 1:, :] - z[..., :-1, :]
    gx = dx / torch.sqrt(dx * dx + smooth)
    gy = dy / torch.sqrt(dy * dy + smooth)
    g = torch.zeros_like(z)
    g[..., :, 1:] += gx
    g[..., :, :-1] -= gx
    g[..., 1:, :] += gy
    g[..., :-1, :] -= gy
    return g


class TVMinimise(nn.Module):
    """Guo et al.'s total-variation minimisation: keep each pixel with probability ``keep``
    (Bernoulli, fresh at every pass), then solve
    ``min_z ‖m ⊙ (z − x)‖² + λ·TV(z)`` by ``steps`` steps of gradient descent from x, a
    solver outside autograd (the paper used a library solver): zero input gradient."""

    def __init__(self, keep: float = 0.5, lam: float = 0.03, steps: int = 30, lr: float = 0.1, smooth: float = 1e-4) -> None:
        super().__init__()
        self.keep, self.lam, self.steps, self.lr, self.smooth = keep, lam, steps, lr, smooth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            m = (torch.rand_like(x) < self.keep).to(x.dtype)
            z = x.clone()
            for _ in range(self.steps):
                z -= self.lr * (2 * m * (z - x) + self.lam * _tv_grad(z, self.smooth))
                z.clamp_(0, 1)
        return z


# --------------------------------------------------------------------------- pixel deflection


def _haar(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return (a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2


def _ihaar(ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
    n, c, h, w = ll.shape
    out = ll.new_empty(n, c, 2 * h, 2 * w)
    out[..., 0::2, 0::2] = (ll + lh + hl + hh) / 2
    out[..., 0::2, 1::2] = (ll - lh + hl - hh) / 2
    out[..., 1::2, 0::2] = (ll + lh - hl - hh) / 2
    out[..., 1::2, 1::2] = (ll - lh - hl + hh) / 2
    return out


def wavelet_soft_threshold(x: torch.Tensor, threshold: float, levels: int = 2) -> torch.Tensor:
    """Soft-threshold the detail coefficients of an orthonormal Haar transform (sides
    divisible by 2^levels)."""
    if levels == 0:
        return x
    ll, *details = _haar(x)
    ll = wavelet_soft_threshold(ll, threshold, levels - 1)
    details = [torch.sign(d) * torch.clamp(d.abs() - threshold, min=0) for d in details]
    return _ihaar(ll, *details)


class PixelDeflection(nn.Module):
    """Prakash et al.: ``deflections`` times, a random pixel takes the value of a random
    pixel within ``window`` of it (all read from the undeflected image, in one batched
    scatter); then wavelet denoising (soft thresholding of Haar detail
    coefficients; the paper used BayesShrink on a DWT). Random at every pass; numpy-style
    code outside autograd: zero input gradient."""

    def __init__(self, deflections: int = 100, window: int = 5, threshold: float = 0.06) -> None:
        super().__init__()
        self.deflections, self.window, self.threshold = deflections, window, threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            n, c, h, w = x.shape
            flat = x.reshape(n, c, h * w).clone()
            dev = x.device
            k = self.deflections
            r = torch.randint(0, h, (n, k), device=dev)
            s = torch.randint(0, w, (n, k), device=dev)
            dr = torch.randint(-self.window, self.window + 1, (n, k), device=dev)
            ds = torch.randint(-self.window, self.window + 1, (n, k), device=dev)
            src = (r + dr).clamp(0, h - 1) * w + (s + ds).clamp(0, w - 1)
            dst = r * w + s
            vals = flat.gather(2, src.view(n, 1, k).expand(n, c, k))  # all at once: reads the undeflected image
            flat.scatter_(2, dst.view(n, 1, k).expand(n, c, k), vals)
            out = flat.reshape(n, c, h, w)
            ph, pw = -h % 4, -w % 4
            padded = F.pad(out, (0, pw, 0, ph), mode="replicate")
            return wavelet_soft_threshold(padded, self.threshold)[..., :h, :w].clamp(0, 1)


# --------------------------------------------------------------------------- SAP


class SAP(nn.Module):
    """Stochastic activation pruning (Dhillon et al.): of ``fraction``·(number of
    activations) draws with replacement, each picking activation i with probability
    p_i = |a_i| / Σ|a|, keep those drawn at least once, scaled by 1 / q_i with
    q_i = 1 − (1 − p_i)^r, and zero the rest. Per example, fresh at every pass, at
    evaluation time (that is the defense). Each activation is kept independently with its
    exact probability q_i (the multinomial's weak coupling between activations is dropped:
    12 million multinomial draws per batch made it the slowest model here). The gradient
    flows through the kept activations: honest for one draw, but the draws differ."""

    def __init__(self, fraction: float = 1.0) -> None:
        super().__init__()
        self.fraction = fraction

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        flat = a.flatten(1)
        p = flat.abs() / flat.abs().sum(1, keepdim=True).clamp_min(1e-12)
        r = max(1, int(self.fraction * flat.shape[1]))
        q = -torch.expm1(r * torch.log1p(-p.clamp(max=1 - 1e-7)))  # 1 − (1 − p)^r, accurate for small p
        keep = torch.rand_like(q) < q.detach()
        out = torch.where(keep, flat / q.clamp_min(1e-12), torch.zeros_like(flat))
        return out.view_as(a)


# --------------------------------------------------------------------------- noise + denoiser


class Denoiser(nn.Module):
    """A small residual convolutional denoiser: x̂ = clamp(x − g(x)), g predicting the noise."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x - self.net(x), 0, 1)


class GaussianNoise(nn.Module):
    """Adds N(0, σ²) to every pixel, fresh at every pass (also in eval mode: the defense)."""

    def __init__(self, sigma: float = 0.25) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x)


class NoiseDenoise(nn.Module):
    """Random noise, then a learned denoiser: ``denoiser(x + σ·ε)``."""

    def __init__(self, sigma: float = 0.25) -> None:
        super().__init__()
        self.noise = GaussianNoise(sigma)
        self.denoiser = Denoiser()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.denoiser(self.noise(x))


# --------------------------------------------------------------------------- MLP


class MLP(nn.Module):
    """Three fully connected layers on [0,1] pixels (the corpus's honest PGD-AT model of
    another architecture)."""

    def __init__(self, hidden: int = 256, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - 0.5) / 0.5)
