"""One evaluation set-up for every command that evaluates (docs/architecture.md#layers).

``a3bench attack``, ``sweep-eps``, ``audit`` and :func:`a3bench.benchmark` all prepare the
same things before the first attack: the model on its device (eval mode, parameters
frozen), the first n test examples and their positions in the split, whether the model is
randomised, the judge (:class:`~a3bench.eval.judge.DeployedModel`), the execution layer
the attacks call the model through (:mod:`a3bench.eval.engine`), the attack context and
the cascade. :class:`Evaluation` does it once, one way, from one :class:`EvalOptions`.

>>> ev = Evaluation(load_model("smallcnn.pgdat_fmnist"), load_dataset("fmnist"), EvalOptions(n_examples=500))
>>> with ev.frozen():
...     checks = ev.model_checks(ThreatModel("Linf", 0.1))      # randomness, sanity, gradient lies
...     clean = ev.clean_pass()                                 # the judge's verdict on the clean inputs
...     ev.cascade.run(attack, ev.context(threat), todo, stage=0, on_batch=...)
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from a3bench.attacks.base import AttackContext
from a3bench.errors import AttackError
from a3bench.eval.cascade import Cascade
from a3bench.eval.distributed import current_shard
from a3bench.eval.judge import DeployedModel, as_loaded_model, check_model_matches, detect_randomness, frozen_parameters, model_fingerprint
from a3bench.flags import NO_INPUT_GRADIENT
from a3bench.schema import Flag
from a3bench.threat import ThreatModel

SANITY_EXAMPLES = 100  # AutoAttack's checks run on one batch; 100 examples detect the same and cost little
DEFAULT_DRAWS = 10  # fresh forward passes per verdict on a randomised model
CLEAN_SEED = 7_919  # the clean pass of a randomised model is seeded per batch from (seed, first example)
MAX_SEED = 2**32 - 1
_CLEAN_PASSES = itertools.count()  # clean passes so far in this process: every rank counts the same


@dataclass
class EvalOptions:
    """Every option of an evaluation, built once at the edge (the CLI, the API) and handed on.

    n_examples: the first N test examples (all when None). seed: every random choice
    derives from it. batch_size: examples per attack call (AutoAttack's outcome depends on
    it, as in AutoAttack itself). device: ``auto`` picks CUDA when present. draws: fresh
    forward passes per verdict when the model turns out to be randomised (majority rule).
    strict: a perturbation outside the threat model raises BudgetViolation (else it counts
    as robust and flags the record). spec: the ``--model`` SPEC as typed (for the record).
    data_dir: where the dataset's files are (attacks that train a surrogate read its
    training split). engine: how attacks call the model (:mod:`a3bench.eval.engine`:
    ``auto``, ``plain``, ``compile``); the judge always uses the model as given.
    """

    n_examples: int | None = None
    seed: int = 0
    batch_size: int = 256
    device: Any = "auto"
    draws: int = DEFAULT_DRAWS
    strict: bool = True
    spec: str | None = None
    data_dir: str | Path | None = None
    engine: str = "auto"

    def __post_init__(self) -> None:
        for name in ("batch_size", "draws"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AttackError(f"{name.replace('_', ' ')} must be an integer ≥ 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise AttackError(f"seed must be an integer in 0…{MAX_SEED}, got {self.seed!r}")
        if self.n_examples is not None and (isinstance(self.n_examples, bool) or not isinstance(self.n_examples, int) or self.n_examples < 0):
            raise AttackError(f"n_examples must be an integer ≥ 0, got {self.n_examples!r}")
        from a3bench.eval.engine import check_engine

        check_engine(self.engine)

    @classmethod
    def split(cls, kwargs: dict[str, Any]) -> tuple["EvalOptions", dict[str, Any]]:
        """(the options among ``kwargs``, the rest) — for functions that take both."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in names}), {k: v for k, v in kwargs.items() if k not in names}


@dataclass
class CleanPass:
    """The judge's verdict on the clean examples."""

    pred: list[int]
    correct_share: list[float] | None  # randomised models: share of the draws that classified correctly
    nonfinite: int

    def correct(self, labels: list[int]) -> list[bool]:
        return [p == t for p, t in zip(self.pred, labels)]


@dataclass
class ModelChecks:
    """What the checks before any attack found (docs/diagnostics.md)."""

    flags: list[Flag]
    randomised: bool
    input_gradient: bool  # the output depends differentiably on the input
    diagnostics: dict[str, Any] = field(default_factory=dict)  # kept in the record (gradient check, lie location)


class Evaluation:
    """The prepared pieces of one evaluation: model, examples, judge, engine, context, cascade."""

    def __init__(self, loaded_model, dataset, options: EvalOptions | None = None) -> None:
        from a3bench.device import resolve_device
        from a3bench.eval.engine import Engine

        self.options = options = options or EvalOptions()
        self.loaded = as_loaded_model(loaded_model, dataset, options.batch_size)
        self.seed, self.batch_size = options.seed, options.batch_size
        self.dev = resolve_device(options.device)
        self.shard = current_shard(self.dev)
        self.model = self.loaded.model.to(self.dev).eval()
        data = dataset.first(options.n_examples)
        self.n = len(data)
        self.x, self.y = data.tensors(self.dev)
        # Positions in the test split: per-example seeds and outcomes refer to them, so a
        # subset gives each example the same randomness as the full set.
        self.positions = data.positions.clone().to(torch.long)
        self.info = data.info
        check_model_matches(self.model, self.x, self.info.num_classes, self.info.name)
        self.deployed = DeployedModel(self.model)
        self.engine = Engine(self.model, options.engine, self.dev, probe=self.x[:16])
        attacked = DeployedModel(self.engine.model) if self.engine.model is not self.model else None
        self.cascade = Cascade(self.x, self.y, self.positions, self.deployed, batch_size=self.batch_size, seed=self.seed,
                               strict=options.strict, shard=self.shard, attacked=attacked)
        self.randomised: bool | None = None  # known after model_checks() or detect_randomness()
        self.input_gradient = True
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ identity

    @property
    def fingerprint(self) -> str:
        """sha256 of the weights (resume identity; the record's model.sha256)."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    @property
    def positions_digest(self) -> str:
        return hashlib.sha256(self.positions.numpy().astype("int64").tobytes()).hexdigest()[:16]

    @property
    def labels(self) -> list[int]:
        return self.y.tolist()

    # ------------------------------------------------------------------ what attacks get

    def context(self, threat: ThreatModel) -> AttackContext:
        """The attack context: the model as the engine runs it, everything an attack may need."""
        return AttackContext(model=self.engine.model, threat=threat, device=self.dev, seed=self.seed, batch_size=self.batch_size,
                             num_classes=self.info.num_classes, dataset=self.info.name, loaded=self.loaded,
                             probe=self.x[:16], data_dir=str(self.options.data_dir) if self.options.data_dir is not None else None)

    @contextlib.contextmanager
    def frozen(self) -> Iterator["Evaluation"]:
        """Gradients w.r.t. inputs only, and the deployed state restored at the end."""
        with frozen_parameters(self.model), frozen_parameters(self.engine.model):
            try:
                yield self
            finally:
                self.deployed.restore()

    # ------------------------------------------------------------------ before the attacks

    def sanity_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = min(self.n, self.batch_size, SANITY_EXAMPLES)
        return self.x[:k], self.y[:k], self.positions[:k]

    def detect_randomness(self) -> bool:
        """Is the model randomised? AutoAttack's rule (:func:`~a3bench.eval.judge.detect_randomness`)
        on the sanity batch, decided once; the judge then takes ``draws`` votes per verdict."""
        if self.randomised is None:
            x, y, _ = self.sanity_batch()
            self.randomised = bool(len(x)) and detect_randomness(self.model, x, y).randomised
        self.deployed.draws = self.options.draws if self.randomised else 1
        return self.randomised

    def model_checks(self, threat: ThreatModel) -> ModelChecks:
        """AutoAttack's sanity checks, the input-gradient check and the gradient-consistency
        check with its lie location, on the sanity batch (docs/diagnostics.md)."""
        from a3bench.eval import diagnostics

        x, y, positions = self.sanity_batch()
        randomised = self.detect_randomness()
        found = diagnostics.sanity_flags(self.model, x, y, randomised=randomised, threat=threat, seed=self.seed)
        self.input_gradient = not any(f.name == NO_INPUT_GRADIENT.name for f in found.flags)
        lies, kept = diagnostics.gradient_lies(self.model, x, y, threat, seed=self.seed, positions=positions, randomised=randomised,
                                               input_gradient=self.input_gradient)
        return ModelChecks(found.flags + lies, randomised, self.input_gradient, {**found.diagnostics, **kept})

    def clean_pass(self, progress: Callable[[int, int], None] | None = None) -> CleanPass:
        """The judge on the clean examples, batch by batch; a randomised model's draws are
        seeded per batch, so the clean verdicts are the same in every command and on any
        rank. Under torchrun the ranks claim the batches from a shared counter."""
        starts = list(range(0, self.n, self.batch_size))
        done: dict[int, tuple[list[int], list[float], int]] = {}
        claims = self.shard.claimer(f"a3bench/clean/{next(_CLEAN_PASSES)}")  # the same key on every rank
        correct = 0
        while (k := claims.next()) < len(starts):
            s = starts[k]
            torch.manual_seed(self.seed * CLEAN_SEED + s)
            v = self.deployed.judge(self.x[s : s + self.batch_size], self.y[s : s + self.batch_size])
            done[s] = (v.pred.tolist(), v.correct_share.tolist(), v.nonfinite)
            correct += int((~v.wrong).sum())
            if progress is not None and self.shard.world == 1:
                progress(min(self.n, s + self.batch_size), correct)
        self.deployed.restore()
        if self.shard.world > 1:
            done = {s: part for parts in self.shard.gather(done) for s, part in parts.items()}
        parts = [done[s] for s in starts]
        return CleanPass(
            pred=[p for part in parts for p in part[0]],
            correct_share=[c for part in parts for c in part[1]] if self.deployed.draws > 1 and parts else None,
            nonfinite=sum(part[2] for part in parts),
        )
