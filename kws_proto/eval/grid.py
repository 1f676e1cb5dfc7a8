"""The evaluation grid: its cells (way, shot, queries, episodes), each cell's fixed episodes, and
the rows a grid's scores make, whichever embedding filled the table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws_proto.data.episodes import EpisodeSampler, fixed_episodes
from kws_proto.errors import ConfigError
from kws_proto.model.scoring import score_episodes


@dataclass(frozen=True)
class EvalSetting:
    """One cell of the evaluation grid."""

    n_way: int
    k_shot: int
    n_query: int = 15
    episodes: int = 1000


def episode_rows(episodes) -> np.ndarray:
    """The manifest rows ``episodes`` touch (support and query), sorted, unique."""
    return np.unique(np.concatenate([np.concatenate([e.support.ravel(), e.query.ravel()])
                                     for e in episodes]))


def grid(ways, shots, n_query: int = 15, episodes: int = 1000) -> list[EvalSetting]:
    """Every (way, shot) combination, in order."""
    return [EvalSetting(int(w), int(k), n_query, episodes) for w in ways for k in shots]


def parse_grid(text: str, n_query: int = 15, episodes: int = 1000) -> list[EvalSetting]:
    """Settings from ``"5x1,5x5,10x5"`` (WAYxSHOT items); a bad item is a :class:`ConfigError`
    naming it."""
    out = []
    for item in text.split(","):
        try:
            way, shot = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--grid item {item!r} must look like WAYxSHOT, e.g. 5x1") from None
        if way < 1 or shot < 1:
            raise ConfigError(f"--grid item {item!r}: way and shot must be positive integers")
        out.append(EvalSetting(way, shot, n_query, episodes))
    return out


def eval_episodes(data, classes, setting: EvalSetting, seed: int = 0, unknown=()):
    """The fixed episodes of one grid cell over ``classes`` of ``data`` (same seed, same episodes).

    With ``unknown`` words, every episode gets the extra pooled class ``_unknown_`` (open set)."""
    sampler = EpisodeSampler(
        data.manifest, classes, setting.n_way, setting.k_shot, setting.n_query, seed=seed,
        speaker_disjoint=data.speaker_disjoint, unknown_classes=tuple(unknown),
    )
    return fixed_episodes(sampler, setting.episodes)


def score_grid(table_for, data, classes, settings, seed: int = 0, unknown=()) -> list[dict]:
    """Score every cell of ``settings`` on its fixed episodes over ``classes`` of ``data``.

    Parameters
    ----------
    table_for : callable
        ``episodes -> np.ndarray [shape=(n_clips, dim)]``: the embeddings of (at least) every
        clip the episodes use, by manifest row.
    data
        Anything with ``manifest`` and ``speaker_disjoint`` (:func:`eval_episodes`).
    unknown : sequence of str
        Open set: words pooled into an extra ``_unknown_`` class of every episode; the rows then
        also hold ``auroc`` and ``detection_at_5pct_far`` (:mod:`kws_proto.eval.openset`).

    Returns
    -------
    rows : list of dict
        One per setting: ``n_way, k_shot, n_query, episodes, mean, ci95`` and ``accuracies``
        (per-episode, in episode order, for paired comparisons).
    """
    rows = []
    for s in settings:
        episodes = eval_episodes(data, classes, s, seed, unknown)
        table = table_for(episodes)
        scores = score_episodes(table, episodes)
        summary = scores.summary
        rows.append({
            "n_way": s.n_way, "k_shot": s.k_shot, "n_query": s.n_query, "episodes": s.episodes,
            "mean": summary.mean, "ci95": summary.ci95, "accuracies": scores.accuracies.tolist(),
        })
        if unknown:
            from kws_proto.eval.openset import open_set_scores  # lazy: SciPy

            o = open_set_scores(table, episodes, far=0.05)
            rows[-1].update(auroc=o.auroc, detection_at_5pct_far=o.detection)
    return rows
