"""The statistics every report quotes: Wilson intervals for accuracies, exact McNemar tests
for paired per-example comparisons. Pure Python: reports and CI gates need no torch."""

from __future__ import annotations

import math
from typing import Sequence


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion, in percent."""
    if n == 0:
        return (0.0, 100.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half))


def discordant(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int]:
    """The discordant pairs of two paired outcomes (robust or not on the same examples):
    true only in ``a``, true only in ``b`` — the counts :func:`mcnemar_exact` takes."""
    return sum(1 for x, y in zip(a, b) if x and not y), sum(1 for x, y in zip(a, b) if y and not x)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs b + c split as Binomial(b + c, 1/2)
    under "no change"; p = P(a split at least as uneven). Exact, so valid for the small counts
    a CI subset gives (the chi-square approximation is not).

    The tail is summed in log space from its largest term down, stopping once the terms no
    longer change the sum: O(√n) terms, so 60,000 paired outcomes take microseconds, not
    the minutes exact big-integer binomials take."""
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # log C(n, k) - n log 2, then C(n, i-1) = C(n, i) * i / (n - i + 1) downwards
    log_term = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
    total, i, rel = 0.0, k, 1.0
    while i >= 0:
        total += rel
        if rel < 1e-17 * total:
            break
        rel *= i / (n - i + 1)
        i -= 1
    log_tail = log_term + math.log(total)
    return min(1.0, 2 * math.exp(log_tail)) if log_tail < 0 else 1.0


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), summed in log space (n can be tens of thousands)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


SIGNIFICANCE = 0.05  # one-sided level of every trigger that spends compute or changes a verdict


def significantly_above(k: int, n: int, rate: float, alpha: float = SIGNIFICANCE) -> bool:
    """Is k of n significantly more than ``rate`` (a fraction)? The one-sided binomial test
    against the rate: a raw count just over a threshold is often chance at small n (2 of 500
    against 0.2 % has p = 0.26)."""
    if n <= 0 or k <= rate * n:
        return False
    return binomial_tail(k, n, rate) < alpha
