"""Confidence intervals for per-episode accuracies (the field's mean ± 1.96·σ/√n)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class MeanCI:
    """A mean and the half-width of its 95% normal-approximation confidence interval."""

    mean: float
    ci95: float
    n: int

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.ci95:.2f}"

    def to_dict(self) -> dict:
        return {"mean": self.mean, "ci95": self.ci95, "n": self.n}


def mean_ci(values) -> MeanCI:
    """Mean of ``values`` [shape=(n,)] with half-width ``1.96 * std(ddof=1) / sqrt(n)``.

    With one value the half-width is ``nan`` (no spread can be estimated).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("mean_ci needs at least one value")
    half = Z95 * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
    return MeanCI(float(v.mean()), float(half), int(v.size))


def paired_difference(a, b) -> MeanCI:
    """Mean of ``a - b`` over the same episodes, with the CI of the paired differences.

    Parameters
    ----------
    a, b : array-like [shape=(n,)]
        Per-episode accuracies of two models scored on identical episodes, in the same order.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    return mean_ci(a - b)
