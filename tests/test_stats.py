"""Confidence intervals and paired differences on numbers checkable by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kws_proto.util.stats import mean_ci, paired_difference


def test_mean_ci_by_hand():
    # values 0.5, 0.7, 0.9: mean 0.7, sample std 0.2, half-width 1.96 * 0.2 / sqrt(3)
    r = mean_ci([0.5, 0.7, 0.9])
    assert r.mean == pytest.approx(0.7)
    assert r.ci95 == pytest.approx(1.959964 * 0.2 / math.sqrt(3), rel=1e-6)
    assert r.n == 3


def test_paired_difference_by_hand():
    a = [0.8, 0.6, 1.0, 0.4]
    b = [0.6, 0.5, 0.7, 0.4]  # differences 0.2, 0.1, 0.3, 0.0: mean 0.15
    d = paired_difference(a, b)
    diffs = [0.2, 0.1, 0.3, 0.0]
    sd = math.sqrt(sum((x - 0.15) ** 2 for x in diffs) / 3)
    assert d.mean == pytest.approx(0.15)
    assert d.ci95 == pytest.approx(1.959964 * sd / 2, rel=1e-6)


def test_pairing_removes_shared_episode_difficulty():
    # two models whose accuracies move together across episodes: the paired CI is far tighter
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0.3, 0.9, 500)
    a, b = difficulty + 0.05, difficulty
    assert paired_difference(a, b).ci95 < 1e-9 < mean_ci(a).ci95


def test_errors():
    with pytest.raises(ValueError):
        mean_ci([])
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1, 2], [1])
    assert math.isnan(mean_ci([0.5]).ci95)
