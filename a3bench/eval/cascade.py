"""The one cascade: an attack on the examples still robust, batch by batch, every result
re-checked by the judge — for ``a3bench attack`` (one eps, many attacks) and for
``a3bench sweep-eps`` (every eps, every curve) alike.

:meth:`Cascade.run` splits the examples it is given into batches of ``batch_size`` in
order (the way AutoAttack forms them), runs the attack on each, re-checks what comes back
(:func:`~a3bench.eval.judge.recheck`) and hands a :class:`BatchResult` per batch, in batch
order, to the caller's ``on_batch`` — which applies it to its own state (and saves it: a
killed run resumes at the next batch). What it decides about an attack that raises:

- :class:`~a3bench.errors.BudgetViolation`, a3bench's own errors and MemoryError end the
  run (a perturbation outside the threat model is a bug, the result is void);
- any other exception is the attack failing on this model: what it broke in earlier
  batches stands, the rest of its share goes unattacked, and the stage ends ``failed``
  with a one-line note — the caller records it, flags it and goes on.

Each batch's global RNG is seeded from (seed, stage, batch), so an attack or model that
draws from it gives the same numbers whichever process runs the batch, and after a resume.
Under ``torchrun`` the ranks claim batches from a shared counter, a round at a time, and
each round's results are gathered on every rank (:mod:`a3bench.eval.distributed`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from a3bench.attacks.autoattack import AA_LOGGER
from a3bench.attacks.base import Attack, AttackContext
from a3bench.errors import A3BenchError, BudgetViolation, one_line
from a3bench.eval.distributed import Shard
from a3bench.eval.judge import DeployedModel, recheck
from a3bench.schema import AttackStatus

RISING_TOLERANCE = 0.05  # relative: a loss counts as still rising above 5 % over its earlier best
ROUND_BATCHES = 4  # batches per rank between two gathers under torchrun (and resume-state saves)
UNIT_PASSES = 2_000_000  # forward-pass equivalents per unit of work: minutes on a small CNN on one CPU core


@dataclass
class BatchResult:
    """What one batch of one attack gave, after the judge's re-check (plain data: it
    travels between ranks)."""

    batch: int
    examples: list[int]  # positions in the evaluation set
    broken: list[bool]
    pred: list[int]  # deployed prediction where re-checked, -1 elsewhere
    distance: list[float]  # of x_adv to x in the threat model's norm
    correct_share: list[float] | None = None  # randomised models: share of draws still correct on x_adv
    rising: list[bool] | None = None  # the attack's loss was still rising at its last iterates (None: no trace)
    unconfirmed: int = 0  # claimed successes the judge did not confirm
    outside: int = 0  # outside the threat model (counted only when not strict)
    nonfinite: int = 0  # re-checked examples whose logits were not finite
    forward_passes: int = 0
    backward_passes: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # pyautoattack's warnings during the batch
    # float32 CPU rows of x_adv for the examples the judge confirmed broken, in batch order
    # (None: none, or not kept): only those travel between ranks
    points: torch.Tensor | None = None
    error: str | None = None  # the attack raised on this batch: "RuntimeError: ..."
    fatal: tuple[str, str] | None = None  # (exception type, message) that ends the run on every rank


@dataclass
class StageEnd:
    status: AttackStatus
    note: str | None = None


class _Warnings(logging.Handler):
    """Collects pyautoattack's warnings so they become flags, not stderr noise."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def loss_still_rising(trace: torch.Tensor) -> torch.Tensor:
    """Per example (columns of an iterates × N loss trace): was the loss over the last
    quarter of the iterates still above its best before them (by 5 %)? Then more iterations
    would likely go on raising it: the attack has not converged on that example."""
    s = trace.shape[0]
    w = max(1, s // 4)
    if s <= w:
        return torch.zeros(trace.shape[1], dtype=torch.bool, device=trace.device)
    last = trace[-w:].nanmean(dim=0)
    early = trace[:-w].nan_to_num(float("-inf")).amax(dim=0)
    return torch.isfinite(last) & torch.isfinite(early) & (last > early + RISING_TOLERANCE * early.abs().clamp_min(0.1))


def batch_seed(seed: int, stage: int, batch: int) -> int:
    return (int(seed) * 1_000_003 + int(stage) * 7_919 + int(batch) * 104_729 + 12_345) % (2**63 - 1)


class Cascade:
    """Runs attacks on subsets of one set of examples ``x, y`` (``positions``: their places in
    the test split, for per-example seeds), judged by ``deployed``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, positions: torch.Tensor, deployed: DeployedModel, *,
                 batch_size: int, seed: int, strict: bool = True, shard: Shard | None = None,
                 attacked: DeployedModel | None = None, keep_points: bool = False) -> None:
        self.x, self.y, self.positions = x, y, positions
        self.keep_points = keep_points  # hand the confirmed points on (BatchResult.points; ``attack`` keeps them)
        self.deployed = deployed
        self.attacked = attacked  # the engine's copy the attacks call (its A3 modes restored after every batch too)
        self.batch_size, self.seed, self.strict = int(batch_size), int(seed), strict
        self.shard = shard or Shard()
        self._calls = 0  # run() calls so far: keys the shared counters (the same on every rank)

    def n_batches(self, todo: list[int], unit: int | None = None) -> int:
        size = unit or self.batch_size
        return (len(todo) + size - 1) // size

    def unit(self, attack: Attack) -> int:
        """Examples per unit of work (a batch; state is saved after each): ``batch_size``
        for AutoAttack's own components (its number depends on its batches, as in AutoAttack),
        else as many as fit ``UNIT_PASSES`` of the attack's budget, so that a long attack
        (SPSA-100, Square-20000) saves its state every few minutes whatever ``--batch-size``
        is. Deterministic: the same settings give the same units, so outcomes stay
        byte-identical across processes and resumes."""
        budget = attack.max_passes() if attack.autoattack is None else None
        if not budget or not budget[0]:
            return self.batch_size
        return max(1, min(self.batch_size, UNIT_PASSES // (budget[0] + 2 * budget[1])))

    def run(self, attack: Attack, ctx: AttackContext, todo: list[int], *, stage: int, start: int = 0,
            on_batch: Callable[[BatchResult], None], unit: int | None = None) -> StageEnd:
        """Attack ``todo`` (positions in x) from batch ``start`` on; ``on_batch`` gets every
        result in batch order on every rank. ``stage`` numbers the attack within the run (seeds);
        ``unit``: examples per batch (default ``batch_size``; the runner passes :meth:`unit`).

        One process: batch after batch, each handed over at once. Several (torchrun): rounds
        of ``ROUND_BATCHES`` batches per rank; within a round each rank claims the next batch
        from a shared counter as soon as it is free, so a rank that drew cheap batches does
        not wait for one that drew slow ones; the round's results are gathered and handed
        over in batch order (a batch is computed the same on any rank: its seed is its own)."""
        size_ = unit or self.batch_size
        n_batches = self.n_batches(todo, size_)
        if self.shard.world == 1:
            for b in range(start, n_batches):
                r = self._batch(attack, ctx, todo, b, stage, setup=b == start, unit=size_)
                end = self._hand_over([r], n_batches, on_batch)
                if end is not None:
                    return end
            return StageEnd(AttackStatus.RAN)
        self._calls += 1
        set_up = False
        size = ROUND_BATCHES * self.shard.world
        for first in range(start, n_batches, size):
            last = min(n_batches, first + size)
            claims = self.shard.claimer(f"a3bench/{self._calls}/{first}")
            mine = []
            while (b := first + claims.next()) < last:
                mine.append(self._batch(attack, ctx, todo, b, stage, setup=not set_up, unit=size_))
                set_up = True
            results = sorted((r for part in self.shard.gather(mine) for r in part), key=lambda r: r.batch)
            end = self._hand_over(results, n_batches, on_batch)
            if end is not None:
                return end
        return StageEnd(AttackStatus.RAN)

    @staticmethod
    def _hand_over(results: list[BatchResult], n_batches: int, on_batch) -> StageEnd | None:
        for r in results:
            if r.fatal is not None:
                _raise(r.fatal)
            if r.error is not None:
                return StageEnd(AttackStatus.FAILED, f"failed after {r.batch} of {n_batches} batch(es): {r.error}")
            on_batch(r)
        return None

    def _batch(self, attack: Attack, ctx: AttackContext, todo: list[int], b: int, stage: int, *, setup: bool,
               unit: int | None = None) -> BatchResult:
        size = unit or self.batch_size
        examples = todo[b * size : (b + 1) * size]
        idx = torch.tensor(examples, dtype=torch.long, device=self.x.device)
        xb, yb = self.x[idx], self.y[idx]
        result = BatchResult(b, examples, [], [], [])
        sink = _Warnings()
        aa_log = logging.getLogger(AA_LOGGER)
        aa_log.addHandler(sink)
        t0 = time.perf_counter()
        try:
            torch.manual_seed(batch_seed(self.seed, stage, b))
            if setup:
                attack.setup(ctx)
            out = attack(ctx.model, xb, yb, ctx.threat, seed=ctx.seed, indices=self.positions[idx.cpu()])
            rc = recheck(attack.name, out, xb, yb, ctx.threat, self.deployed, strict=self.strict)
        except (A3BenchError, BudgetViolation) as e:
            result.fatal = (type(e).__name__, str(e))
            return result
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 — one attack that cannot handle a model must not end a long run
            result.error = f"{type(e).__name__}: {one_line(e)}"
            return result
        finally:
            aa_log.removeHandler(sink)
            self.deployed.restore()
            if self.attacked is not None:
                self.attacked.restore()
        result.seconds = time.perf_counter() - t0
        result.broken = rc.broken.cpu().tolist()
        if self.keep_points and any(result.broken):
            result.points = out.x_adv.detach()[rc.broken].float().cpu()  # what the judge confirmed, no extra pass
        result.pred = rc.pred.cpu().tolist()
        result.distance = ctx.threat.distance(out.x_adv.detach(), xb).float().cpu().tolist()
        result.correct_share = rc.correct_share.cpu().tolist() if rc.correct_share is not None else None
        if out.loss_trace is not None and out.loss_trace.shape[-1] == len(examples):
            result.rising = (loss_still_rising(out.loss_trace) & ~rc.broken).cpu().tolist()
        result.unconfirmed = int((rc.claimed & ~rc.outside & ~rc.broken).sum())
        result.outside = int(rc.outside.sum())
        result.nonfinite = rc.nonfinite
        result.forward_passes = int(out.forward_passes) + rc.forward_passes  # + the re-check
        result.backward_passes = int(out.backward_passes)
        result.warnings = list(sink.messages)
        return result


def _raise(fatal: tuple[str, str]) -> None:
    """Re-raise, on every rank, the error a batch ended the run with."""
    import a3bench.errors as errors

    kind, message = fatal
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, (errors.A3BenchError, BudgetViolation))):
        cls = errors.A3BenchError
    raise cls(message)
