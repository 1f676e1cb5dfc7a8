"""Spotting benchmark: seeded trials of enrolment plus a constructed stream, scored on a DET curve.

    from kws_proto.eval.spot_eval import Variant, draw_trials, spot_eval
    result = spot_eval("data/fsdd", [Variant("default")], trials=20, seed=0)
    result.variants[0].calibrated          # recall and false alarms / hour at factor 1

**A trial** (:func:`draw_trials`, :class:`Trial`), drawn from ``numpy.random.default_rng([seed,
index])`` alone, so trial ``i`` is the same whatever ``--trials`` says and whatever model scores
it:

- ``K`` target keywords (``--keywords``, 3) of the dataset's keywords, each enrolled from ``S``
  clips (``--shots``, 5).  With speaker ids in the manifest (FSDD) every support clip is one
  speaker's (the enrolling user) and the stream is spoken by the *other* speakers; without (the
  Picovoice folders) the support files and the stream files are disjoint.
- A stream of ``--words`` (40) words: ``round(target_ratio * words)`` targets (``--target-ratio``
  0.25: one in four), spread evenly over the targets, the rest clips of the non-target keywords
  of the same dataset, in random order, no file twice, separated by gaps drawn uniformly from
  ``GAP_SECONDS`` (0.3-1.5 s, also before the first and after the last word).
- Each word is its file trimmed to its speech (``librosa.effects.trim``, ``TRIM_DB`` = 30 dB
  under its peak) at its recorded level; its true span in the stream is that trimmed segment.
- With ``--snr DB`` the stream is mixed with noise whose RMS is the words' RMS (over the word
  samples) minus ``DB``: a recording of the dataset's ``_background_noise_/`` (a random one at a
  random offset, looped), else pink noise (:func:`data_prep.noise.colored_noise`).  Without it
  the gaps are digital silence (which the detector's ``min_db`` gate ignores).

**Detection and scoring.**  Detection is :func:`kws_proto.spot.detect.detect_audio`'s rule (1 s
window every ``hop``: :mod:`kws_proto.spot.windows`; nearest keyword within its threshold,
``min_db`` gate, event merging with ``min_hits`` / ``max_gap``, suppression) with every
keyword's threshold scaled by a factor.  The windows are embedded once per trial; only the
decision and the merging are repeated per factor, so the sweep is cheap and each point is exactly
what ``detect`` would give with a bank whose thresholds were scaled (``tests/test_spot_eval.py``
checks factor 1 against ``KeywordSpotter.detect``).  A cut on the events' scores of one permissive run would not be:
``min_hits`` windows, gap bridging and the suppression between keywords all depend on the
threshold.  :func:`kws_proto.spot.detect.match_events` scores each factor: a detection hits a true
target of its keyword that it overlaps (each target at most once); every other detection is a
false alarm, counted per hour of stream audio.  Factor 1 (each keyword's own calibrated
threshold) is the operating point; "recall at X FA/h" is the best recall among the swept factors
with at most X false alarms per hour of stream.

**Variants** (:class:`Variant`, ``MODEL@key=value,...`` on the command line): the model, the
detector's ``hop`` / ``min_hits`` / ``max_gap`` / ``min_db``, and the threshold rule: the
shipped one (``KeywordSpotter.enroll``; ``margin`` changes its 1.25) or, with ``negatives=N``,
the cohort rule: ``N`` clips of a cohort dataset (``--cohort``: words never in the stream,
drawn once with the seed) are the negatives of :func:`kws_proto.spot.enrolment.enrol_keyword`,
capping the support rule at the ``quantile`` (0.05) of their distances to the prototype,
``min(margin x mean LOO, quantile)``, the rule of ``enroll --negatives``;
``margin=inf`` leaves the cohort quantile alone.  ``text=N`` adds the keyword's name (digits
spelt) said by ``N`` built-in voices to the support (``KeywordSpotter.enroll_text``), ``real=K``
keeps only the first ``K`` recorded clips (0: text alone), ``confusables=N`` caps the
threshold with ``N`` synthesised words one phoneme away (:mod:`kws_proto.spot.confusables`).
Measured in ``experiments/spotting.md``.

**Factors** (``FACTORS``): 2**-5 to 2**3 in steps of 2**(1/8), 65 points including 1.  **Intervals**
(``ci95``, ``vs_first``): 95% bootstrap over trials (``BOOTSTRAP`` resamples, seeded), the same
resamples for every variant, so differences between variants are paired.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from data_prep.adhoc import as_dataset
from kws_proto.errors import ConfigError
from kws_proto.eval.streams import (FACTORS, GAP_SECONDS, KEYWORDS, SEED, SHOTS, TARGET_RATIO,
                                    TRIALS, TRIM_DB, WORDS, ClipPool, Stream, Trial, build_stream,
                                    check_options, draw_trials)
from kws_proto.spot.decision import NEGATIVE_QUANTILE, SUPPORT_MARGIN, keyword_distances
from kws_proto.spot.detect import (MAX_GAP, MIN_DB, MIN_HITS, decide_windows, level_db,
                                   match_events, merge_events)
from kws_proto.spot.enrolment import enrol_keyword
from kws_proto.spot.spotter import KeywordSpotter
from kws_proto.spot.synthetic import keyword_text
from kws_proto.spot.windows import HOP, WINDOW_BATCH, Framing

FA_POINTS = (10.0, 50.0)
BOOTSTRAP = 2000


# -- variants -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """A model and a decision setting scored on the trials."""

    model: str = "default"
    hop: float = HOP
    min_hits: int = MIN_HITS
    max_gap: int = MAX_GAP
    min_db: float = MIN_DB
    negatives: int = 0
    margin: float = SUPPORT_MARGIN
    quantile: float = NEGATIVE_QUANTILE
    text: int = 0
    real: int = -1
    confusables: int = 0
    label: str = ""

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        base = Variant(self.model)
        extra = [f"{k}={getattr(self, k):g}" for k in ("hop", "min_hits", "max_gap", "min_db",
                                                       "negatives", "margin", "quantile", "text",
                                                       "real", "confusables")
                 if getattr(self, k) != getattr(base, k)]
        return self.model + (f"@{','.join(extra)}" if extra else "")

    def check(self) -> None:
        if not self.hop > 0:
            raise ConfigError(f"variant {self.name}: hop={self.hop} must be > 0 seconds")
        if self.min_hits < 1:
            raise ConfigError(f"variant {self.name}: min_hits={self.min_hits} must be >= 1")
        if self.max_gap < 0:
            raise ConfigError(f"variant {self.name}: max_gap={self.max_gap} must be >= 0")
        if self.negatives < 0:
            raise ConfigError(f"variant {self.name}: negatives={self.negatives} must be >= 0")
        if not self.margin > 0:
            raise ConfigError(f"variant {self.name}: margin={self.margin} must be > 0")
        if not 0 < self.quantile < 1:
            raise ConfigError(f"variant {self.name}: quantile={self.quantile} must be in (0, 1)")
        if self.text < 0 or self.confusables < 0:
            raise ConfigError(f"variant {self.name}: text={self.text} and confusables="
                              f"{self.confusables} must be >= 0")
        if self.real < -1 or (self.real >= 0 and not self.text):
            raise ConfigError(f"variant {self.name}: real={self.real} (recorded clips kept; -1: "
                              "all) must be >= 0, and is for text=N variants")
        if (self.text or self.confusables) and (self.negatives or self.margin != SUPPORT_MARGIN):
            raise ConfigError(f"variant {self.name}: text and confusables enrol with the shipped "
                              "rule and do not combine with negatives or margin")
        if math.isnan(self.min_db):
            raise ConfigError(f"variant {self.name}: min_db must be a number")


_VARIANT_TYPES = {"hop": float, "min_hits": int, "max_gap": int, "min_db": float,
                  "negatives": int, "margin": float, "quantile": float, "text": int, "real": int,
                  "confusables": int, "label": str}


def parse_variant(spec: str) -> Variant:
    """``MODEL`` or ``MODEL@key=value,...`` (keys: hop, min_hits, max_gap, min_db, negatives,
    margin, quantile, text, real, confusables, label) as a :class:`Variant`."""
    model, _, rest = str(spec).partition("@")
    if not model:
        raise ConfigError(f"variant {spec!r}: no model before '@' (a run directory or default)")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in _VARIANT_TYPES:
            raise ConfigError(f"variant {spec!r}: {item!r} is not key=value with a key of "
                              f"{', '.join(_VARIANT_TYPES)}")
        try:
            kwargs[key] = _VARIANT_TYPES[key](value)
        except ValueError:
            kind = "an integer" if _VARIANT_TYPES[key] is int else "a number"
            raise ConfigError(f"variant {spec!r}: {key}={value!r} is not {kind}") from None
    v = Variant(model, **kwargs)
    v.check()
    return v


# -- detection over thresholds --------------------------------------------------------------------
@dataclass
class WindowScores:
    """A stream's windows scored once: distances to every keyword and levels."""

    distances: np.ndarray  # [n_windows, n_kw]
    levels: np.ndarray  # [n_windows] dBFS
    starts: np.ndarray  # [n_windows] seconds
    window: float  # seconds


def score_windows(spotter, bank, audio: np.ndarray, hop: float = HOP,
                  batch: int = WINDOW_BATCH) -> WindowScores:
    """Embed every window of ``audio`` (as :func:`kws_proto.spot.detect.detect_audio` does) once."""
    f = spotter.features
    framing = Framing.of(f, hop)
    windows = framing.frame(audio)
    emb = np.concatenate([np.asarray(spotter.embed(np.ascontiguousarray(windows[i:i + batch])))
                          for i in range(0, len(windows), batch)])
    d = keyword_distances(bank, emb)
    return WindowScores(d, level_db(windows), framing.starts(len(windows)), f.clip_seconds)


def events_at(scores: WindowScores, bank, factor: float = 1.0, min_hits: int = MIN_HITS,
              max_gap: int = MAX_GAP, min_db: float | None = MIN_DB) -> list:
    """The events ``detect`` gives with every threshold of ``bank`` times ``factor``."""
    t = np.asarray(bank.thresholds, dtype=np.float64) * factor
    labels, ratio, dist = decide_windows(scores.distances, scores.levels, t, min_db)
    return merge_events(bank.names, scores.starts, labels, ratio, dist, scores.window,
                        min_hits, max_gap)


def score(detected, truth) -> dict:
    """Hits and false alarms of ``detected`` against ``truth``
    (:func:`kws_proto.spot.detect.match_events`)."""
    r = match_events(detected, truth)
    return {"hits": r["hits"], "targets": len(truth), "false_alarms": r["false_alarms"]}


# -- enrolment ------------------------------------------------------------------------------------
def enrol(spotter, trial: Trial, root, variant: Variant, cohort: np.ndarray | None = None):
    """A bank of the trial's targets: ``KeywordSpotter.enroll_text`` for text and confusables
    variants, else :func:`kws_proto.spot.enrolment.enrol_keyword` (``KeywordSpotter.enroll``'s
    rule) with the variant's margin and, with ``variant.negatives``, the ``cohort`` embeddings
    as negatives capping it at the variant's quantile."""
    root = Path(root)
    bank = spotter.new_bank()
    for k, clips in zip(trial.keywords, trial.support):
        files = [root / p for p in clips]
        if variant.text or variant.confusables:
            spotter.enroll_text(bank, k, keyword_text(k), voices=variant.text,
                                clips=files if variant.real < 0 else files[:variant.real],
                                confusables=variant.confusables, seed=trial.index)
            continue
        bank.add(enrol_keyword(spotter.embed_views(files), k, [f.name for f in files],
                               cohort if variant.negatives else None, margin=variant.margin,
                               quantile=variant.quantile))
    return bank


def cohort_embeddings(spotter, cohort, n: int, seed: int) -> np.ndarray:
    """Embeddings of ``n`` clips (seeded draw) of the cohort dataset folder ``cohort``."""
    pool = ClipPool(Path(cohort))
    every = [p for k in pool.keywords for p in pool.paths[k]]
    paths = pool.take(np.random.default_rng([seed, 10**6]), every, min(n, len(every)), "the cohort")
    return np.asarray(spotter.embed_files([pool.root / p for p in paths]))


# -- results --------------------------------------------------------------------------------------
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
    interval; ``trials``: per trial its counts at every factor.
    """

    name: str
    variant: Variant
    factors: list[float]
    trials: list[TrialResult]
    seconds_per_trial: float
    ci95: dict = field(default_factory=dict)
    vs_first: dict | None = None

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
        return {f"{x:g}": recall_at(points, x) for x in FA_POINTS}

    @property
    def per_trial(self) -> list[dict]:
        """Per trial at factor 1: ``trial``, ``seconds_audio``, ``hits``, ``targets``,
        ``false_alarms``, ``thresholds``."""
        one = self.factors.index(1.0)
        return [{"trial": t.trial, "seconds_audio": round(t.seconds_audio, 2), **t.at(one),
                 "thresholds": t.thresholds} for t in self.trials]

    def to_dict(self) -> dict:
        d = {"name": self.name, "variant": asdict(self.variant), "curve": self.curve,
             "calibrated": self.calibrated, "recall_at": self.recall_at,
             "stream_hours": self.stream_hours, "seconds_per_trial": self.seconds_per_trial,
             "per_trial": self.per_trial, "ci95": self.ci95}
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

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "speaker_disjoint": self.speaker_disjoint,
                "options": self.options, "trials": self.trials,
                "variants": [v.to_dict() for v in self.variants]}


# -- the benchmark --------------------------------------------------------------------------------
class _Bench:
    """The trials and what variants share: spotters per model, cohort embeddings, streams."""

    def __init__(self, root, specs: list[Trial], factors: list[float], snr, cohort, seed: int):
        self.root, self.specs, self.factors, self.snr = root, specs, factors, snr
        self.cohort, self.seed = cohort, seed
        self._spotters, self._cohorts, self._streams = {}, {}, {}

    def spotter(self, model: str) -> KeywordSpotter:
        if model not in self._spotters:
            self._spotters[model] = KeywordSpotter.from_model(model)
        return self._spotters[model]

    def cohort_of(self, v: Variant) -> np.ndarray | None:
        if not v.negatives:
            return None
        key = (v.model, v.negatives)
        if key not in self._cohorts:
            self._cohorts[key] = cohort_embeddings(self.spotter(v.model), self.cohort,
                                                   v.negatives, self.seed)
        return self._cohorts[key]

    def stream(self, trial: Trial, sr: int) -> Stream:
        if (trial.index, sr) not in self._streams:
            self._streams[(trial.index, sr)] = build_stream(trial, self.root, sr, self.snr)
        return self._streams[(trial.index, sr)]


def run_trial(bench: _Bench, v: Variant, trial: Trial) -> TrialResult:
    """Enrol ``trial``'s targets as ``v`` says, embed its stream once, count at every factor."""
    sp = bench.spotter(v.model)
    stream = bench.stream(trial, sp.features.sample_rate)
    bank = enrol(sp, trial, bench.root, v, bench.cohort_of(v))
    ws = score_windows(sp, bank, stream.audio, hop=v.hop)
    counts = np.zeros((len(bench.factors), 3), dtype=np.int64)
    for j, f in enumerate(bench.factors):
        s = score(events_at(ws, bank, f, v.min_hits, v.max_gap, v.min_db), stream.truth)
        counts[j] = (s["hits"], s["targets"], s["false_alarms"])
    return TrialResult(trial.index, stream.duration, counts,
                       [round(float(x), 4) for x in bank.thresholds])


def run_variant(bench: _Bench, v: Variant, progress=None) -> VariantResult:
    """``v`` scored on every trial of ``bench``."""
    done, seconds, one = [], 0.0, bench.factors.index(1.0)
    for trial in bench.specs:
        t0 = time.perf_counter()
        done.append(run_trial(bench, v, trial))
        seconds += time.perf_counter() - t0
        if progress:
            s = done[-1].at(one)
            progress(f"{v.name}: trial {trial.index + 1}/{len(bench.specs)} "
                     f"{s['hits']}/{s['targets']} hits, {s['false_alarms']} false alarms")
    return VariantResult(v.name, v, bench.factors, done, seconds / len(bench.specs))


def _variants(variants, cohort) -> list[Variant]:
    """``variants`` (:class:`Variant` or ``MODEL@...`` strings) parsed and checked."""
    variants = [parse_variant(v) if isinstance(v, str) else v for v in variants]
    if not variants:
        raise ConfigError("no model to evaluate")
    for v in variants:
        v.check()
        if v.negatives and cohort is None:
            raise ConfigError(f"variant {v.name}: negatives={v.negatives} needs --cohort DATASET "
                              "(clips of words that are not in the stream)")
    return variants


def spot_eval(data, variants, trials: int = TRIALS, keywords: int = KEYWORDS, shots: int = SHOTS,
              words: int = WORDS, target_ratio: float = TARGET_RATIO, snr: float | None = None,
              seed: int = SEED, factors=FACTORS, cohort=None, progress=None) -> SpotEvalResult:
    """Score each of ``variants`` (:class:`Variant` or ``MODEL@...`` strings) on the same trials.

    Returns
    -------
    SpotEvalResult
        ``dataset``, ``speaker_disjoint``, ``options``, ``trials`` (their specs) and
        ``variants``: one :class:`VariantResult` each, with its bootstrap intervals.
    """
    check_options(trials, keywords, shots, words, target_ratio, seed, snr, factors)
    variants = _variants(variants, cohort)
    root = as_dataset(data, progress is not None)  # a prepared dataset, or a raw keyword folder
    cohort = as_dataset(cohort, progress is not None) if cohort is not None else None
    specs = draw_trials(root, trials, keywords, shots, words, target_ratio, seed)
    factors = sorted({float(f) for f in factors} | {1.0})
    bench = _Bench(root, specs, factors, snr, cohort, seed)
    results = [run_variant(bench, v, progress) for v in variants]
    bootstrap(results, seed)
    return SpotEvalResult(
        str(root), specs[0].enrol_speaker is not None,
        {"trials": trials, "keywords": keywords, "shots": shots, "words": words,
         "target_ratio": target_ratio, "snr": snr, "seed": seed, "factors": factors,
         "gap_seconds": list(GAP_SECONDS), "trim_db": TRIM_DB,
         "cohort": str(cohort) if cohort else None},
        [t.to_dict() for t in specs], results)


def bootstrap(results: list[VariantResult], seed: int, draws: int = BOOTSTRAP) -> None:
    """Set each result's ``ci95`` and (later variants) ``vs_first``: 95% intervals over trials
    (resampled with replacement, the same resamples for every variant) of each variant's
    calibrated recall and FA/h and recall at ``FA_POINTS``, and of each later variant's
    difference in recall at ``FA_POINTS`` from the first (paired)."""
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
        at[r.name] = {f"{x:g}": np.where(fa <= x, recall, 0.0).max(axis=1) for x in FA_POINTS}
        r.ci95 = {"recall": _ci(recall[:, one]), "fa_per_hour": _ci(fa[:, one]),
                  **{f"recall_at_{k}": _ci(v) for k, v in at[r.name].items()}}
    first = results[0]
    for r in results[1:]:
        r.vs_first = {k: {"diff": r.recall_at[k] - first.recall_at[k],
                          "ci95": _ci(at[r.name][k] - at[first.name][k])} for k in at[first.name]}


def _ci(a: np.ndarray) -> list[float]:
    return [float(q) for q in np.quantile(a, [0.025, 0.975])]
