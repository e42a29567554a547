"""The execution layer: how attacks call the model under attack (docs/performance.md).

Attacks spend nearly all their time in the model's own forward and backward passes (Square:
5,000 queries per robust example). The engine runs them on a copy of the model laid out
for speed, while the judge (:mod:`a3bench.eval.judge`) re-checks every success on the model
exactly as the user gave it:

- ``auto`` (default): a copy (same class, same module names) in ``channels_last`` memory
  format, inputs converted by a forward pre-hook, when the model has 2-D
  convolutions and the copy's logits agree with the original's on the first examples
  (conv and pooling kernels are faster on CPU in that layout; the logits differ by float
  rounding only, ~1e-6). Anything else — no convolution, a model that cannot be copied,
  logits that disagree — runs as given, and the record says why.
- ``compile``: ``auto`` plus ``torch.compile`` on the copy, where it compiles and agrees.
- ``plain``: the model as given, exactly as before the engine existed.

The choice is recorded in the record's provenance (``provenance.engine``).

>>> engine = Engine(model, "auto", torch.device("cpu"), probe=x[:16])
>>> engine.model(x_adv)          # what attacks call
>>> engine.describe()
{'name': 'auto', 'memory_format': 'channels_last', 'compiled': False, 'threads': 2, 'note': None}
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from a3bench.errors import AttackError

ENGINES = ("auto", "plain", "compile")
AGREEMENT = 1e-4  # largest logit difference (relative to the logits' scale) the copy may show


def check_engine(name: str) -> None:
    if name not in ENGINES:
        raise AttackError(f"unknown engine {name!r} (valid: {', '.join(ENGINES)})")


def _to_channels_last(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook of the engine's copy: its inputs in the copy's memory format."""
    return tuple(a.contiguous(memory_format=torch.channels_last) if isinstance(a, torch.Tensor) and a.dim() == 4 else a
                 for a in args)


def _has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


class Engine:
    """The model attacks call (``model``) and how it was made (``describe()``)."""

    def __init__(self, model: nn.Module, name: str, device: torch.device, probe: torch.Tensor | None = None) -> None:
        check_engine(name)
        self.name, self.original = name, model
        self.model: nn.Module = model
        self.memory_format, self.compiled, self.note = "as given", False, None
        if name == "plain":
            return
        if probe is None or probe.dim() != 4 or not _has_conv2d(model):
            self.note = "no 2-D convolution on image inputs: the model runs as given"
            return
        try:
            # A copy of the same class and module names (attacks look for A3 layers, attention
            # blocks, CrossMax switches, and name where a gradient lies), its weights and inputs
            # channels_last; outputs as the model gives them.
            fast: nn.Module = copy.deepcopy(model).to(memory_format=torch.channels_last).eval()
            fast.register_forward_pre_hook(_to_channels_last)
        except Exception as e:  # noqa: BLE001 — a model that cannot be copied runs as given
            self.note = f"the model could not be copied ({type(e).__name__}): it runs as given"
            return
        if name == "compile":
            try:
                compiled = torch.compile(fast, dynamic=True)
                if self._agrees(compiled, probe):
                    fast, self.compiled = compiled, True
                else:
                    self.note = "torch.compile changed the logits beyond float rounding: not used"
            except Exception as e:  # noqa: BLE001 — compile is optional
                self.note = f"torch.compile failed ({type(e).__name__}): not used"
        if not self._agrees(fast, probe):
            self.note = "the channels_last copy's logits disagree with the model's: the model runs as given"
            return
        self.model, self.memory_format = fast, "channels_last"

    def _agrees(self, fast: nn.Module, probe: torch.Tensor) -> bool:
        """Same predictions and logits within float rounding on the probe inputs (a randomised
        model is compared on a fixed seed, so both see the same draw)."""
        try:
            with torch.no_grad():
                torch.manual_seed(0)
                want = self.original(probe)
                torch.manual_seed(0)
                got = fast(probe)
        except Exception:  # noqa: BLE001
            return False
        if not (isinstance(got, torch.Tensor) and got.shape == want.shape):
            return False
        scale = want.abs().max().clamp_min(1.0)
        return bool(((got - want).abs().max() <= AGREEMENT * scale).item()) and torch.equal(got.argmax(1), want.argmax(1))

    def describe(self) -> dict[str, Any]:
        """What the record's provenance keeps."""
        return {"name": self.name, "memory_format": self.memory_format, "compiled": self.compiled,
                "threads": torch.get_num_threads(), "note": self.note}
