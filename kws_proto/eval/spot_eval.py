"""Spotting benchmark: seeded trials of enrolment plus a constructed stream, scored on a DET curve.

    from kws_proto.eval.spot_eval import Variant, draw_trials, spot_eval
    result = spot_eval("data/fsdd", [Variant("default")], trials=20, seed=0)
    result["variants"][0]["calibrated"]    # recall and false alarms / hour at factor 1

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
window every ``hop``, nearest keyword within its threshold, ``min_db`` gate, event merging with
``min_hits`` / ``max_gap``, suppression) with every keyword's threshold scaled by a factor.  The
windows are embedded once per trial; only the decision and the merging are repeated per factor,
so the sweep is cheap and each point is exactly what ``detect`` would give with a bank whose
thresholds were scaled (``tests/test_spot_eval.py`` checks factor 1 against
``KeywordSpotter.detect``).  A cut on the events' scores of one permissive run would not be:
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
drawn once with the seed) cap the support rule at the ``quantile`` (0.05) of their distances
to the prototype, ``min(margin x mean LOO, quantile)``, the rule of ``enroll --negatives``;
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kws_proto.errors import ConfigError
from kws_proto.eval.streams import (FACTORS, GAP_SECONDS, TRIM_DB, ClipPool, Stream, Trial,
                                    build_stream, check_options, draw_trials)

FA_POINTS = (10.0, 50.0)
DEFAULTS = {"trials": 20, "keywords": 3, "shots": 5, "words": 40, "target_ratio": 0.25, "seed": 0}


# -- variants -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """A model and a decision setting scored on the trials."""

    model: str = "default"
    hop: float = 0.1
    min_hits: int = 3
    max_gap: int = 1
    min_db: float = -50.0
    negatives: int = 0
    margin: float = 1.25
    quantile: float = 0.05
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
        if (self.text or self.confusables) and (self.negatives or self.margin != 1.25):
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


def score_windows(spotter, bank, audio: np.ndarray, hop: float = 0.1,
                  batch: int = 256) -> WindowScores:
    """Embed every window of ``audio`` (as :func:`kws_proto.spot.detect.detect_audio` does) once."""
    from kws_proto.spot.decision import keyword_distances
    from kws_proto.spot.detect import frame_windows, level_db

    f = spotter.features
    hop_samples = max(1, int(round(hop * f.sample_rate)))
    windows = frame_windows(audio, f.num_samples, hop_samples)
    emb = np.concatenate([np.asarray(spotter.embed(np.ascontiguousarray(windows[i:i + batch])))
                          for i in range(0, len(windows), batch)])
    d = keyword_distances(bank, emb)
    starts = np.arange(len(windows)) * hop_samples / f.sample_rate
    return WindowScores(d, level_db(windows), starts, f.clip_seconds)


def events_at(scores: WindowScores, bank, factor: float = 1.0, min_hits: int = 3,
              max_gap: int = 1, min_db: float | None = -50.0) -> list:
    """The events ``detect`` gives with every threshold of ``bank`` times ``factor``."""
    from kws_proto.spot.detect import decide_windows, merge_events

    t = np.asarray(bank.thresholds, dtype=np.float64) * factor
    labels, ratio, dist = decide_windows(scores.distances, scores.levels, t, min_db)
    return merge_events(bank.names, scores.starts, labels, ratio, dist, scores.window,
                        min_hits, max_gap)


def score(detected, truth) -> dict:
    """Hits and false alarms of ``detected`` against ``truth``
    (:func:`kws_proto.spot.detect.match_events`)."""
    from kws_proto.spot.detect import match_events

    r = match_events(detected, truth)
    return {"hits": r["hits"], "targets": len(truth), "false_alarms": r["false_alarms"]}


# -- enrolment ------------------------------------------------------------------------------------
def enrol(spotter, trial: Trial, root, variant: Variant, cohort: np.ndarray | None = None):
    """A bank of the trial's targets: ``KeywordSpotter.enroll`` (the shipped rule) or, with
    ``variant.negatives``, the cohort rule: ``min(margin x mean LOO, quantile of the cohort's
    distances to the prototype)`` (:func:`kws_proto.spot.decision.calibrate_threshold` with
    the variant's quantile)."""
    from kws_proto.spot.decision import calibrate_threshold, clip_embeddings

    root = Path(root)
    bank = spotter.new_bank()
    for k, clips in zip(trial.keywords, trial.support):
        files = [root / p for p in clips]
        if variant.text or variant.confusables:
            from kws_proto.spot.synthetic import keyword_text

            spotter.enroll_text(bank, k, keyword_text(k), voices=variant.text,
                                clips=files if variant.real < 0 else files[:variant.real],
                                confusables=variant.confusables, seed=trial.index)
            continue
        if not variant.negatives and variant.margin == Variant().margin:
            spotter.enroll(bank, k, files)
            continue
        views = spotter.embed_views(files)
        thr, info = calibrate_threshold(views, None, margin=variant.margin)
        emb = clip_embeddings(views)
        if variant.negatives:
            proto = emb.astype(np.float64).mean(axis=0)
            nd = np.sum((np.asarray(cohort, np.float32) - proto) ** 2, axis=1)
            cap = float(np.quantile(nd, variant.quantile))
            info.update(rule=f"min({info['rule']}, {variant.quantile:g}-quantile of "
                             f"{len(nd)} cohort distances)", negative_limit=cap)
            thr = min(thr, cap)
        bank.add(bank.make_keyword(k, emb, [f.name for f in files], thr, info))
    return bank


def cohort_embeddings(spotter, cohort, n: int, seed: int) -> np.ndarray:
    """Embeddings of ``n`` clips (seeded draw) of the cohort dataset folder ``cohort``."""
    pool = ClipPool(Path(cohort))
    every = [p for k in pool.keywords for p in pool.paths[k]]
    paths = pool.take(np.random.default_rng([seed, 10**6]), every, min(n, len(every)), "the cohort")
    return np.asarray(spotter.embed_files([pool.root / p for p in paths]))


# -- the benchmark --------------------------------------------------------------------------------
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


def spot_eval(data, variants, trials: int = 20, keywords: int = 3, shots: int = 5,
              words: int = 40, target_ratio: float = 0.25, snr: float | None = None,
              seed: int = 0, factors=FACTORS, cohort=None, progress=None) -> dict:
    """Score each of ``variants`` (:class:`Variant` or ``MODEL@...`` strings) on the same trials.

    Returns
    -------
    result : dict
        ``dataset``, ``options``, ``trials`` (their specs), and ``variants``: per variant its
        ``name``, ``curve`` (DET points, one per factor), ``calibrated`` (the factor-1 point),
        ``recall_at`` ``{"10": r, "50": r}`` (FA/h), ``ci95`` (bootstrap over trials: ``recall``
        and ``fa_per_hour`` at factor 1, ``recall_at_10``, ``recall_at_50``), ``vs_first``
        (later variants: the paired difference in recall at 10 / 50 FA/h from the first, with its
        interval), ``stream_hours``, ``seconds_per_trial`` and ``per_trial`` (hits / targets /
        false alarms at factor 1).
    """
    from data_prep.adhoc import as_dataset
    from kws_proto.spot.spotter import KeywordSpotter

    check_options(trials, keywords, shots, words, target_ratio, seed, snr, factors)
    variants = [parse_variant(v) if isinstance(v, str) else v for v in variants]
    if not variants:
        raise ConfigError("no model to evaluate")
    for v in variants:
        v.check()
        if v.negatives and cohort is None:
            raise ConfigError(f"variant {v.name}: negatives={v.negatives} needs --cohort DATASET "
                              "(clips of words that are not in the stream)")
    root = as_dataset(data, progress is not None)  # a prepared dataset, or a raw keyword folder
    cohort = as_dataset(cohort, progress is not None) if cohort is not None else None
    specs = draw_trials(root, trials, keywords, shots, words, target_ratio, seed)
    factors = sorted({float(f) for f in factors} | {1.0})
    spotters: dict[str, KeywordSpotter] = {}
    cohorts: dict[tuple, np.ndarray] = {}
    streams: dict[tuple[int, int], Stream] = {}
    results = []
    for v in variants:
        if v.model not in spotters:
            spotters[v.model] = KeywordSpotter.from_model(v.model)
        sp = spotters[v.model]
        coh = None
        if v.negatives:
            key = (v.model, v.negatives)
            if key not in cohorts:
                cohorts[key] = cohort_embeddings(sp, cohort, v.negatives, seed)
            coh = cohorts[key]
        counts = {f: np.zeros(3, dtype=np.int64) for f in factors}
        by_trial = np.zeros((len(specs), len(factors), 3), dtype=np.int64)
        seconds, hours, per_trial, trial_hours = 0.0, 0.0, [], []
        for i, trial in enumerate(specs):
            t0 = time.perf_counter()
            sr = sp.features.sample_rate
            if (trial.index, sr) not in streams:
                streams[(trial.index, sr)] = build_stream(trial, root, sr, snr)
            stream = streams[(trial.index, sr)]
            bank = enrol(sp, trial, root, v, coh)
            ws = score_windows(sp, bank, stream.audio, hop=v.hop)
            for j, f in enumerate(factors):
                ev = events_at(ws, bank, f, v.min_hits, v.max_gap, v.min_db)
                s = score(ev, stream.truth)
                counts[f] += (s["hits"], s["targets"], s["false_alarms"])
                by_trial[i, j] = (s["hits"], s["targets"], s["false_alarms"])
                if f == 1.0:
                    per_trial.append({"trial": trial.index,
                                      "seconds_audio": round(stream.duration, 2), **s,
                                      "thresholds": [round(float(x), 4) for x in bank.thresholds]})
            seconds += time.perf_counter() - t0
            hours += stream.duration / 3600
            trial_hours.append(stream.duration / 3600)
            if progress:
                progress(f"{v.name}: trial {trial.index + 1}/{len(specs)} "
                         f"{per_trial[-1]['hits']}/{per_trial[-1]['targets']} hits, "
                         f"{per_trial[-1]['false_alarms']} false alarms")
        points = curve(counts, hours)
        results.append({"name": v.name, "variant": asdict(v), "curve": points,
                        "calibrated": next(p for p in points if p["factor"] == 1.0),
                        "recall_at": {f"{x:g}": recall_at(points, x) for x in FA_POINTS},
                        "stream_hours": hours, "seconds_per_trial": seconds / len(specs),
                        "per_trial": per_trial, "_by_trial": (by_trial, np.asarray(trial_hours))})
    _bootstrap(results, factors, seed)
    return {"dataset": str(root), "speaker_disjoint": specs[0].enrol_speaker is not None,
            "options": {"trials": trials, "keywords": keywords, "shots": shots, "words": words,
                        "target_ratio": target_ratio, "snr": snr, "seed": seed,
                        "factors": factors, "gap_seconds": list(GAP_SECONDS),
                        "trim_db": TRIM_DB, "cohort": str(cohort) if cohort else None},
            "trials": [t.to_dict() for t in specs], "variants": results}


BOOTSTRAP = 2000


def _bootstrap(results: list[dict], factors, seed: int, draws: int = BOOTSTRAP) -> None:
    """95% intervals over trials (resampled with replacement, the same resamples for every
    variant): of each variant's calibrated recall and FA/h and recall at ``FA_POINTS``, and of
    each later variant's difference in recall at ``FA_POINTS`` from the first (paired)."""
    n = len(results[0]["_by_trial"][1])
    idx = np.random.default_rng([seed, 7]).integers(n, size=(draws, n))  # [B, n]
    one = list(factors).index(1.0)
    at = {}
    for r in results:
        counts, hrs = r.pop("_by_trial")
        c = counts[idx].sum(axis=1).astype(np.float64)  # [B, F, 3]
        h = hrs[idx].sum(axis=1)[:, None]  # [B, 1]
        recall = c[..., 0] / np.maximum(c[..., 1], 1)  # [B, F]
        fa = c[..., 2] / h  # [B, F]
        at[r["name"]] = {f"{x:g}": np.where(fa <= x, recall, 0.0).max(axis=1) for x in FA_POINTS}
        ci = lambda a: [float(q) for q in np.quantile(a, [0.025, 0.975])]  # noqa: E731
        r["ci95"] = {"recall": ci(recall[:, one]), "fa_per_hour": ci(fa[:, one]),
                     **{f"recall_at_{k}": ci(v) for k, v in at[r["name"]].items()}}
    first = results[0]["name"]
    for r in results[1:]:
        r["vs_first"] = {k: {"diff": r["recall_at"][k] - results[0]["recall_at"][k],
                             "ci95": [float(q) for q in np.quantile(at[r["name"]][k] - at[first][k],
                                                                    [0.025, 0.975])]}
                         for k in at[first]}
