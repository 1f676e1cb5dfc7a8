"""Results of the spotting benchmark (:func:`kws_proto.eval.spot_eval.spot_eval`): per trial the
counts at every threshold factor, per variant the DET curve and its bootstrap intervals."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from kws_proto.eval.spot_variants import Variant

FA_POINTS = (10.0, 50.0)
BOOTSTRAP = 2000


def curve(counts: dict[float, np.ndarray], hours: float) -> list[dict]:
    """DET points from ``{factor: [hits, targets, false alarms]}`` summed over trials."""
    out = []
    for f in sorted(counts):
        hits, targets, fa = (int(x) for x in counts[f])
        out.append({"factor": f, "hits": hits, "targets": targets, "false_alarms": fa,
                    "recall": hits / targets if targets else float("nan"),
                    "fa_per_hour": fa / hours if hours else float("nan")})
    return out


def recall_at(points: list[dict], fa_per_hour: float) -> float:
    """Best recall among points with at most ``fa_per_hour`` false alarms per hour (0 if none)."""
    ok = [p["recall"] for p in points if p["fa_per_hour"] <= fa_per_hour]
    return max(ok) if ok else 0.0


@dataclass
class TrialResult:
    """One trial of one variant: its counts at every factor, and its thresholds."""

    trial: int
    seconds_audio: float
    counts: np.ndarray  # [n_factors, 3] hits, targets, false alarms
    thresholds: list[float]
    #: At factor 1, what each false alarm fell on (``streams.false_alarm_words``); None: not
    #: recorded (a result read back by ``from_dict``)
    false_words: list | None = None

    def at(self, j: int) -> dict:
        """``hits``, ``targets``, ``false_alarms`` at factor index ``j``."""
        return dict(zip(("hits", "targets", "false_alarms"), (int(x) for x in self.counts[j])))


@dataclass
class VariantResult:
    """One variant scored on every trial.

    ``curve``: DET points (``factor``, ``hits``, ``targets``, ``false_alarms``, ``recall``,
    ``fa_per_hour``), one per factor; ``calibrated``: the factor-1 point; ``recall_at``
    ``{"10": r, "50": r}`` (FA/h); ``ci95``: bootstrap intervals over trials (``recall`` and
    ``fa_per_hour`` at factor 1, ``recall_at_10``, ``recall_at_50``); ``vs_first`` (later
    variants): the paired difference in recall at 10 / 50 FA/h from the first, with its
    interval; ``trials``: per trial its counts at every factor (in ``to_dict``: ``trial_counts``
    ``[n_trials, n_factors, 3]`` in the order of ``factors``, and ``trial_seconds``, so that two
    runs on the same trials can be compared paired afterwards: :func:`from_dict`).
    """

    name: str
    variant: Variant
    factors: list[float]
    trials: list[TrialResult]
    seconds_per_trial: float
    ci95: dict = field(default_factory=dict)
    vs_first: dict | None = None
    fa_points: tuple[float, ...] = FA_POINTS
    background: dict | None = None  # false alarms on keyword-free speech (sentence benchmark)

    @property
    def stream_hours(self) -> float:
        return sum(t.seconds_audio / 3600 for t in self.trials)

    @property
    def counts(self) -> np.ndarray:
        """``[n_trials, n_factors, 3]`` hits, targets, false alarms."""
        return np.stack([t.counts for t in self.trials])

    @property
    def curve(self) -> list[dict]:
        return curve(dict(zip(self.factors, self.counts.sum(axis=0))), self.stream_hours)

    @property
    def calibrated(self) -> dict:
        return next(p for p in self.curve if p["factor"] == 1.0)

    @property
    def recall_at(self) -> dict[str, float]:
        points = self.curve
        return {f"{x:g}": recall_at(points, x) for x in self.fa_points}

    @property
    def per_trial(self) -> list[dict]:
        """Per trial at factor 1: ``trial``, ``seconds_audio``, ``hits``, ``targets``,
        ``false_alarms``, ``thresholds``."""
        one = self.factors.index(1.0)
        return [{"trial": t.trial, "seconds_audio": round(t.seconds_audio, 2), **t.at(one),
                 "thresholds": t.thresholds} for t in self.trials]

    @property
    def false_alarm_words(self) -> list[dict] | None:
        """At factor 1, the false alarms of every trial by ``keyword`` detected and word
        ``said`` under it (``said_is_target``: a target of the trial, another keyword's or a
        second detection of its own), most frequent first (then by name); None when a trial did
        not record them."""
        if any(t.false_words is None for t in self.trials):
            return None
        tally = Counter(tuple(w) for t in self.trials for w in t.false_words)
        return [{"keyword": k, "said": said, "said_is_target": target, "false_alarms": n}
                for (k, said, target), n in sorted(tally.items(), key=lambda x: (-x[1], x[0]))]

    def to_dict(self) -> dict:
        d = {"name": self.name, "variant": asdict(self.variant), "curve": self.curve,
             "calibrated": self.calibrated, "recall_at": self.recall_at,
             "stream_hours": self.stream_hours, "seconds_per_trial": self.seconds_per_trial,
             "per_trial": self.per_trial, "factors": list(self.factors),
             "trial_counts": self.counts.tolist(),
             "trial_seconds": [t.seconds_audio for t in self.trials], "ci95": self.ci95}
        if self.background is not None:
            d["background"] = self.background
        if self.false_alarm_words is not None:
            d["false_alarm_words"] = self.false_alarm_words
        return d if self.vs_first is None else {**d, "vs_first": self.vs_first}


@dataclass
class SpotEvalResult:
    """:func:`spot_eval`'s result: the dataset, the options, the trials' specs and one
    :class:`VariantResult` per variant."""

    dataset: str
    speaker_disjoint: bool
    options: dict
    trials: list[dict]
    variants: list[VariantResult]
    extra: dict = field(default_factory=dict)  # benchmark-specific facts (sentence benchmark)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "speaker_disjoint": self.speaker_disjoint,
                "options": self.options, "trials": self.trials, **self.extra,
                "variants": [v.to_dict() for v in self.variants]}


def bootstrap(results: list[VariantResult], seed: int, draws: int = BOOTSTRAP) -> None:
    """Set each result's ``ci95`` and (later variants) ``vs_first``: 95% intervals over trials
    (resampled with replacement, the same resamples for every variant) of each variant's
    calibrated recall and FA/h and recall at its ``fa_points`` (``FA_POINTS`` unless set), and
    of each later variant's difference in recall at them from the first (paired)."""
    n = len(results[0].trials)
    idx = np.random.default_rng([seed, 7]).integers(n, size=(draws, n))  # [B, n]
    at = {}
    for r in results:
        one = r.factors.index(1.0)
        hrs = np.asarray([t.seconds_audio / 3600 for t in r.trials])  # [n]
        c = r.counts[idx].sum(axis=1).astype(np.float64)  # [B, F, 3]
        h = hrs[idx].sum(axis=1)[:, None]  # [B, 1]
        recall = c[..., 0] / np.maximum(c[..., 1], 1)  # [B, F]
        fa = c[..., 2] / h  # [B, F]
        at[r.name] = {f"{x:g}": np.where(fa <= x, recall, 0.0).max(axis=1)
                      for x in r.fa_points}
        r.ci95 = {"recall": _ci(recall[:, one]), "fa_per_hour": _ci(fa[:, one]),
                  **{f"recall_at_{k}": _ci(v) for k, v in at[r.name].items()}}
    first = results[0]
    for r in results[1:]:
        r.vs_first = {k: {"diff": r.recall_at[k] - first.recall_at[k],
                          "ci95": _ci(at[r.name][k] - at[first.name][k])} for k in at[first.name]}


def _ci(a: np.ndarray) -> list[float]:
    return [float(q) for q in np.quantile(a, [0.025, 0.975])]


def from_dict(d: dict, name: str | None = None) -> VariantResult:
    """A variant of a stored result (``VariantResult.to_dict``, with its ``trial_counts``) back as
    a :class:`VariantResult` (named ``name``) whose ``bootstrap`` beside another run's on the
    same trials gives paired intervals; a result stored without its counts is a ``ValueError``."""
    if not {"trial_counts", "trial_seconds", "factors"} <= set(d):
        raise ValueError(f"{d.get('name')}: stored without its trials' counts (trial_counts); "
                         "run spot-eval --json again")
    counts = np.asarray(d["trial_counts"], np.int64)
    trials = [TrialResult(t["trial"], float(sec), c, t["thresholds"])
              for t, sec, c in zip(d["per_trial"], d["trial_seconds"], counts)]
    return VariantResult(name or d["name"], Variant(**d["variant"]), list(d["factors"]), trials,
                         d["seconds_per_trial"])

