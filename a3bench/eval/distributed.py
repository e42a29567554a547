"""One evaluation over several processes: ``torchrun`` ranks through ``torch.distributed``.

``torchrun --nproc_per_node N a3bench attack …`` (or ``sweep-eps``) starts N copies of the
command. Each loads the same model and examples; the cascade hands out the batches of every
attack from a shared counter (a rank that is done takes the next batch: work stealing, so a
round no longer waits for its slowest turn) and gathers each round's results on every rank,
in batch order, so every rank holds the same state and rank 0 writes the one record. A batch is computed
exactly as in a single process (same examples, same seeds), so the per-example outcomes
are byte-identical to a one-process run with the same ``--batch-size`` and seed — also
for AutoAttack, whose randomness is per batch.

gloo carries the results on CPU (and beside NCCL on GPUs: results are small Python
objects). A rank that dies ends the run: torchrun stops the others, the collective fails,
and no record is written; the resume state (saved by rank 0 after every round) survives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from a3bench.errors import ShardError

TIMEOUT_ENV = "A3BENCH_DIST_TIMEOUT_S"  # how long a rank waits for the others (a round can be one long batch)
DEFAULT_TIMEOUT_S = 6 * 3600


@dataclass
class Shard:
    """This process's place in the run: rank ``rank`` of ``world`` (0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    group: Any = None  # the gloo group for object collectives (None: the default group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, ordered by rank, on every rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        try:
            dist.all_gather_object(out, obj, group=self.group)
        except RuntimeError as e:
            raise ShardError(f"rank {self.rank}: another rank of the sharded run failed or left ({_short(e)}); "
                             "no record was written; rerun with --resume to continue") from None
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        try:
            dist.broadcast_object_list(box, src=0, group=self.group)
        except RuntimeError as e:
            raise ShardError(f"rank {self.rank}: rank 0 of the sharded run failed or left ({_short(e)})") from None
        return box[0]

    def claimer(self, key: str) -> "Claims":
        """A shared counter for handing out work: every rank calls ``next()`` and gets a
        number no other rank got (0, 1, 2 … in the order asked), so a rank that finishes
        early takes the next piece instead of waiting for its turn (work stealing)."""
        return Claims(self, key)

    def same_everywhere(self, value: Any, what: str) -> None:
        """The ranks must agree on ``value`` (settings, examples, weights): else a ShardError."""
        values = self.gather(value)
        if any(v != values[0] for v in values[1:]):
            raise ShardError(f"the ranks of the sharded run disagree on {what}: give every rank the same command and files")


class Claims:
    """:meth:`Shard.claimer`'s counter: torch.distributed's key-value store (the one torchrun
    set up for the process group), an atomic add per claim; a plain counter in one process."""

    def __init__(self, shard: Shard, key: str) -> None:
        self.shard, self.key, self.local = shard, key, 0
        self.store = None
        if shard.world > 1:
            import torch.distributed.distributed_c10d as c10d

            self.store = c10d._get_default_store()

    def next(self) -> int:
        if self.store is None:
            self.local += 1
            return self.local - 1
        try:
            return int(self.store.add(self.key, 1)) - 1
        except RuntimeError as e:
            raise ShardError(f"rank {self.shard.rank}: the sharded run's store is gone ({_short(e)}); "
                             "no record was written; rerun with --resume to continue") from None


def _short(e: BaseException) -> str:
    from a3bench.errors import one_line

    return one_line(e, 100)


_SHARD: Shard | None = None


def world_size_from_env() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


MAX_TIMEOUT_S = 30 * 24 * 3600  # timedelta and the process group take far less than 1e300 seconds


def timeout_seconds() -> float:
    """``A3BENCH_DIST_TIMEOUT_S``: a number of seconds in (0, 30 days]; anything else is one
    ShardError line on every rank, not a traceback."""
    import math

    text = os.environ.get(TIMEOUT_ENV)
    if text is None or not text.strip():
        return float(DEFAULT_TIMEOUT_S)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
        raise ShardError(f"{TIMEOUT_ENV}={_short(text)}: give a number of seconds in (0, {MAX_TIMEOUT_S}]")
    return value


def current_shard(device=None) -> Shard:
    """This process's shard, joining the process group torchrun describes on first use.

    Without torchrun (no ``WORLD_SIZE`` > 1) this is rank 0 of 1 and nothing is initialised.
    """
    global _SHARD
    if _SHARD is not None:
        return _SHARD
    if world_size_from_env() == 1:
        _SHARD = Shard()
        return _SHARD
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise ShardError("this PyTorch build has no torch.distributed: run without torchrun")
    timeout = timedelta(seconds=timeout_seconds())
    if not dist.is_initialized():
        cuda = device is not None and getattr(device, "type", str(device)).startswith("cuda")
        backend = "nccl" if cuda and torch.cuda.is_available() else "gloo"
        try:
            dist.init_process_group(backend=backend, timeout=timeout)
        except (RuntimeError, ValueError) as e:
            raise ShardError(f"cannot join the sharded run ({_short(e)}): start it with torchrun") from None
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=timeout)
    _SHARD = Shard(dist.get_rank(), dist.get_world_size(), group)
    return _SHARD
