"""Spotting benchmark: seeded trials of enrolment plus a constructed stream, scored on a DET curve.

    from kws_proto.eval.spot_eval import Variant, spot_eval
    result = spot_eval("data/fsdd", [Variant("default")], trials=20, seed=0)
    result.variants[0].calibrated          # recall and false alarms / hour at factor 1

**A trial** (:func:`draw_trials`, :class:`Trial`), drawn from ``numpy.random.default_rng([seed,
index])`` alone, so trial ``i`` is the same whatever ``--trials`` says and whatever model scores
it:

- ``K`` target keywords (``--keywords``, 3) of the dataset's keywords, each enrolled from ``S``
  clips (``--shots``, 5).  With speaker ids in the manifest (FSDD) every support clip is one
  speaker's (the enrolling user) and the stream is spoken by the *other* speakers; without (the
  Picovoice folders) the support files and the stream files are disjoint.  With
  ``support_speakers="several"`` (``--support-speakers several``: corpora where a speaker says
  each word once, like the built-in one) ``S`` speakers drawn per trial enrol every keyword with
  one clip each, and the stream is spoken by none of them.
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
checks factor 1 against ``KeywordSpotter.detect``).  A cut on the events' scores of one
permissive run would not be: ``min_hits`` windows, gap bridging and the suppression between
keywords all depend on the threshold.  :func:`kws_proto.spot.detect.match_events` scores each factor: a detection hits a true
target of its keyword that it overlaps (each target at most once); every other detection is a
false alarm, counted per hour of stream audio.  Factor 1 (each keyword's own calibrated
threshold) is the operating point; "recall at X FA/h" is the best recall among the swept factors
with at most X false alarms per hour of stream.
At factor 1 each false alarm is also put on the stream word its span overlaps longest (or a
gap: :func:`kws_proto.eval.streams.false_alarm_words`): ``VariantResult.false_alarm_words``
tallies them by keyword detected and word said, which tells a keyword firing on other words
from one firing twice on its own target or on another keyword's.

**Variants** (:class:`~kws_proto.eval.spot_variants.Variant`, ``MODEL@key=value,...`` on the
command line): the model, the
detector's ``hop`` / ``min_hits`` / ``max_gap`` / ``min_db``, and the threshold rule: the
support rule (``KeywordSpotter.enroll`` with ``norm=None``; ``margin`` changes its 1.25) or, with ``negatives=N``,
the cohort rule: ``N`` clips of a cohort dataset (``--cohort``: words never in the stream,
drawn once with the seed) are the negatives of :func:`kws_proto.spot.enrolment.enrol_keyword`,
capping the support rule at the ``quantile`` (0.05) of their distances to the prototype,
``min(margin x mean LOO, quantile)``, the rule of ``enroll --negatives``;
``margin=inf`` leaves the cohort quantile alone.  ``score=maxcos`` scores each window by its
cosine distance to the nearest support embedding instead of the distance to the prototype (the
frozen-embedding peers' rule; :mod:`kws_proto.spot.decision`), its threshold calibrated by the
same rule with that distance, swept by the same factors.  ``norm=snorm,bg=FILE`` (or
``norm=ratio``: in units of the cohort's mean) normalises each
keyword's distances against the background ``FILE`` (``kws-proto background`` of the variant's
model; ``bg=shipped``: the background the model ships, which the default enrolment of
``KeywordSpotter.enroll`` uses) as its cohort (:mod:`kws_proto.spot.cohort`; ``top=N``: its
nearest windows, 500), every
keyword's threshold the same normalised level: the background's own for that normalisation
(the shipped one: ``z = -3.5`` with ``norm=ratio``), else ``z = -2`` (``level=Z``: another), so
the factor sweep moves one common ``z`` cut (a factor of 2 is one unit: a cohort deviation, or
``RATIO_UNIT`` of its mean); ``tnorm=N`` adds the
window side of s-norm, each window's distance also normalised by its own ``N`` nearest background
windows, the two ``z`` averaged (:func:`kws_proto.spot.cohort.normalise`); ``context=K`` (with
``--cohort``) adds ``K`` views of each support clip said between the ends of two cohort clips
(:func:`kws_proto.spot.context.context_views`), as a keyword sits in running speech, and
cuts it ``CONTEXT_SHIFT`` looser (:func:`kws_proto.spot.enrolment.enrol_keyword`); with it,
``twin=1`` keeps the plain keyword at its level and makes the views' mean its twin in context
(:class:`kws_proto.spot.bank.Twin`: the nearer of the two scores, the twin cut ``CONTEXT_SHIFT``
looser; ``shift=S``: another), as the default enrolment does; without ``--cohort`` the neighbours are the ones the model
ships (``neighbours.npz``).  ``text=N`` adds the
keyword's name (digits spelt) said by ``N`` built-in voices to the support
(``KeywordSpotter.enroll_text``), ``real=K`` keeps only the first ``K`` recorded clips (0: text
alone), ``confusables=N`` caps the threshold with ``N`` synthesised words one phoneme away (:mod:`kws_proto.spot.confusables`).
Measured in ``experiments/spotting.md``.

**Factors** (:data:`kws_proto.eval.streams.FACTORS`): 2**-5 to 2**3 in steps of 2**(1/8), 65
points including 1.  **Intervals** (``ci95``, ``vs_first``; :mod:`kws_proto.eval.spot_results`):
95% bootstrap over trials (``BOOTSTRAP`` resamples, seeded), the same resamples for every variant,
so differences between variants are paired.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from data_prep.adhoc import as_dataset
from kws_proto.errors import ConfigError
from kws_proto.eval.embedded import Embedded, WindowScores, embed_recordings
from kws_proto.eval.streams import (FACTORS, GAP_SECONDS, KEYWORDS, SEED, SHOTS, TARGET_RATIO,
                                    TRIALS, TRIM_DB, WORDS, ClipPool, Stream, Trial, build_stream,
                                    check_options, draw_trials, false_alarm_words)
from kws_proto.eval.spot_results import SpotEvalResult, TrialResult, VariantResult, bootstrap
from kws_proto.eval.spot_variants import SHIPPED_BG, Variant, parse_variants
from kws_proto.spot.background import Background, load_background
from kws_proto.spot.detect import (MAX_GAP, MIN_DB, MIN_HITS, decide_windows, match_events,
                                   merge_events)
from kws_proto.spot.context import NEIGHBOUR_SALT, NEIGHBOURS
from kws_proto.spot.enrolment import CONTEXT_SHIFT, enrol_keyword
from kws_proto.spot.spotter import KeywordSpotter
from kws_proto.spot.synthetic import keyword_text
from kws_proto.spot.windows import HOP, WINDOW_BATCH


# -- detection over thresholds --------------------------------------------------------------------
def score_windows(spotter, bank, audio: np.ndarray, hop: float = HOP,
                  batch: int = WINDOW_BATCH, window_cohort: tuple | None = None) -> WindowScores:
    """Embed every window of ``audio`` (as :func:`kws_proto.spot.detect.detect_audio` does) once
    and score it against ``bank`` (:meth:`kws_proto.eval.embedded.Embedded.scores`)."""
    return embed_recordings(spotter, [audio], hop, batch).scores(bank, window_cohort)[0]


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
def enrol(spotter, trial: Trial, root, variant: Variant, cohort: np.ndarray | None = None,
          background: Background | None = None, context: np.ndarray | None = None):
    """A bank of the trial's targets: ``KeywordSpotter.enroll_text`` for text and confusables
    variants, else :func:`kws_proto.spot.enrolment.enrol_keyword` (``KeywordSpotter.enroll``'s
    rule) with the variant's margin and, with ``variant.negatives``, the ``cohort`` embeddings
    as negatives capping it at the variant's quantile; with ``variant.norm``, normalised against
    ``background`` (at ``variant.level`` when given); with ``variant.context``, each support
    clip's views joined by that many of
    :func:`~kws_proto.spot.context.context_views` with neighbours from ``context``
    (cohort waves)."""
    root = Path(root)
    bank = spotter.new_bank()
    for k, clips in zip(trial.keywords, trial.support):
        files = [root / p for p in clips]
        if variant.text or variant.confusables:
            spotter.enroll_text(bank, k, keyword_text(k), voices=variant.text,
                                clips=files if variant.real < 0 else files[:variant.real],
                                confusables=variant.confusables, seed=trial.index)
            continue
        views = spotter.embed_support(spotter.load_views(files), variant.context, context,
                                      trial.index)
        bank.add(enrol_keyword(views, k, [f.name for f in files],
                               cohort if variant.negatives else None, margin=variant.margin,
                               quantile=variant.quantile, score=variant.score,
                               norm=variant.norm or None, background=background, top=variant.top,
                               level=variant.level, context=variant.context,
                               twin=bool(variant.twin),
                               shift=CONTEXT_SHIFT if variant.shift is None else variant.shift))
    return bank


def cohort_embeddings(spotter, cohort, n: int, seed: int) -> np.ndarray:
    """Embeddings of ``n`` clips (seeded draw) of the cohort dataset folder ``cohort``."""
    pool = ClipPool(Path(cohort))
    every = [p for k in pool.keywords for p in pool.paths[k]]
    paths = pool.take(np.random.default_rng([seed, 10**6]), every, min(n, len(every)), "the cohort")
    return np.asarray(spotter.embed_files([pool.root / p for p in paths]))


# -- the benchmark --------------------------------------------------------------------------------
class SharedModels:
    """What a benchmark's variants share: one spotter per model, and the cohort embeddings of
    each model and negatives count (``cohort``: a dataset folder, drawn with ``seed``)."""

    def __init__(self, cohort, seed: int):
        self.cohort, self.seed = cohort, seed
        self._spotters, self._cohorts, self._backgrounds, self._contexts = {}, {}, {}, {}

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

    def context_of(self, v: Variant) -> np.ndarray | None:
        """The clips placed around the support clips of a ``context`` variant (else None): 1 s
        clips of :data:`~kws_proto.spot.context.NEIGHBOURS` cohort files (a seeded draw, once
        per model), or without a cohort the ones the model ships."""
        if not v.context:
            return None
        if v.model not in self._contexts and self.cohort is None:
            shipped = self.spotter(v.model).shipped_neighbours
            if shipped is None:
                raise ConfigError(f"variant {v.name}: context={v.context} needs --cohort DATASET "
                                  f"(the words placed around each support clip): {v.model} ships "
                                  "no neighbours")
            self._contexts[v.model] = shipped
        if v.model not in self._contexts:
            pool = ClipPool(Path(self.cohort))
            every = [p for k in pool.keywords for p in pool.paths[k]]
            paths = pool.take(np.random.default_rng([self.seed, NEIGHBOUR_SALT]), every,
                              min(NEIGHBOURS, len(every)), "the context clips")
            self._contexts[v.model] = self.spotter(v.model).load_clips([pool.root / p for p in paths])
        return self._contexts[v.model]

    def window_cohort(self, v: Variant) -> tuple | None:
        """``(background embeddings, v.tnorm)``, the window side of s-norm
        (:meth:`kws_proto.eval.embedded.Embedded.distances`), with ``v.tnorm``; else None."""
        return (self.background_of(v).embeddings, v.tnorm) if v.tnorm else None

    def background_of(self, v: Variant) -> Background | None:
        """The cohort background of a ``norm`` variant (its ``bg`` file, loaded once and checked
        against the variant's encoder), else None."""
        if not v.norm:
            return None
        sp = self.spotter(v.model)
        if v.bg == SHIPPED_BG:
            if sp.shipped_background is None:
                raise ConfigError(f"variant {v.name}: {v.model} ships no background "
                                  "(background.npz in its folder); give bg=FILE")
            return sp.shipped_background
        if v.bg not in self._backgrounds:
            self._backgrounds[v.bg] = load_background(v.bg)
        bg = self._backgrounds[v.bg]
        bg.check(sp.fingerprint, sp.features.digest)
        return bg


class _Bench(SharedModels):
    """The trials and what variants share: spotters per model, cohort embeddings, streams."""

    def __init__(self, root, specs: list[Trial], factors: list[float], snr, cohort, seed: int):
        super().__init__(cohort, seed)
        self.root, self.specs, self.factors, self.snr = root, specs, factors, snr
        self._streams, self._embedded = {}, {}

    def stream(self, trial: Trial, sr: int) -> Stream:
        if (trial.index, sr) not in self._streams:
            self._streams[(trial.index, sr)] = build_stream(trial, self.root, sr, self.snr)
        return self._streams[(trial.index, sr)]

    def embedded(self, trial: Trial, v: Variant) -> Embedded:
        """``trial``'s stream embedded by ``v``'s model at its hop, once for all such variants."""
        key = (trial.index, v.model, v.hop)
        if key not in self._embedded:
            sp = self.spotter(v.model)
            audio = self.stream(trial, sp.features.sample_rate).audio
            self._embedded[key] = embed_recordings(sp, [audio], v.hop)
        return self._embedded[key]


def run_trial(bench: _Bench, v: Variant, trial: Trial) -> TrialResult:
    """Enrol ``trial``'s targets as ``v`` says, embed its stream once, count at every factor."""
    sp = bench.spotter(v.model)
    stream = bench.stream(trial, sp.features.sample_rate)
    bank = enrol(sp, trial, bench.root, v, bench.cohort_of(v), bench.background_of(v),
                 bench.context_of(v))
    ws = bench.embedded(trial, v).scores(bank, bench.window_cohort(v))[0]
    counts = np.zeros((len(bench.factors), 3), dtype=np.int64)
    fell_on = None
    for j, f in enumerate(bench.factors):
        m = match_events(events_at(ws, bank, f, v.min_hits, v.max_gap, v.min_db), stream.truth)
        counts[j] = (m["hits"], len(stream.truth), m["false_alarms"])
        if f == 1.0:
            fell_on = false_alarm_words(m["false"], [(a, b, w.keyword, w.target)
                                                     for a, b, w in stream.spans])
    return TrialResult(trial.index, stream.duration, counts,
                       [round(float(x), 4) for x in bank.thresholds], fell_on)


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


def spot_eval(data, variants, trials: int = TRIALS, keywords: int = KEYWORDS, shots: int = SHOTS,
              words: int = WORDS, target_ratio: float = TARGET_RATIO, snr: float | None = None,
              seed: int = SEED, factors=FACTORS, cohort=None, progress=None,
              support_speakers: str = "one") -> SpotEvalResult:
    """Score each of ``variants`` (:class:`Variant` or ``MODEL@...`` strings) on the same trials.

    Returns
    -------
    SpotEvalResult
        ``dataset``, ``speaker_disjoint``, ``options``, ``trials`` (their specs) and
        ``variants``: one :class:`VariantResult` each, with its bootstrap intervals.
    """
    check_options(trials, keywords, shots, words, target_ratio, seed, snr, factors)
    variants = parse_variants(variants, cohort)
    root = as_dataset(data, progress is not None)  # a prepared dataset, or a raw keyword folder
    cohort = as_dataset(cohort, progress is not None) if cohort is not None else None
    specs = draw_trials(root, trials, keywords, shots, words, target_ratio, seed, support_speakers)
    factors = sorted({float(f) for f in factors} | {1.0})
    bench = _Bench(root, specs, factors, snr, cohort, seed)
    results = [run_variant(bench, v, progress) for v in variants]
    bootstrap(results, seed)
    return SpotEvalResult(
        str(root), specs[0].enrol_speaker is not None,
        {"trials": trials, "keywords": keywords, "shots": shots, "words": words,
         "target_ratio": target_ratio, "snr": snr, "seed": seed, "factors": factors,
         "gap_seconds": list(GAP_SECONDS), "trim_db": TRIM_DB,
         "cohort": str(cohort) if cohort else None, "support_speakers": support_speakers},
        [t.to_dict() for t in specs], results)
