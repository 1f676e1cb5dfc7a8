"""The decision rule of keyword spotting: distances to keyword prototypes, the nearest keyword
within its threshold, and the threshold calibrated from a keyword's own support clips.

**Decision rule.**  ``d_k`` is the squared Euclidean distance (summed over dimensions) from a
clip's embedding to keyword ``k``'s prototype.  A clip is keyword ``k`` when ``k`` is the nearest
keyword among those within their own threshold (``d_k <= t_k``); "unknown" when no keyword is.

**Scoring rules** (``Keyword.score``, one per bank): ``"prototype"`` (the above, the default) or
``"maxcos"``: ``d_k = 1 - max_j cos(e, s_kj)``, the cosine distance to the nearest of the
keyword's support embeddings ``s_kj`` (how the frozen speech-embedding peers score,
:func:`nearest_cosine_distances`).  Either way ``d_k`` is a distance: the decision, the
threshold (larger accepts more) and the detector's merging are the same.

A support clip is embedded in several views (:mod:`kws_proto.spot.enrolment`); its support
embedding is the mean of its views, the prototype the mean of the clips' (:func:`prototype`; text
enrolment weighs its recorded and synthesised clips: :mod:`kws_proto.spot.text`).

**Threshold rule** (:func:`calibrate_threshold`), per keyword, from its own ``k >= 2`` support
clips: the leave-one-out distances ``l_i`` = mean over clip ``i``'s views of ``d(view, prototype
of the other k - 1 clips)`` are distances of genuine clips to a prototype that has not seen them;
``t = SUPPORT_MARGIN * mean_i l_i`` (1.25 x the typical distance of a genuine clip).  With a
weighted prototype, the prototype of the other clips is their weighted mean (their weights
renormalised), so each clip is measured against the prototype that is stored, minus itself.  With
negative clips (``--negatives``), their distances ``n_j`` to the full prototype cap it:
``t = min(1.25 * mean_i l_i, NEGATIVE_QUANTILE-quantile of n_j)``, so at most that share (5%) of
the given negatives is accepted.  ``--threshold`` sets it by hand.  With ``maxcos`` the same rule
holds with its distance (:func:`calibrate_maxcos`): ``l_i`` = mean over clip ``i``'s views of the
cosine distance to the nearest *other* support clip, ``n_j`` = a negative's to the nearest support.

**Normalised distances** (``Keyword.norm``, :mod:`kws_proto.spot.cohort`): a keyword enrolled
against a cohort has its distance, and its threshold, on the normalised scale
``2 ** ((d - mu_k) / sigma_k)``, so the decision and the nearest keyword run unchanged on it (its
threshold rules: :mod:`kws_proto.spot.enrolment`).

How the margin and the views were chosen: experiments/enrolment.md.
"""

from __future__ import annotations

import numpy as np

from kws_proto.errors import BankError, ConfigError
from kws_proto.spot.bank import MAXCOS, PROTOTYPE, SCORES, KeywordBank
from kws_proto.spot.cohort import CohortNorm, normalise
from kws_proto.util.vectors import l2_normalize, squared_distances

SUPPORT_MARGIN = 1.25
NEGATIVE_QUANTILE = 0.05


def keyword_distances(bank: KeywordBank, embeddings: np.ndarray,
                      window: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Distances of embeddings ``[n, d]`` to every keyword by the bank's scoring rule (squared
    distances to the prototypes, or ``maxcos``'s cosine distances to the nearest support), each
    keyword's normalised when it has cohort statistics (and the windows' side too with
    ``window``, :func:`kws_proto.spot.cohort.window_stats` of ``embeddings``), a keyword with a
    twin in context (:class:`~kws_proto.spot.bank.Twin`) scored by the smaller of its own and
    the twin's ``2 ** (z - shift)``: ``[n, n_kw]`` float64 (numpy, so that classifying needs no
    TensorFlow)."""
    if not len(bank):
        raise BankError("the keyword bank is empty: enrol a keyword first")
    e = np.asarray(embeddings, dtype=np.float32)
    if bank.score == MAXCOS:
        d = np.stack([nearest_cosine_distances(e, k.support) for k in bank.keywords], axis=1)
    else:
        d = squared_distances(e, bank.prototypes)
    scores = normalise(d, bank.norms, window)
    twins = [(j, t) for j, t in enumerate(bank.twins) if t is not None]
    if not twins:
        return scores
    if window is not None:
        raise BankError("the window side of s-norm does not score keywords enrolled in context")
    near = squared_distances(e, np.stack([t.prototype for _, t in twins]))  # [n, n_twin]
    for i, (j, t) in enumerate(twins):  # the nearer of the keyword and its twin, cut looser
        scores[:, j] = np.minimum(scores[:, j], t.norm.apply(near[:, i]) * 2.0 ** -t.shift)
    return scores


def check_score(score: str) -> str:
    """``score`` if it is a scoring rule of :data:`SCORES`, else a :class:`ConfigError`."""
    if score not in SCORES:
        raise ConfigError(f"score={score!r}: the scoring rule is one of {', '.join(SCORES)}")
    return score


def nearest_cosine_distances(embeddings: np.ndarray, support: np.ndarray) -> np.ndarray:
    """``1 - max_j cos(e_i, s_j)``: each embedding's cosine distance to the nearest of the
    ``support [k, d]`` embeddings, ``[n]`` float64 in ``[0, 2]`` (a zero vector is at 1)."""
    a = l2_normalize(np.asarray(embeddings, np.float64))  # [n, d]
    b = l2_normalize(np.asarray(support, np.float64))  # [k, d]
    return np.clip(1.0 - (a @ b.T).max(axis=1), 0.0, 2.0)


def distances_to(embeddings: np.ndarray, prototype_: np.ndarray, support: np.ndarray,
                 score: str = PROTOTYPE, norm: CohortNorm | None = None) -> np.ndarray:
    """One keyword's distances ``[n]`` (float64) of ``embeddings [n, d]`` by rule ``score``:
    squared distance to ``prototype_ [d]``, or (``maxcos``) cosine distance to the nearest row
    of ``support [k, d]``; normalised by ``norm`` when given."""
    e = np.asarray(embeddings, np.float32)
    if check_score(score) == MAXCOS:
        if support is None:
            raise ConfigError(f"score={score!r} needs the keyword's support embeddings")
        d = nearest_cosine_distances(e, support)
    else:
        d = squared_distances(e, np.asarray(prototype_, np.float32)[None, :])[:, 0]
    return d if norm is None else norm.apply(d)


def decide(distances: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Keyword index of each row (nearest keyword within its threshold), ``-1`` for unknown.

    Parameters
    ----------
    distances : np.ndarray [shape=(n, n_kw)]
    thresholds : np.ndarray [shape=(n_kw,)]

    Returns
    -------
    labels : np.ndarray [shape=(n,), dtype=int64]
    """
    masked = np.where(distances <= thresholds[None, :], distances, np.inf)  # [n, n_kw]
    labels = masked.argmin(axis=1)
    return np.where(np.isfinite(masked.min(axis=1)), labels, -1)


def _views(support: np.ndarray) -> np.ndarray:
    """Support ``[k, S, d]`` (or ``[k, d]``, one view each) as ``[k, S, d]`` float32."""
    v = np.asarray(support, dtype=np.float32)
    v = v[:, None, :] if v.ndim == 2 else v
    if v.ndim != 3:
        raise ConfigError(f"support of shape {v.shape}: expected [clips, views, dim] or "
                          "[clips, dim]")
    return v


def clip_embeddings(views: np.ndarray) -> np.ndarray:
    """Each support clip's embedding, the mean of its views: ``[k, d]`` float32 for
    ``views [k, S, d]`` (or ``[k, d]``, one view each)."""
    return _views(views).mean(axis=1)


def prototype(support: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """A keyword's prototype from its support embeddings ``[k, d]``: their mean (float32
    arithmetic, as banks have always stored it), or with per-clip ``weights [k]`` (>= 0) their
    weighted mean (float64, then float32).  ``[d]`` float32."""
    support = np.asarray(support, dtype=np.float32)
    if weights is None:
        return support.mean(axis=0).astype(np.float32)
    w = _weights(weights, len(support))
    return ((w[:, None] * support.astype(np.float64)).sum(axis=0) / w.sum()).astype(np.float32)


def _weights(weights, k: int) -> np.ndarray:
    """``weights`` as ``[k]`` float64, checked: finite, >= 0, not all zero."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (k,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ConfigError(f"prototype weights {w.tolist()}: expected {k} finite weights >= 0, "
                          "not all zero")
    return w


def calibrate_threshold(support: np.ndarray, negatives: np.ndarray | None = None,
                        margin: float = SUPPORT_MARGIN, quantile: float = NEGATIVE_QUANTILE,
                        weights: np.ndarray | None = None) -> tuple[float, dict]:
    """A keyword's rejection threshold from its support embeddings (module docstring: the rule).

    Parameters
    ----------
    support : np.ndarray [shape=(k, S, d) or (k, d)], k >= 2
        Embeddings of each support clip's ``S`` views (one view when 2-D).
    negatives : np.ndarray [shape=(m, d)] or None
        Embeddings of clips that are not the keyword.
    margin : float > 0
        The multiple of the mean leave-one-out distance (``SUPPORT_MARGIN``).
    quantile : float in (0, 1)
        The share of the negatives a threshold they cap may accept (``NEGATIVE_QUANTILE``).
    weights : np.ndarray [shape=(k,)] or None
        Per-clip weights of the prototype (:func:`prototype`); None: every clip the same.  The
        leave-one-out prototype of clip ``i`` is the weighted mean of the others, and the
        negatives are measured against the weighted prototype.

    Returns
    -------
    threshold : float
    calibration : dict
        ``rule``, ``loo`` (the leave-one-out distances), ``support_limit`` and, with negatives,
        ``negatives``, ``negative_limit`` and ``negatives_accepted`` (fraction at the threshold).
    """
    views = _views(support).astype(np.float64)  # [k, S, d]
    k = len(views)
    if k < 2:
        raise ConfigError(f"{k} support clip(s): calibrating a threshold needs at least 2 "
                          "(or give the threshold by hand)")
    w = np.ones(k) if weights is None else _weights(weights, k)  # [k]
    if np.any(w.sum() - w <= 1e-12 * w.sum()):
        raise ConfigError(f"prototype weights {w.tolist()}: one clip carries all the weight, so "
                          "leaving it out leaves no prototype (give the threshold by hand)")
    clips = views.mean(axis=1).astype(np.float32).astype(np.float64)  # [k, d], as in the bank
    total = (w[:, None] * clips).sum(axis=0, keepdims=True)  # [1, d]
    loo_protos = (total - w[:, None] * clips) / (w.sum() - w)[:, None]  # [k, d]: without clip i
    loo = np.mean(np.sum((views - loo_protos[:, None, :]) ** 2, axis=2), axis=1)  # [k]
    nd = None
    if negatives is not None and len(negatives):
        proto = (total / w.sum()).astype(np.float32)  # [1, d]
        nd = squared_distances(np.asarray(negatives, dtype=np.float32), proto)[:, 0]  # [m]
    return _limit(loo, margin, nd, quantile, "leave-one-out distance")


def calibrate_maxcos(support: np.ndarray, negatives: np.ndarray | None = None,
                     margin: float = SUPPORT_MARGIN,
                     quantile: float = NEGATIVE_QUANTILE) -> tuple[float, dict]:
    """:func:`calibrate_threshold`'s rule with the ``maxcos`` distance: ``l_i`` = mean over clip
    ``i``'s views of their cosine distance to the nearest other clip's embedding (the mean of
    its views, as the bank stores it); a negative's distance is to the nearest clip.

    Parameters and returns as :func:`calibrate_threshold` (no weights: every support clip is a
    reference of its own).
    """
    views = _views(support)  # [k, S, d]
    k = len(views)
    if k < 2:
        raise ConfigError(f"{k} support clip(s): calibrating a threshold needs at least 2 "
                          "(or give the threshold by hand)")
    clips = clip_embeddings(views)  # [k, d]
    loo = np.array([nearest_cosine_distances(views[i], np.delete(clips, i, axis=0)).mean()
                    for i in range(k)])  # [k]
    nd = (nearest_cosine_distances(negatives, clips)
          if negatives is not None and len(negatives) else None)
    return _limit(loo, margin, nd, quantile, "leave-one-out max-cosine distance")


def _limit(loo: np.ndarray, margin: float, negative_distances: np.ndarray | None,
           quantile: float, what: str) -> tuple[float, dict]:
    """``margin x mean(loo)``, capped by the ``quantile`` of ``negative_distances [m]`` when
    given; the calibration record of :func:`calibrate_threshold`."""
    support_limit = margin * float(loo.mean())
    info = {"rule": f"{margin:g} x mean {what}",
            "loo": [round(float(x), 6) for x in loo], "support_limit": support_limit}
    threshold = support_limit
    if negative_distances is not None:
        nd = negative_distances
        negative_limit = float(np.quantile(nd, quantile))
        threshold = min(support_limit, negative_limit)
        info.update(rule=f"min({info['rule']}, {quantile:g}-quantile of the negatives' "
                         "distances)", negatives=int(len(nd)), negative_limit=negative_limit,
                    negatives_accepted=float(np.mean(nd <= threshold)))
    return float(threshold), info
