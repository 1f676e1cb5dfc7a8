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

**Normalised scores.**  With ``norm="snorm"`` or ``"ratio"`` the keyword's distances are
normalised against the ``background`` as a cohort (:mod:`kws_proto.spot.cohort`: its ``top``
nearest windows' mean and deviation, or their mean alone as the unit), and the threshold is on
that scale: the same ``level`` for every keyword (unless given, the background's own
``cohort_level`` when it was measured for that normalisation, else ``z = NORM_LEVEL``, -2:
:meth:`Background.level <kws_proto.spot.background.Background.level>`), or the rate rule, or one
by hand.  The support rule is not used there: genuine clips of other speakers lie farther from
the prototype than its nearest cohort windows, so on that scale it accepts nearly everything
(measured: experiments/spotting.md).

**The default rule** (:func:`enrolment_rule`, ``norm="auto"``).  A model that ships a background
(``background.npz`` in its folder: :func:`kws_proto.spot.background.shipped_background`; the
shipped ``default`` does) enrols a keyword into an empty bank normalised against it, by the
normalisation its level was measured for (``Background.cohort_norm``), at that level, unless a
threshold by hand, a rate or negatives are given: then, and for a model without one, the support
rule (or the rate rule) on raw distances.  A bank's keywords are compared with each other, so a
keyword added to a bank that already holds some follows them (normalised the same way or not).
``norm=None`` asks for raw distances, ``norm="snorm"`` or ``"ratio"`` for that normalisation;
either way a rate or a cohort without a background given uses the model's own.  Measured:
experiments/spotting.md, "The shipped cohort" and "The cohort's mean as the unit".

**Twins in context** (:func:`context_rule`, ``context="auto"``).  A normalised keyword cut at the
cohort level also gets a :class:`~kws_proto.spot.bank.Twin` when neighbours are at hand (the
model's own, ``neighbours.npz``: the shipped ``default`` has them; or clips given): its clips
embedded ``CONTEXT_VIEWS`` more times said between two other words
(:mod:`kws_proto.spot.context`), the mean of all their views normalised against the same cohort.
The keyword itself stays the plain one; a window is scored by the nearer of the two, the twin
cut ``CONTEXT_SHIFT`` units looser (its own views lie that much farther from it), so the
twin finds the keyword inside running speech without losing it alone.  A keyword added to a bank
follows the bank's keywords (twins or not).  Measured: experiments/spotting.md, "A twin in
context".

Measured (views, margins, streams): experiments/enrolment.md.
"""

from __future__ import annotations

import math

import numpy as np

from kws_proto.errors import ConfigError
from kws_proto.spot.bank import MAXCOS, PROTOTYPE, Keyword, Twin
from kws_proto.spot.cohort import TOP, check_norm, level_threshold
from kws_proto.spot.context import CONTEXT_VIEWS
from kws_proto.spot.decision import (NEGATIVE_QUANTILE, SUPPORT_MARGIN, calibrate_maxcos,
                                     calibrate_threshold, check_score, clip_embeddings, prototype)

ENROL_SHIFTS_MS = (-100.0, 0.0, 100.0)
AUTO = "auto"  # the default rule (module docstring)
ALIKE = 1e-4  # support clips closer than this (relative to their size) are the same clip
CONTEXT_SHIFT = 0.875  # cohort units a keyword enrolled in context is cut looser (measured)


def enrol_keyword(views: np.ndarray, name: str, clips, negatives: np.ndarray | None = None,
                  margin: float = SUPPORT_MARGIN, quantile: float = NEGATIVE_QUANTILE,
                  threshold: float | None = None, weights: np.ndarray | None = None,
                  views_ms=ENROL_SHIFTS_MS, calibration: dict | None = None,
                  fa_per_hour: float | None = None, background=None,
                  score: str = PROTOTYPE, norm: str | None = None,
                  top: int = TOP, level: float | None = None, context: int = 0,
                  twin: bool = False, shift: float = CONTEXT_SHIFT) -> Keyword:
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
        ``"snorm"`` or ``"ratio"``: normalise the keyword's distances against ``background`` as
        the cohort (its ``top`` nearest windows, in that unit; module docstring); None: raw
        distances.
    top : int
        With ``norm``: how many of the nearest background windows set the statistics.
    level : float or None
        With ``norm``: the threshold's normalised level ``z`` (None: the background's own for
        ``norm``, :meth:`~kws_proto.spot.background.Background.level`; ``CONTEXT_SHIFT`` looser
        with ``context``), unless
        ``fa_per_hour`` or ``threshold`` sets it.
    context : int
        How many of each clip's ``S`` views are views in context (the last ones;
        :mod:`kws_proto.spot.context`), recorded in the calibration.
    twin : bool
        With ``context``: the keyword is made of the plain views alone and cut at the level as
        such, and the mean of all views becomes its :class:`~kws_proto.spot.bank.Twin`,
        normalised against the same cohort and cut ``CONTEXT_SHIFT`` looser (without: one
        prototype of all views, cut ``CONTEXT_SHIFT`` looser).
    shift : float
        The cohort units (:mod:`kws_proto.spot.cohort`) a keyword in context (or its twin) is
        cut looser.

    Returns
    -------
    Keyword
        Not yet in any bank: ``bank.add(keyword)``.
    """
    if check_score(score) == MAXCOS and weights is not None:
        raise ConfigError(f"keyword {name!r}: score='maxcos' scores by each support clip, so it "
                          "takes no prototype weights")
    paired = None
    if twin:
        _check_twin(name, context, norm, score, weights, fa_per_hour, views)
        paired = clip_embeddings(views)  # [k, d]: every view, in context too
        views = views[:, :views.shape[1] - context]
    support = clip_embeddings(views)  # [k, d]
    proto = prototype(support, weights)
    cohort = _cohort(name, norm, background, proto, support, score, top, level)
    if fa_per_hour is not None:
        _check_rate_rule(fa_per_hour, background, threshold, negatives)
        threshold, info = background.threshold(proto, fa_per_hour, support=support, score=score,
                                                norm=cohort)
    elif threshold is not None:
        info = {"rule": "given by hand"}
    elif cohort is not None:
        if negatives is not None and len(negatives):
            raise ConfigError(f"keyword {name!r}: a normalised keyword's threshold is a cohort "
                              "level (or a rate, or by hand), not capped by negatives")
        z0 = level if level is not None else (
            background.level(norm) + (shift if context and not twin else 0.0))
        threshold, info = level_threshold(z0), {"rule": f"cohort level z = {z0:g}"}
    else:
        check_spread(support, name, clips)
        threshold, info = (calibrate_maxcos(views, negatives, margin, quantile)
                           if score == MAXCOS else
                           calibrate_threshold(views, negatives, margin, quantile, weights))
    info["views_ms"] = list(views_ms)
    if context:
        info["context_views"] = int(context)
    info.update(calibration or {})
    pair = None
    if paired is not None:
        centre = prototype(paired).astype(np.float32)
        pair = Twin(centre, background.norm(centre, paired, PROTOTYPE, top, norm), float(shift),
                    int(context))
    return Keyword(name, proto, support, tuple(str(c) for c in clips), float(threshold), info,
                   score, cohort, pair)


def _check_twin(name, context, norm, score, weights, fa_per_hour, views) -> None:
    """Refuse a twin without views in context, or of a rule it does not go with."""
    if not 0 < context < views.shape[1]:
        raise ConfigError(f"keyword {name!r}: a twin needs views in context (context={context} "
                          f"of {views.shape[1]} views)")
    if check_norm(norm) is None or score != PROTOTYPE or weights is not None or fa_per_hour:
        raise ConfigError(f"keyword {name!r}: a keyword enrolled in context is normalised "
                          "(norm='snorm' or 'ratio'), scored by its prototype of unweighted "
                          "clips and cut at a cohort level or by hand, not by a rate")


def enrolment_rule(norm: str | None, background, shipped, bank_norms, threshold=None,
                   fa_per_hour=None, negatives=None):
    """``(norm, background)`` an enrolment uses (module docstring, "The default rule").

    Parameters
    ----------
    norm : {"auto", "snorm", "ratio"} or None
    background, shipped : Background or None
        The one given, and the model's own.
    bank_norms : sequence of CohortNorm or None
        The normalisation of each keyword already in the bank (:attr:`KeywordBank.norms`).
    threshold, fa_per_hour, negatives
        What else was given: any of them makes ``"auto"`` the raw rule on an empty bank.
    """
    if norm == AUTO:
        if len(bank_norms):
            norm = None if bank_norms[0] is None else bank_norms[0].method
        elif (threshold is None and fa_per_hour is None and not len(negatives or ())
              and (background is not None or shipped is not None)):
            norm = (background if background is not None else shipped).norm_rule
        else:
            norm = None
    if background is None and (check_norm(norm) is not None or fa_per_hour is not None):
        background = shipped
    return norm, background


def context_rule(context, norm, bank, score=None, threshold=None, fa_per_hour=None,
                 neighbours: bool = False) -> int:
    """How many views in context an enrolment gives each clip (module docstring, "The default
    rule"): ``context`` when a number; for ``"auto"``, ``CONTEXT_VIEWS`` into an empty bank when
    the keyword is normalised, scored by its prototype, cut at the cohort level and
    ``neighbours`` are at hand, else 0; into a bank of keywords, as they are."""
    if context != AUTO:
        return context
    if len(bank):
        return CONTEXT_VIEWS if bank.twins[0] is not None else 0
    plain = (check_norm(norm) is not None and score in (None, PROTOTYPE) and threshold is None
             and fa_per_hour is None)
    return CONTEXT_VIEWS if plain and neighbours else 0


def _cohort(name, norm, background, proto, support, score, top, level):
    """The keyword's :class:`~kws_proto.spot.cohort.CohortNorm` against ``background`` when
    ``norm`` asks for one, else None (and ``level`` refused)."""
    if check_norm(norm) is None:
        if level is not None:
            raise ConfigError(f"keyword {name!r}: level={level!r} is for a normalised keyword "
                              "(norm='snorm' or 'ratio')")
        return None
    if background is None:
        raise ConfigError(f"keyword {name!r}: norm={norm!r} needs a background (keyword-free "
                          "audio embedded by `kws-proto background`) as its cohort")
    return background.norm(proto, support, score, top, norm)


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
