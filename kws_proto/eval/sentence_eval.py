"""Spotting benchmark on running speech: keywords enrolled from clips of other speakers, detected
in read sentences, scored against the sentences' word timings.

    from kws_proto.eval.sentence_eval import sentence_eval
    result = sentence_eval("../shared/data/speechocean762", ["default", "gse"], trials=20)
    result.variants[0].calibrated          # recall and false alarms / hour at factor 1

The corpus, the candidate words and the trials: :mod:`kws_proto.eval.sentences`.  Every target
is enrolled as the clip benchmark enrols (:func:`kws_proto.eval.spot_eval.enrol`, so the
variants ``MODEL@key=value,...`` mean the same) and detected in every scored sentence, one
utterance at a time (``detect``'s windows, decisions and event merging on each utterance's
audio; nothing bridges two utterances).  The windows of all sentences are embedded once per
model and hop and shared by the trials; each trial computes its distances and, per threshold
factor, the events (:func:`kws_proto.eval.spot_eval.events_at`).

Scoring (:func:`kws_proto.eval.sentences.score_utterances`): a detection overlapping an aligned
occurrence of its keyword is a hit (each occurrence once), every other detection a false alarm;
recall = hits / occurrences, FA/h per hour of sentence audio (all scored sentences, each trial).
The curve, the calibrated point (factor 1), recall at ``FA_POINTS`` false alarms per hour and the
bootstrap intervals are :mod:`kws_proto.eval.spot_results`'.

**Background false alarms** at factor 1: per enrolled keyword, its detections that overlap no
occurrence of it, per hour of the sentences outside its aligned spans (``per_keyword``; the
pooled rate is their sum over the pooled keyword-free hours), and with ``background`` folders
every detection of the trial's bank in their audio files (no keyword is assumed there) per hour
of that audio.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from data_prep.adhoc import as_dataset
from kws_proto.audio.loading import read_audio
from kws_proto.errors import AudioError, ConfigError
from kws_proto.eval.sentences import (BACKGROUND_FILES, MIN_LETTERS, SentenceCorpus,
                                      SentenceTrial, audio_files, builtin_words, candidate_words,
                                      clip_speaker, draw_sentence_trials, free_seconds,
                                      load_sentences, score_utterances, training_words)
from kws_proto.eval.embedded import Embedded, embed_recordings
from kws_proto.eval.spot_eval import SharedModels, enrol
from kws_proto.eval.spot_results import SpotEvalResult, TrialResult, VariantResult, bootstrap
from kws_proto.eval.spot_variants import Variant, parse_variants
from kws_proto.eval.streams import (FACTORS, KEYWORDS, SEED, SHOTS, TRIALS, check_options,
                                    false_alarm_words)
from kws_proto.spot.detect import decide_windows, merge_events

FA_POINTS = (10.0, 30.0, 100.0)


def background_files(folder, n: int, seed: int) -> list[Path]:
    """Up to ``n`` audio files under ``folder`` (recursively; a seeded draw, sorted)."""
    files = audio_files(folder)
    if not files:
        raise ConfigError(f"--background {folder}: no audio files (.wav, .flac, .ogg) there")
    pick = np.random.default_rng([seed, 11]).permutation(len(files))[:n]
    return [files[i] for i in sorted(pick)]


class _SentenceBench(SharedModels):
    """What the variants share: the corpus, the trials, spotters, cohorts and embedded windows."""

    def __init__(self, corpus: SentenceCorpus, specs, factors, cohort, background, seed):
        super().__init__(cohort, seed)
        self.corpus, self.specs, self.factors, self.background = corpus, specs, factors, background
        self._windows, self.unreadable = {}, []

    def windows(self, v: Variant, what: str = "sentences") -> Embedded:
        """The embedded windows of the sentences (or of background folder ``what``)."""
        key = (v.model, v.hop, what)
        if key not in self._windows:
            sp = self.spotter(v.model)
            sr = sp.features.sample_rate
            if what == "sentences":
                audios = [read_audio(u.path, sr) for u in self.corpus.utterances]
            else:
                audios = self._readable(self.background[what], sr)
            self._windows[key] = embed_recordings(sp, audios, v.hop)
        return self._windows[key]

    def _readable(self, files: list[Path], sr: int) -> list[np.ndarray]:
        out = []
        for f in files:
            try:
                out.append(read_audio(f, sr))
            except AudioError as e:
                if str(f) not in {u["file"] for u in self.unreadable}:
                    self.unreadable.append({"file": str(f), "why": str(e)})
        return out


# -- one trial ------------------------------------------------------------------------------------
def events_per_recording(win: Embedded, d: np.ndarray, bank, factor: float, v: Variant) -> list:
    """Per recording of ``win``, the events ``detect`` gives on it with every threshold of
    ``bank`` times ``factor`` (:func:`kws_proto.eval.spot_eval.events_at` on each recording's
    windows; the decisions are row by row, so they are taken for all windows at once)."""
    t = np.asarray(bank.thresholds, dtype=np.float64) * factor
    labels, ratio, dist = decide_windows(d, win.levels, t, v.min_db)
    out = []
    for a, b in win.bounds:
        if not np.any(labels[a:b] >= 0):
            out.append([])  # no hit window: no event
            continue
        out.append(merge_events(bank.names, win.starts[a:b], labels[a:b], ratio[a:b],
                                dist[a:b], win.window, v.min_hits, v.max_gap))
    return out


def run_sentence_trial(bench: _SentenceBench, v: Variant, trial: SentenceTrial):
    """Enrol ``trial``'s targets as ``v`` says and count at every factor on the sentences;
    returns the :class:`TrialResult` and the trial's background counts at factor 1."""
    sp = bench.spotter(v.model)
    bank = enrol(sp, trial, bench.corpus.root, v, bench.cohort_of(v), bench.background_of(v),
                 bench.context_of(v))
    win = bench.windows(v)
    d = win.distances(bank, bench.window_cohort(v))
    truth = [u.truth(set(trial.keywords)) for u in bench.corpus.utterances]
    counts = np.zeros((len(bench.factors), 3), dtype=np.int64)
    fell_on = None
    for j, f in enumerate(bench.factors):
        s = score_utterances(events_per_recording(win, d, bank, f, v), truth)
        counts[j] = (s["hits"], s["targets"], s["false_alarms"])
        if f == 1.0:
            fell_on = [w for u, false in zip(bench.corpus.utterances, s["false"])
                       for w in false_alarm_words(false, [(a, b, word, word in trial.keywords)
                                                          for word, a, b in u.words])]
            per_kw = [{"trial": trial.index, "keyword": k, "false_alarms": s["background"].get(k, 0),
                       "seconds": round(free_seconds(bench.corpus.utterances, k), 3)}
                      for k in trial.keywords]
    folders = {}
    for name in bench.background:
        bg = bench.windows(v, name)
        dets = events_per_recording(bg, bg.distances(bank, bench.window_cohort(v)), bank, 1.0, v)
        folders[name] = {"false_alarms": sum(len(e) for e in dets), "seconds": bg.seconds}
    result = TrialResult(trial.index, bench.corpus.seconds, counts,
                         [round(float(x), 4) for x in bank.thresholds], fell_on)
    return result, {"per_keyword": per_kw, "folders": folders}


def background_summary(trials: list[dict]) -> dict:
    """Pooled background rates at factor 1 from each trial's counts."""
    per_kw = [k for t in trials for k in t["per_keyword"]]
    hours = sum(k["seconds"] for k in per_kw) / 3600
    fa = sum(k["false_alarms"] for k in per_kw)
    out = {"per_keyword_fa_per_hour": fa / hours if hours else float("nan"),
           "per_keyword_false_alarms": fa, "per_keyword_hours": hours,
           "per_keyword": [{**k, "fa_per_hour": k["false_alarms"] / (k["seconds"] / 3600)}
                           for k in per_kw],
           "folders": {}}
    for name in trials[0]["folders"]:
        fa = sum(t["folders"][name]["false_alarms"] for t in trials)
        h = sum(t["folders"][name]["seconds"] for t in trials) / 3600
        out["folders"][name] = {"false_alarms": fa, "hours": h,
                                "fa_per_hour": fa / h if h else float("nan")}
    return out


def run_sentence_variant(bench: _SentenceBench, v: Variant, progress=None) -> VariantResult:
    """``v`` scored on every trial of ``bench``, with its background rates."""
    done, bg, seconds, one = [], [], 0.0, bench.factors.index(1.0)
    for trial in bench.specs:
        t0 = time.perf_counter()
        r, b = run_sentence_trial(bench, v, trial)
        done.append(r)
        bg.append(b)
        seconds += time.perf_counter() - t0
        if progress:
            s = r.at(one)
            progress(f"{v.name}: trial {trial.index + 1}/{len(bench.specs)} "
                     f"{'/'.join(trial.keywords)}: {s['hits']}/{s['targets']} hits, "
                     f"{s['false_alarms']} false alarms")
    return VariantResult(v.name, v, bench.factors, done, seconds / len(bench.specs),
                         fa_points=FA_POINTS, background=background_summary(bg))


# -- the benchmark --------------------------------------------------------------------------------
def excluded_words(variants: list[Variant]) -> tuple[frozenset[str], list[str]]:
    """The built-in corpus's vocabularies and every variant's training words, and where each
    part came from."""
    words, sources = builtin_words(), ["built-in synthetic corpus: the default word list and "
                                       "experiments/words/large.txt"]
    for model in dict.fromkeys(v.model for v in variants):
        w, source = training_words(model)
        words, sources = words | w, sources + [source]
    return words, sources


def sentence_eval(data, variants, trials: int = TRIALS, keywords: int = KEYWORDS,
                  shots: int = SHOTS, seed: int = SEED, factors=FACTORS,
                  min_letters: int = MIN_LETTERS, cohort=None, background=(),
                  background_files_per_folder: int = BACKGROUND_FILES,
                  progress=None) -> SpotEvalResult:
    """Score each of ``variants`` (:class:`Variant` or ``MODEL@...`` strings) on the same trials
    of the sentence corpus ``data`` (module docstring).

    Returns
    -------
    SpotEvalResult
        As :func:`kws_proto.eval.spot_eval.spot_eval`'s, each variant with ``background``
        rates, and ``extra``: the sentences scored and skipped, the excluded words and where
        they came from, the candidates and the keywords spotted with their occurrences.
    """
    check_options(trials, keywords, shots, 1, 1.0, seed, None, factors)
    if isinstance(min_letters, bool) or not isinstance(min_letters, int) or min_letters < 1:
        raise ConfigError(f"--min-letters={min_letters!r} must be an integer >= 1")
    variants = parse_variants(variants, cohort)
    corpus = load_sentences(data)
    for s in corpus.skipped:
        if progress:
            progress(f"skipped utterance {s['utterance']}: {s['why']}")
    exclude, sources = excluded_words(variants)
    candidates = candidate_words(corpus, exclude, shots, min_letters)
    specs = draw_sentence_trials(candidates, corpus.clips, trials, keywords, shots, seed)
    cohort = as_dataset(cohort, progress is not None) if cohort is not None else None
    folders = {str(f): background_files(f, background_files_per_folder, seed) for f in background}
    factors = sorted({float(f) for f in factors} | {1.0})
    bench = _SentenceBench(corpus, specs, factors, cohort, folders, seed)
    results = [run_sentence_variant(bench, v, progress) for v in variants]
    bootstrap(results, seed)
    enrol_speakers = {clip_speaker(p) for t in specs for s in t.support for p in s}
    spotted = sorted({k for t in specs for k in t.keywords})
    occ = corpus.occurrences
    options = {"trials": trials, "keywords": keywords, "shots": shots, "seed": seed,
               "factors": factors, "min_letters": min_letters,
               "cohort": str(cohort) if cohort else None, "background": list(folders),
               "background_files": background_files_per_folder, "sentences": True}
    extra = {"sentences": {"utterances": len(corpus.utterances), "hours": corpus.seconds / 3600,
                           "speakers": len(corpus.speakers), "skipped": corpus.skipped},
             "excluded_words": sorted(exclude), "exclusion_sources": sources,
             "candidates": candidates, "keywords": {k: occ[k] for k in spotted},
             "background_unreadable": bench.unreadable}
    return SpotEvalResult(str(corpus.root), not (enrol_speakers & corpus.speakers), options,
                          [t.to_dict() for t in specs], results, extra)
