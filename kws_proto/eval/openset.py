"""Open-set scoring: does a query belong to one of the episode's keywords at all?

Episodes drawn with ``unknown_classes`` (:class:`~kws_proto.data.episodes.EpisodeSampler`) end with
the pooled class ``_unknown_``.  Its support is ignored; prototypes are made of the keyword
classes only, and every query gets a *keyword score* ``-min_c d(query, prototype_c)``.  Pooled
over all episodes, keyword queries are positives and unknown-word queries negatives:

- AUROC of the keyword score (rank statistic, ties counted half);
- detection rate at a fixed false-acceptance rate (FAR, default 5%, as in Rusci & Tuytelaars
  2023): the threshold accepts that share of unknown queries, and a keyword query counts as
  detected when it is accepted *and* its nearest prototype is the right keyword.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws_proto.model.scoring import prototype_distances


@dataclass(frozen=True)
class OpenSetScores:
    auroc: float
    detection: float  # at ``far``
    far: float
    threshold: float


def keyword_scores(table: np.ndarray, episodes):
    """Keyword scores and correctness of every query, pooled over open-set episodes.

    Parameters
    ----------
    table : np.ndarray [shape=(n_clips, dim)]
        Embeddings by manifest row (:func:`kws_proto.eval.evaluate.embedding_table`).
    episodes : list of Episode
        Each with ``classes[-1] == "_unknown_"``.

    Returns
    -------
    scores : np.ndarray [shape=(n,)]
    is_keyword : np.ndarray of bool [shape=(n,)]
    correct : np.ndarray of bool [shape=(n,)]
        Nearest prototype is the query's own keyword (False for unknown queries).
    """
    scores, is_kw, correct = [], [], []
    for e in episodes:
        d, label = prototype_distances(table, e, known_only=True)  # [n_queries, n_known]
        scores.append(-d.min(axis=1))
        is_kw.append(label < e.n_way - 1)
        correct.append(d.argmin(axis=1) == label)
    return np.concatenate(scores), np.concatenate(is_kw), np.concatenate(correct)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties half."""
    from scipy.stats import rankdata  # lazy: SciPy

    pos = np.asarray(positive, bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        raise ValueError("AUROC needs both positive and negative queries")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def open_set_scores(table: np.ndarray, episodes, far: float = 0.05) -> OpenSetScores:
    """AUROC and detection rate at false-acceptance rate ``far`` over open-set episodes."""
    s, kw, ok = keyword_scores(table, episodes)
    threshold = float(np.quantile(s[~kw], 1.0 - far))  # accepts a share ``far`` of unknowns
    detection = float(np.mean((s[kw] > threshold) & ok[kw]))
    return OpenSetScores(auroc(s, kw), detection, far, threshold)
