"""The labelled corpus: which model, whether its gradients are masked (the truth by
construction, from the literature), and the known-truth attack that the literature used
against it (``reference.py`` runs it).

Policy lives on the entries: ``run.py``, ``reference.py`` and the tests read these fields
and never test a model's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FACTORIES = "benchmarks/masking_corpus/models.py"


@dataclass(frozen=True)
class Reference:
    """The known-truth attack: PGD (Linf, random start, ``steps`` steps whose size decays
    from eps/4 by a cosine) with each of ``losses``, ``restarts`` times, and the gradient
    estimator the defense calls for.

    - ``bpda``: the name of the front-end module that BPDA replaces by the identity in the
      backward pass (Athalye et al. 2018), or None;
    - ``eot``: gradients averaged over this many draws of a randomised model (1: none);
    - ``logit_scale``: CE is computed on logits / this (Carlini & Wagner's answer to
      defensive distillation's saturated softmax);
    - ``transfer_from``: also PGD on this surrogate (a ``--model`` SPEC), judged on the target.

    An example is broken when any run breaks it (per-example worst case).
    """

    losses: tuple[str, ...] = ("ce", "cw")
    steps: int = 100
    restarts: int = 5
    bpda: str | None = None
    eot: int = 1
    logit_scale: float = 1.0
    transfer_from: str | None = None
    what: str = "PGD-100, CE and CW margin, 5 restarts"


@dataclass(frozen=True)
class Entry:
    name: str  # file stem of its results
    spec: str  # the --model SPEC a3bench evaluates
    masked: bool  # the label: gradients masked by construction (the literature's finding)
    randomised: bool  # outputs change between identical forward passes (judge: majority of 10 draws)
    defense: str
    source: str  # the defense's paper, and who showed the masking
    reference: Reference = field(default_factory=Reference)
    masking: tuple[str, ...] = ()  # what masks the gradient (MASKING); tests/test_masking_benchmark.py checks each


# How a corpus model masks its gradient, each a property a test can see on a few images:
MASKING = {
    "zero-gradient": "the input gradient is exactly zero (a front end outside autograd, or rounding)",
    "randomised": "two forward passes of the same input differ (so do their gradients)",
    "saturated-softmax": "the cross-entropy gradient underflows to exactly zero; the logit margin's does not",
    "flat-gradient": "the input gradient is several times smaller than an undefended network's",
}


def _factory(name: str) -> str:
    return f"{FACTORIES}:{name}"


EOT = 20  # draws per gradient of the EOT references

CORPUS: tuple[Entry, ...] = (
    # ------------------------------------------------------------------ masked
    Entry("jpeg", _factory("jpeg"), masked=True, randomised=False,
          defense="JPEG compression (quality 75) in front of the bundled PGD-AT smallcnn",
          source="Das et al. 2017, Guo et al. ICLR 2018; shown by Athalye et al. ICML 2018 (BPDA)",
          reference=Reference(bpda="0", what="BPDA (identity) PGD-100, CE and CW, 5 restarts"),
          masking=("zero-gradient",)),
    Entry("bit_depth", _factory("bit_depth"), masked=True, randomised=False,
          defense="bit-depth reduction to 3 bits (feature squeezing) in front of the standard smallcnn",
          source="Xu et al. NDSS 2018; shown by He et al. WOOT 2017, Athalye et al. 2018 (BPDA)",
          reference=Reference(bpda="0", what="BPDA (identity) PGD-100, CE and CW, 5 restarts"),
          masking=("zero-gradient",)),
    Entry("tv_minimise", _factory("tv_minimise"), masked=True, randomised=True,
          defense="pixel dropout + total-variation minimisation, smallcnn trained on its outputs",
          source="Guo et al. ICLR 2018; shown by Athalye et al. 2018 (BPDA + EOT)",
          reference=Reference(bpda="0", eot=EOT, restarts=1, what=f"BPDA (identity) + EOT-{EOT} PGD-100, CE and CW"),
          masking=("zero-gradient", "randomised")),
    Entry("pixel_deflection", _factory("pixel_deflection"), masked=True, randomised=True,
          defense="pixel deflection (100 deflections, window 5) + Haar wavelet soft-thresholding, standard smallcnn",
          source="Prakash et al. CVPR 2018; shown by Athalye, Carlini & Wagner 2018 (arXiv:1804.03286, BPDA + EOT)",
          reference=Reference(bpda="0", eot=EOT, restarts=1, what=f"BPDA (identity) + EOT-{EOT} PGD-100, CE and CW"),
          masking=("zero-gradient", "randomised")),
    Entry("sap", _factory("sap"), masked=True, randomised=True,
          defense="stochastic activation pruning after both conv blocks of the standard smallcnn",
          source="Dhillon et al. ICLR 2018; shown by Athalye et al. 2018 (EOT)",
          reference=Reference(eot=EOT, restarts=1, what=f"EOT-{EOT} PGD-100, CE and CW"),
          masking=("randomised",)),
    Entry("noise_denoise", _factory("noise_denoise"), masked=True, randomised=True,
          defense="Gaussian noise (σ 0.25) + a learned denoiser, smallcnn trained on its outputs",
          source="randomised/denoising front ends (Xie et al. ICLR 2018, Liao et al. CVPR 2018); "
                 "shown by Athalye et al. 2018, Tramèr et al. NeurIPS 2020 (EOT)",
          reference=Reference(eot=EOT, restarts=1, what=f"EOT-{EOT} PGD-100, CE and CW"),
          masking=("randomised",)),
    Entry("distillation", _factory("distillation"), masked=True, randomised=False,
          defense="defensive distillation, T = 100 (smallcnn teacher and student)",
          source="Papernot et al. S&P 2016; shown by Carlini & Wagner 2016/2017 (logit rescaling, margin loss)",
          reference=Reference(logit_scale=100.0, what="PGD-100 on CE(logits/100) and the CW margin, 5 restarts"),
          masking=("saturated-softmax",)),
    Entry("gradient_regularisation", _factory("gradient_regularisation"), masked=True, randomised=False,
          defense="input-gradient regularisation (double backpropagation, λ 3), no adversarial training",
          source="Ross & Doshi-Velez AAAI 2018; strong PGD with restarts and transfer (Tramèr et al. 2020's advice)",
          reference=Reference(transfer_from=_factory("standard"),
                              what="PGD-100, CE and CW, 5 restarts + transfer from the standard smallcnn"),
          masking=("flat-gradient",)),
    # ------------------------------------------------------------------ honest
    Entry("standard", _factory("standard"), masked=False, randomised=False,
          defense="undefended smallcnn, standard training", source="—"),
    Entry("pgdat_smallcnn", "smallcnn.pgdat_fmnist", masked=False, randomised=False,
          defense="bundled PGD-AT smallcnn", source="Madry et al. ICLR 2018"),
    Entry("trades_vit", "vit_small_p4.trades_fmnist", masked=False, randomised=False,
          defense="bundled TRADES ViT (width 64, depth 4)", source="Zhang et al. ICML 2019"),
    Entry("a3_joint", "smallcnn.a3_joint_fmnist", masked=False, randomised=False,
          defense="bundled A3 (joint objective) + PGD-AT smallcnn", source="this project (A3)"),
    Entry("pgdat_mlp", _factory("pgdat_mlp"), masked=False, randomised=False,
          defense="3-layer MLP, PGD-AT (PGD-7) trained here", source="Madry et al. ICLR 2018"),
)


def entry(name: str) -> Entry:
    for e in CORPUS:
        if e.name == name:
            return e
    raise KeyError(f"no corpus model {name!r} (valid: {', '.join(e.name for e in CORPUS)})")
