"""Exact statistics for small counts of seeds: how sure "k of n seeds learned" is, and whether two such counts differ.

With n <= 5 seeds a cell, normal approximations (Wald, Wilson) are not what a reader can trust: the exact
Clopper–Pearson interval is the standard, and Fisher's exact test compares two cells.
"""

from __future__ import annotations

from math import comb


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return sum(comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def _solve(f, target: float) -> float:
    """The p in [0, 1] where the increasing function f crosses `target`, by bisection (to ~1e-12)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if f(middle) < target else (low, middle)
    return (low + high) / 2


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of a share k / n: the p whose binomial tails hold k at (1 − c) / 2.
    k = 0 has lower bound 0, k = n upper bound 1; n = 0 says nothing: (0, 1)."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n (got k={k}, n={n})")
    if n == 0:
        return 0.0, 1.0
    alpha = (1 - confidence) / 2
    lower = 0.0 if k == 0 else _solve(lambda p: binomial_tail(k, n, p), alpha)
    upper = 1.0 if k == n else _solve(lambda p: binomial_tail(k + 1, n, p), 1 - alpha)
    return lower, upper


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p of Fisher's exact test for k1 of n1 against k2 of n2: the probability, with the margins fixed,
    of a table no more likely than the one seen."""
    total, successes = n1 + n2, k1 + k2

    def probability(a: int) -> float:
        return comb(n1, a) * comb(n2, successes - a) / comb(total, successes)

    seen = probability(k1)
    tables = range(max(0, successes - n2), min(n1, successes) + 1)
    return min(1.0, sum(p for p in map(probability, tables) if p <= seen * (1 + 1e-9)))
