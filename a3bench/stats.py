"""The statistics every report quotes: Wilson intervals for accuracies, exact McNemar tests
for paired per-example comparisons. Pure Python: reports and CI gates need no torch."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion, in percent."""
    if n == 0:
        return (0.0, 100.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs b + c split as Binomial(b + c, 1/2)
    under "no change"; p = P(a split at least as uneven). Exact, so valid for the small counts
    a CI subset gives (the chi-square approximation is not)."""
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    # Exact integer arithmetic before the one division: n can be thousands.
    return min(1.0, 2 * tail / 2**n)
