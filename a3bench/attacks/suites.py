"""The suites built from every attack family: registered last, once all attacks are.

An attack that does not apply to a model (an A3 attack on a plain CNN, a CrossMax attack on
anything but an ensemble) is skipped with a note and costs nothing, so ``adaptive`` and
``full`` hold every family. New attacks go at the end of ``ADAPTIVE``: an evaluation kept
with ``--keep-state`` is then extended by ``--resume`` with only the new ones.
"""

from __future__ import annotations

from a3bench.attacks.registry import register_suite

ADAPTIVE = [
    # A3's own mechanism
    "mode-transfer", "bpda-a3",
    # gradient masking in general
    "bpda",
    "a3-scale",
    "pre-softmax", "pgd-50:loss=cw", "pgd-50:loss=logit-scaled",
    # CrossMax self-ensembles and ensembles (Zhang et al. 2024)
    "crossmax-mean", "fixed-randomness", "predictor-transfer",
    # a gradient that lies anywhere in the graph (skipped when nothing is found)
    "bpda-graph",
    # vision transformers: saturated attention softmax (Jain & Dutta 2024)
    "attn-scale", "aas",
    # black-box: immune to misleading gradients
    "square",
]

register_suite("adaptive", ADAPTIVE, escalates=True,
               help="attacks on A3's mechanism, gradient masking, CrossMax ensembles and ViT attention, margin/logit-scaled losses, Square (black-box)")
# AutoAttack's own Square is the adaptive suite's too: the plan runs it once, inside AutoAttack.
register_suite("full", ["autoattack", *ADAPTIVE], escalates=True, help="standard + adaptive in one worst-case cascade")
