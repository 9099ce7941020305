"""Paired statistics for two runs scored on the same items (docs/method.md#paired-statistics): the 2x2 table of
verdicts, the exact McNemar test, a paired bootstrap interval of the accuracy difference, and the Wilson interval of
a proportion. Pure functions on verdicts, so evaluation comparisons, the demo and reports all call the same ones."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

BOOTSTRAP_DRAWS = 10_000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class PairedCounts:
    """Verdicts of runs A and B on the items both scored, and how many items only one of them scored."""

    both_right: int
    only_a: int  # A right, B wrong
    only_b: int  # A wrong, B right
    both_wrong: int
    only_in_a: int = 0  # scored by A alone: left out of every figure here
    only_in_b: int = 0

    @property
    def n(self) -> int:
        return self.both_right + self.only_a + self.only_b + self.both_wrong

    @property
    def accuracy_a(self) -> float:
        return (self.both_right + self.only_a) / self.n if self.n else 0.0

    @property
    def accuracy_b(self) -> float:
        return (self.both_right + self.only_b) / self.n if self.n else 0.0

    @property
    def difference(self) -> float:
        """acc(A) - acc(B) over the common items: only the discordant items move it."""
        return (self.only_a - self.only_b) / self.n if self.n else 0.0


def paired_counts(a: Mapping[Hashable, bool], b: Mapping[Hashable, bool]) -> PairedCounts:
    """The 2x2 table of item verdicts (id -> right) over the ids both runs scored."""
    common = a.keys() & b.keys()
    cells = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    for item in common:
        cells[bool(a[item]), bool(b[item])] += 1
    return PairedCounts(both_right=cells[True, True], only_a=cells[True, False], only_b=cells[False, True],
                        both_wrong=cells[False, False], only_in_a=len(a) - len(common),
                        only_in_b=len(b) - len(common))


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: under "A and B are equally accurate" each discordant item is A's with
    probability 1/2, so p = min(1, 2 P[X <= min(only_a, only_b)]) with X ~ Bin(only_a + only_b, 1/2); 1 with no
    discordant items."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be 0 or more, got {only_a} and {only_b}")
    n, k = only_a + only_b, min(only_a, only_b)
    term = tail = 1  # C(n, 0); exact integers, so no rounding until the one division
    for i in range(1, k + 1):
        term = term * (n - i + 1) // i
        tail += term
    return min(1.0, 2 * tail / 2 ** n)


def paired_bootstrap_ci(counts: PairedCounts, *, level: float = 0.95, draws: int = BOOTSTRAP_DRAWS,
                        seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap interval of acc(A) - acc(B), resampling the common items with replacement (pairs kept
    together); None without common items.

    A resample's difference depends only on how many of its n items are only-A and only-B items, so each draw is a
    multinomial draw over the four cells: the same distribution as resampling item indices, at no cost in n."""
    if counts.n == 0:
        return None
    cells = np.array([counts.only_a, counts.only_b, counts.both_right + counts.both_wrong]) / counts.n
    resampled = np.random.default_rng(seed).multinomial(counts.n, cells, size=draws)
    differences = (resampled[:, 0] - resampled[:, 1]) / counts.n
    low, high = np.quantile(differences, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def wilson_interval(successes: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion successes/n (sound near 0 and 1, unlike the normal one); (0, 1) for
    n = 0, where nothing is known."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf((1 + level) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    # the bounds at 0 and n are exact; computed, they would be off by rounding
    return (0.0 if successes == 0 else centre - half), (1.0 if successes == n else centre + half)


def paired_summary(a: Mapping[Hashable, bool], b: Mapping[Hashable, bool], *, draws: int = BOOTSTRAP_DRAWS,
                   seed: int = BOOTSTRAP_SEED) -> dict:
    """Everything a report shows for runs A and B, JSON-ready: the counts, both accuracies and their difference
    over the common items, the McNemar p-value and the bootstrap 95% interval (with its draws and seed)."""
    counts = paired_counts(a, b)
    interval = paired_bootstrap_ci(counts, draws=draws, seed=seed)
    return {"n_common": counts.n, "both_right": counts.both_right, "only_a": counts.only_a, "only_b": counts.only_b,
            "both_wrong": counts.both_wrong, "only_in_a": counts.only_in_a, "only_in_b": counts.only_in_b,
            "accuracy_a": counts.accuracy_a, "accuracy_b": counts.accuracy_b, "difference": counts.difference,
            "mcnemar_p": mcnemar_exact_p(counts.only_a, counts.only_b),
            "difference_ci95": list(interval) if interval is not None else None,
            "bootstrap": {"draws": draws, "seed": seed}}
