"""Enrolment: a keyword's support views (and negatives) in, a calibrated :class:`Keyword` out.

Every way of enrolling goes through :func:`enrol_keyword`: recorded clips
(:meth:`KeywordSpotter.enroll <kws_proto.spot.spotter.KeywordSpotter.enroll>`), text
(:mod:`kws_proto.spot.text`), the spotting benchmark's variants (:mod:`kws_proto.eval.spot_eval`)
and the experiments; they differ only in which clips they embed.

**Enrolment views.**  A sliding window rarely starts where the front end would crop a clip, so
each support clip is embedded as a sliding window would see it: cut at its crop and at
``ENROL_SHIFTS_MS`` (-100 and +100 ms, one detection hop either side) from it, the recording's own
samples where it has them, zeros beyond (:meth:`KeywordSpotter.load_view
<kws_proto.spot.spotter.KeywordSpotter.load_view>`).  The clip's support embedding is the mean of
its views; the prototype the mean of the clips' (or a weighted mean:
:func:`kws_proto.spot.decision.prototype`); the threshold the rule of
:func:`kws_proto.spot.decision.calibrate_threshold` (with ``score="maxcos"``:
:func:`~kws_proto.spot.decision.calibrate_maxcos`).

**Alike supports.**  Calibrating from the supports needs them to differ: clips whose embeddings
are all the same (one file given five times, or copies of one recording) have no spread between
clips, and a threshold from their spread would measure only the views' shifts.  Such a keyword is
refused, naming it (:func:`check_spread`); a threshold by hand or ``fa_per_hour`` does not use the
spread.

**Normalised scores.**  With ``norm="snorm"`` the keyword's distances are normalised against the
``background`` as a cohort (:mod:`kws_proto.spot.cohort`: its ``top`` nearest windows' mean and
deviation), and every threshold rule above, or a threshold by hand, is on that scale.

Measured (views, margins, streams): experiments/enrolment.md.
"""

from __future__ import annotations

import math

import numpy as np

from kws_proto.errors import ConfigError
from kws_proto.spot.bank import MAXCOS, PROTOTYPE, Keyword
from kws_proto.spot.cohort import TOP, check_norm
from kws_proto.spot.decision import (NEGATIVE_QUANTILE, SUPPORT_MARGIN, calibrate_maxcos,
                                     calibrate_threshold, check_score, clip_embeddings, prototype)

ENROL_SHIFTS_MS = (-100.0, 0.0, 100.0)
ALIKE = 1e-4  # support clips closer than this (relative to their size) are the same clip


def enrol_keyword(views: np.ndarray, name: str, clips, negatives: np.ndarray | None = None,
                  margin: float = SUPPORT_MARGIN, quantile: float = NEGATIVE_QUANTILE,
                  threshold: float | None = None, weights: np.ndarray | None = None,
                  views_ms=ENROL_SHIFTS_MS, calibration: dict | None = None,
                  fa_per_hour: float | None = None, background=None,
                  score: str = PROTOTYPE, norm: str | None = None,
                  top: int = TOP) -> Keyword:
    """Keyword ``name`` from the embeddings of its support clips' views.

    Parameters
    ----------
    views : np.ndarray [shape=(k, S, d)]
        Each support clip's ``S`` views embedded (``views_ms`` apart).
    name : str
    clips : sequence of str [len k]
        The support clips' names, stored with the keyword.
    negatives : np.ndarray [shape=(m, d)] or None
        Embeddings of clips that are not the keyword; they cap the threshold.
    margin, quantile : float
        The threshold rule's (:func:`~kws_proto.spot.decision.calibrate_threshold`).
    threshold : float or None
        Given by hand instead of calibrated.
    weights : np.ndarray [shape=(k,)] or None
        Per-clip weights of the prototype (None: the plain mean); the threshold is calibrated
        against the prototype they give.
    views_ms : sequence of float
        The views' shifts, recorded in the calibration.
    calibration : dict or None
        More entries for the keyword's calibration record (after the rule's).
    fa_per_hour : float or None
        Instead of the support rule: the threshold at which the keyword fires at most this many
        times an hour on ``background`` (:func:`kws_proto.spot.background.threshold_for_rate`).
    background : Background or None
        Keyword-free audio's windows, embedded by the same encoder; needed with ``fa_per_hour``
        and with ``norm``.
    score : str
        The scoring rule, ``"prototype"`` or ``"maxcos"`` (:mod:`kws_proto.spot.decision`);
        every threshold rule above is applied with its distance (``maxcos`` takes no weights).
    norm : str or None
        ``"snorm"``: normalise the keyword's distances against ``background`` as the cohort (its
        ``top`` nearest windows; module docstring); None: raw distances.
    top : int
        With ``norm``: how many of the nearest background windows set the statistics.

    Returns
    -------
    Keyword
        Not yet in any bank: ``bank.add(keyword)``.
    """
    if check_score(score) == MAXCOS and weights is not None:
        raise ConfigError(f"keyword {name!r}: score='maxcos' scores by each support clip, so it "
                          "takes no prototype weights")
    support = clip_embeddings(views)  # [k, d]
    proto = prototype(support, weights)
    cohort = None
    if check_norm(norm) is not None:
        if background is None:
            raise ConfigError(f"keyword {name!r}: norm={norm!r} needs a background (keyword-free "
                              "audio embedded by `kws-proto background`) as its cohort")
        cohort = background.norm(proto, support, score, top)
    if fa_per_hour is not None:
        _check_rate_rule(fa_per_hour, background, threshold, negatives)
        threshold, info = background.threshold(proto, fa_per_hour, support=support, score=score,
                                                norm=cohort)
    elif threshold is None:
        check_spread(support, name, clips)
        threshold, info = (calibrate_maxcos(views, negatives, margin, quantile, cohort)
                           if score == MAXCOS else
                           calibrate_threshold(views, negatives, margin, quantile, weights,
                                               cohort))
    else:
        info = {"rule": "given by hand"}
    info["views_ms"] = list(views_ms)
    info.update(calibration or {})
    return Keyword(name, proto, support, tuple(str(c) for c in clips), float(threshold), info,
                   score, cohort)


def check_spread(support: np.ndarray, name: str, clips) -> None:
    """Refuse keyword ``name`` when its support embeddings ``[k, d]`` are all alike (every clip
    within ``ALIKE`` of the first, relative to its length): no spread to calibrate from."""
    s = np.asarray(support, np.float64)
    if len(s) < 2:
        return
    spread = float(np.linalg.norm(s - s[0], axis=1).max())
    if spread <= ALIKE * max(float(np.linalg.norm(s[0])), 1e-12):
        names = ", ".join(dict.fromkeys(str(c) for c in clips))
        raise ConfigError(f"keyword {name!r}: its {len(s)} support clips ({names}) are all alike "
                          "(the same recording?), so their spread cannot set a threshold; give "
                          "different recordings of the keyword, or set the threshold by hand "
                          "(--threshold) or from a background (--fa-per-hour)")


def _check_rate_rule(fa_per_hour, background, threshold, negatives) -> None:
    """Refuse a rate that is not positive, ``fa_per_hour`` without a background, or beside
    another threshold rule."""
    if not (isinstance(fa_per_hour, (int, float)) and math.isfinite(fa_per_hour)
            and fa_per_hour > 0):
        raise ConfigError(f"fa_per_hour={fa_per_hour!r} must be a positive number of false "
                          "alarms per hour")
    if background is None:
        raise ConfigError(f"fa_per_hour={fa_per_hour!r} needs a background (keyword-free audio "
                          "embedded by `kws-proto background`)")
    if threshold is not None or (negatives is not None and len(negatives)):
        raise ConfigError(f"fa_per_hour={fa_per_hour!r} sets the threshold from the background: "
                          "give it without a threshold by hand and without negatives")
