"""Runtime state switched for a block and restored after it, also when the block raises.

A3 modes, A3 strength scales, straight-through backward passes, attention scales and fixed
randomness are all the same move: set an attribute on some modules, run, put the old
values back. It is written once here; never rebuild a model to change how it runs.

>>> with swapped(a3_layers(model), "mode", A3Mode.AMPLIFY):
...     logits = model(x)
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

_PER_OBJECT = object()


@contextlib.contextmanager
def swapped(objects: Sequence[Any], attr: str, value: Any = _PER_OBJECT, *, values: Sequence[Any] | None = None) -> Iterator[None]:
    """Set ``attr`` on every object to ``value`` (or ``values[i]`` on object i) for the block."""
    objects = list(objects)
    if (values is None) == (value is _PER_OBJECT):
        raise TypeError("give exactly one of value= or values=")
    new = [value] * len(objects) if values is None else list(values)
    if len(new) != len(objects):
        raise ValueError(f"{len(new)} values for {len(objects)} objects")
    saved = [getattr(o, attr) for o in objects]
    try:
        for o, v in zip(objects, new):
            setattr(o, attr, v)
        yield
    finally:
        for o, v in zip(objects, saved):
            setattr(o, attr, v)
