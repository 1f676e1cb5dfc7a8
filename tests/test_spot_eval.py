"""kws-proto spot-eval: seeded trials, constructed streams, scoring, the DET sweep, bad options.

The datasets are small real-speech folders prepared here by ``kws-prep folder`` (symlink mode)
from ``../shared/data`` (skipped with a reason when absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws_proto.cli import main
from kws_proto.spot.detect import Event

FSDD_DIGITS, FSDD_SPEAKERS, FSDD_TAKES = "012345", ("george", "jackson", "lucas"), range(8)
PICO_WORDS, PICO_FILES = ("computer", "jarvis", "snowboy", "view glass"), 12


def _prepare(src: Path, out: Path) -> Path:
    from data_prep.folder import index_folder

    index_folder(src, out, mode="symlink", workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def fsdd_small(fsdd_dir, tmp_path_factory) -> Path:
    """6 digits x 3 speakers x 8 takes of FSDD as a prepared dataset (speaker ids), with a 2 s
    hum recording in ``_background_noise_/``."""
    src = tmp_path_factory.mktemp("fsdd_src")
    (src / "_background_noise_").mkdir()
    t = np.arange(32000) / 16000
    sf.write(src / "_background_noise_" / "hum.wav", 0.1 * np.sin(2 * np.pi * 50 * t), 16000)
    for d in FSDD_DIGITS:
        for s in FSDD_SPEAKERS:
            for n in FSDD_TAKES:
                (src / f"{d}_{s}_{n}.wav").symlink_to(fsdd_dir / f"{d}_{s}_{n}.wav")
    return _prepare(src, tmp_path_factory.mktemp("fsdd_small") / "data")


@pytest.fixture(scope="module")
def pico_small(picovoice_dir, tmp_path_factory) -> Path:
    """4 Picovoice words x 12 files as a prepared dataset (no speaker ids)."""
    src = tmp_path_factory.mktemp("pico_src")
    for w in PICO_WORDS:
        (src / w).mkdir()
        for p in sorted((picovoice_dir / w).glob("*.flac"))[:PICO_FILES]:
            (src / w / p.name).symlink_to(p)
    return _prepare(src, tmp_path_factory.mktemp("pico_small") / "data")


def _manifest(root):
    from kws_proto.data.dataset import load_manifest

    return {c.path: c for c in load_manifest(root).clips}


# -- trials ---------------------------------------------------------------------------------------
def test_same_seed_same_trials_speaker_disjoint(fsdd_small):
    from kws_proto.eval.streams import draw_trials

    a = draw_trials(fsdd_small, trials=4, words=12, seed=3)
    assert a == draw_trials(fsdd_small, trials=4, words=12, seed=3)
    assert draw_trials(fsdd_small, trials=2, words=12, seed=3) == a[:2]  # trial i is fixed
    assert a != draw_trials(fsdd_small, trials=4, words=12, seed=4)
    clips = _manifest(fsdd_small)
    for t in a:
        assert len(t.keywords) == 3 and len(set(t.keywords)) == 3
        assert [len(s) for s in t.support] == [5, 5, 5]
        assert t.enrol_speaker in FSDD_SPEAKERS
        for k, s in zip(t.keywords, t.support):
            assert all(clips[p].speaker == t.enrol_speaker and clips[p].keyword == k for p in s)
        assert all(clips[w.path].speaker != t.enrol_speaker for w in t.words)  # other speakers
        assert all(clips[w.path].keyword == w.keyword for w in t.words)
        assert [w.target for w in t.words].count(True) == 3  # round(0.25 * 12)
        assert all(w.target == (w.keyword in t.keywords) for w in t.words)
        assert len({w.path for w in t.words}) == len(t.words)
        assert len(t.gaps) == len(t.words) + 1 and all(0.3 <= g <= 1.5 for g in t.gaps)
    assert json.loads(json.dumps([t.to_dict() for t in a]))  # serialisable


def test_several_support_speakers_for_a_corpus_that_says_each_word_once(synth_dataset):
    """The built-in corpus has one clip per voice and word: one speaker's five clips do not
    exist (the error says what does); `several` enrols every keyword from the same five voices,
    one clip each, and streams only the other voices."""
    from kws_proto.errors import ConfigError, DatasetError
    from kws_proto.eval.streams import draw_trials

    with pytest.raises(DatasetError, match="no speaker has 5 clips.*--support-speakers several"):
        draw_trials(synth_dataset, trials=1, words=8)
    a = draw_trials(synth_dataset, trials=3, words=8, seed=2, support_speakers="several")
    assert a == draw_trials(synth_dataset, trials=3, words=8, seed=2, support_speakers="several")
    clips = _manifest(synth_dataset)
    for t in a:
        used = set(t.enrol_speaker.split(","))
        assert len(used) == 5
        for k, s in zip(t.keywords, t.support):
            assert all(clips[p].keyword == k for p in s)
            assert {clips[p].speaker for p in s} == used  # the same five voices, one clip each
        assert all(clips[w.path].speaker not in used for w in t.words)  # none of them speaks
        assert [w.target for w in t.words].count(True) == 2  # round(0.25 * 8)
    with pytest.raises(ConfigError, match="--support-speakers='some'"):
        draw_trials(synth_dataset, trials=1, support_speakers="some")


def test_trials_without_speakers_keep_support_out_of_the_stream(pico_small):
    from kws_proto.eval.streams import draw_trials

    for t in draw_trials(pico_small, trials=3, keywords=2, shots=3, words=8, target_ratio=0.5):
        support = {p for s in t.support for p in s}
        assert t.enrol_speaker is None and len(support) == 6
        assert not support & {w.path for w in t.words}
        assert sum(w.target for w in t.words) == 4
        assert {w.keyword for w in t.words if w.target} <= set(t.keywords)


def test_stream_places_the_trimmed_clips_between_silent_gaps(fsdd_small):
    from kws_proto.eval.streams import build_stream, draw_trials, trimmed_word

    trial = draw_trials(fsdd_small, trials=1, words=8, seed=1)[0]
    s = build_stream(trial, fsdd_small, 16000)
    again = build_stream(trial, fsdd_small, 16000)
    assert np.array_equal(s.audio, again.audio)
    lengths = [len(trimmed_word(fsdd_small / w.path, 16000)) for w in trial.words]
    gaps = [int(round(g * 16000)) for g in trial.gaps]
    assert len(s.audio) == sum(lengths) + sum(gaps)
    at = gaps[0]
    for (start, end, word), n, g in zip(s.spans, lengths, gaps[1:]):
        assert start == at / 16000 and end == (at + n) / 16000
        assert not np.any(s.audio[at + n:at + n + g])  # the gap after it is silence
        at += n + g
    assert [(e.keyword, e.start, e.end) for e in s.truth] == \
        [(w.keyword, a, b) for a, b, w in s.spans if w.target]
    _check_snr(s, build_stream(trial, fsdd_small, 16000, snr=10.0), 10.0)


def _check_snr(clean, noisy, snr_db):
    """The words-to-noise power ratio of ``noisy`` is ``snr_db``; returns the noise."""
    words = np.concatenate([clean.audio[int(round(a * 16000)):int(round(b * 16000))]
                            for a, b, _ in clean.spans])
    noise = noisy.audio.astype(np.float64) - clean.audio
    snr = 10 * np.log10(np.mean(words.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(snr_db, abs=0.01)
    return noise


def test_noise_is_the_datasets_own_recording_else_pink(fsdd_small, pico_small):
    from kws_proto.eval.streams import build_stream, draw_trials

    trial = draw_trials(fsdd_small, trials=1, words=4, seed=2)[0]
    noise = _check_snr(build_stream(trial, fsdd_small, 16000),
                       build_stream(trial, fsdd_small, 16000, snr=0.0), 0.0)
    spectrum = np.abs(np.fft.rfft(noise))
    assert np.argmax(spectrum) * 16000 / len(noise) == pytest.approx(50, abs=1)  # the hum
    trial = draw_trials(pico_small, trials=1, keywords=2, words=4, seed=2)[0]
    noise = _check_snr(build_stream(trial, pico_small, 16000),
                       build_stream(trial, pico_small, 16000, snr=20.0), 20.0)
    power = np.abs(np.fft.rfft(noise)) ** 2
    f = np.fft.rfftfreq(len(noise), 1 / 16000)
    low, high = power[(f > 100) & (f < 200)].mean(), power[(f > 1000) & (f < 2000)].mean()
    assert low / high == pytest.approx(10, rel=0.5)  # pink: power falls as 1/f


# -- scoring --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hand_stream(keyword_clips):
    """jarvis, computer, jarvis and one unenrolled word between 1 s of silence, read with
    soundfile: ``(audio at 16 kHz, truth, spans, support)``."""
    import soxr

    if keyword_clips["source"] != "picovoice":
        pytest.skip("the hand-made stream needs ../shared/data/picovoice")
    kw = keyword_clips["keywords"]
    order = [("jarvis", kw["jarvis"][10]), ("computer", kw["computer"][10]),
             ("jarvis", kw["jarvis"][11]), (None, keyword_clips["unknown"][0])]
    parts, truth, spans, t = [np.zeros(16000, np.float32)], [], [], 1.0
    for name, path in order:
        y, sr = sf.read(path, dtype="float32")
        y = soxr.resample(y, sr, 16000).astype(np.float32) if sr != 16000 else y
        spans.append((t, t + len(y) / 16000))
        if name:
            truth.append(Event(name, t, t + len(y) / 16000))
        parts += [y, np.zeros(16000, np.float32)]
        t += len(y) / 16000 + 1.0
    support = {"jarvis": kw["jarvis"][:5], "computer": kw["computer"][:5]}
    return np.concatenate(parts), truth, spans, support


def test_scoring_counts_hits_and_false_alarms_on_a_hand_made_stream(hand_stream):
    from kws_proto.eval.spot_eval import score
    from kws_proto.eval.spot_results import curve, recall_at

    audio, truth, spans, _ = hand_stream
    (a0, a1), (c0, c1), _, (u0, u1) = spans
    detected = [Event("jarvis", a0 - 0.2, a0 + 0.5, 0.4),  # hits the first jarvis
                Event("jarvis", a1 - 0.3, a1 + 0.2, 0.2),  # the same jarvis again: false alarm
                Event("computer", a0, a1, 0.1),  # wrong keyword on a jarvis: false alarm
                Event("computer", c0 + 0.1, c1 + 0.4, 0.3),  # hits computer
                Event("jarvis", u0, u1, 0.5)]  # on the unenrolled word: false alarm
    # nothing on the second jarvis: a miss
    assert score(detected, truth) == {"hits": 2, "targets": 3, "false_alarms": 3}
    assert score([], truth) == {"hits": 0, "targets": 3, "false_alarms": 0}
    seconds = len(audio) / 16000
    pts = curve({1.0: np.array([2, 3, 3]), 2.0: np.array([3, 3, 9])}, seconds / 3600)
    assert pts[0]["recall"] == pytest.approx(2 / 3)
    assert pts[0]["fa_per_hour"] == pytest.approx(3 * 3600 / seconds)
    assert recall_at(pts, pts[0]["fa_per_hour"]) == pytest.approx(2 / 3)
    assert recall_at(pts, 1e9) == 1.0 and recall_at(pts, 0.0) == 0.0


def test_each_false_alarm_is_put_on_the_word_it_overlaps_most():
    from kws_proto.eval.spot_report import _fell_on
    from kws_proto.eval.spot_results import TrialResult, VariantResult
    from kws_proto.eval.spot_variants import Variant
    from kws_proto.eval.streams import GAP, Word, false_alarm_words
    from kws_proto.spot.detect import match_events

    spans = [(1.0, 1.6, Word("a/1.wav", "jarvis", True)),
             (2.6, 3.4, Word("b/1.wav", "computer", True)),
             (4.4, 5.0, Word("c/1.wav", "snowboy", False))]
    truth = [Event(w.keyword, a, b) for a, b, w in spans if w.target]
    detected = [Event("jarvis", 0.9, 1.5, 0.4),  # hits jarvis
                Event("jarvis", 1.2, 1.7, 0.2),  # jarvis again: a second detection
                Event("jarvis", 2.5, 4.5, 0.3),  # over computer (0.8 s) and snowboy (0.1 s)
                Event("computer", 4.5, 5.5, 0.1),  # on the word that is no target
                Event("computer", 6.0, 6.5, 0.1)]  # in the silence after it
    false = match_events(detected, truth)["false"]
    words = false_alarm_words(false, [(a, b, w.keyword, w.target) for a, b, w in spans])
    assert words == [("jarvis", "jarvis", True), ("jarvis", "computer", True),
                     ("computer", "snowboy", False), ("computer", GAP, False)]
    trials = [TrialResult(i, 10.0, np.zeros((1, 3), np.int64), [1.0], w)
              for i, w in enumerate([words, words[2:3]])]
    v = VariantResult("m", Variant("m"), [1.0], trials, 0.0)
    assert v.false_alarm_words[0] == {"keyword": "computer", "said": "snowboy",
                                      "said_is_target": False, "false_alarms": 2}
    assert sum(w["false_alarms"] for w in v.false_alarm_words) == 5
    line = _fell_on(v)[0]
    assert "other words 2, targets 2, gaps 1" in line and "computer <- snowboy x2" in line
    trials[1].false_words = None  # a stored result: not recorded, not an empty tally
    assert v.false_alarm_words is None and _fell_on(v) == []


def test_the_threshold_sweep_is_detect_with_scaled_thresholds(keyword_spotter, hand_stream):
    from kws_proto.spot.bank import Keyword
    from kws_proto.eval.spot_eval import events_at, score, score_windows

    audio, truth, _, support = hand_stream
    bank = keyword_spotter.new_bank()
    for name, files in support.items():
        keyword_spotter.enroll(bank, name, files)
    ws = score_windows(keyword_spotter, bank, audio, batch=16)
    assert events_at(ws, bank, 1.0) == keyword_spotter.detect(bank, audio).events
    scaled = keyword_spotter.new_bank()
    for k in bank.keywords:
        scaled.add(Keyword(k.name, k.prototype, k.support, k.clips, 1.7 * k.threshold,
                           k.calibration))
    assert events_at(ws, bank, 1.7) == keyword_spotter.detect(scaled, audio).events
    assert events_at(ws, bank, 1e-6) == []  # nothing is within a tiny threshold
    s = score(events_at(ws, bank, 1.0), truth)
    assert s["targets"] == 3 and 0 <= s["hits"] <= 3


def test_spot_eval_scores_variants_on_the_same_trials(trained_run, pico_small, tmp_path):
    from kws_proto.eval.spot_eval import spot_eval
    from kws_proto.eval.spot_report import det_plot, table, to_json

    model = str(trained_run)
    r = spot_eval(pico_small, [model, f"{model}@min_hits=2"], trials=2, keywords=2, shots=3,
                  words=8, seed=5, factors=(0.5, 2.0))
    assert [v.name for v in r.variants] == [model, f"{model}@min_hits=2"]
    for v in r.variants:
        assert [p["factor"] for p in v.curve] == [0.5, 1.0, 2.0]
        assert v.counts.shape == (2, 3, 3)  # trials x factors x (hits, targets, false alarms)
        cal = v.calibrated
        assert cal["hits"] == sum(t["hits"] for t in v.per_trial) == v.counts[:, 1, 0].sum()
        assert cal["false_alarms"] == sum(t["false_alarms"] for t in v.per_trial)
        assert sum(w["false_alarms"] for w in v.false_alarm_words) == cal["false_alarms"]
        assert cal["targets"] == 2 * 2  # round(0.25 * 8) per trial
        assert v.stream_hours == pytest.approx(
            sum(t["seconds_audio"] for t in v.per_trial) / 3600, rel=1e-3)
        assert 0 <= v.recall_at["10"] <= v.recall_at["50"] <= 1
        lo, hi = v.ci95["recall"]
        assert 0 <= lo <= hi <= 1
    assert r.variants[0].vs_first is None and set(r.variants[1].vs_first) == {"10", "50"}
    # identical trials: the same thresholds (enrolment does not depend on the decision variant)
    first, second = (v.per_trial[0]["thresholds"] for v in r.variants)
    assert first == second
    out = json.loads(to_json(r))
    assert out["trials"] == r.trials and out["variants"][1]["name"] == r.variants[1].name
    assert out["variants"][0]["per_trial"] == r.variants[0].per_trial
    assert "vs_first" not in out["variants"][0] and "vs_first" in out["variants"][1]
    assert out["variants"][0]["false_alarm_words"] == r.variants[0].false_alarm_words
    # two runs' JSON compared afterwards (experiments/spot_paired.py) give the paired
    # intervals the one run gave: every trial's counts at every factor are kept
    from kws_proto.eval.spot_results import bootstrap, from_dict

    back = [from_dict(v) for v in out["variants"]]
    for v, w in zip(back, r.variants):
        np.testing.assert_array_equal(v.counts, w.counts)
        assert v.curve == w.curve and v.factors == w.factors
        assert v.variant == w.variant  # a Variant again, as to_dict needs
    bootstrap(back, 5)
    assert back[1].vs_first == r.variants[1].vs_first and back[0].ci95 == r.variants[0].ci95
    stored = dict(out["variants"][0])
    del stored["trial_counts"]
    with pytest.raises(ValueError, match="trial_counts"):
        from_dict(stored)
    assert "min_hits=2" in table(r)
    png = det_plot(r, tmp_path / "det.png")
    assert png.stat().st_size > 1000


def test_text_and_confusable_variants(trained_run, fsdd_small):
    """text=N enrols from the digits' names said by N voices (real=0: no recording), confusables=N
    caps the recorded support's thresholds with synthesised near-words."""
    from kws_proto.eval.spot_eval import spot_eval

    model = str(trained_run)
    r = spot_eval(fsdd_small, [model, f"{model}@text=6,real=0", f"{model}@confusables=4"],
                  trials=1, keywords=2, shots=3, words=8, seed=5, factors=(0.5, 2.0))
    plain, text, capped = (v.per_trial[0]["thresholds"] for v in r.variants)
    assert r.variants[1].name == f"{model}@text=6,real=0"
    assert text != plain and all(np.isfinite(text))
    assert all(c <= p + 1e-4 for c, p in zip(capped, plain))  # negatives only lower a threshold


# -- options --------------------------------------------------------------------------------------
@pytest.mark.parametrize("option, value, message", [
    ("--trials", "0", "argument --trials: '0'"), ("--keywords", "0", "argument --keywords: '0'"),
    ("--shots", "1", "--shots=1"), ("--words", "0", "argument --words: '0'"),
    ("--seed", "-1", "argument --seed: '-1'"), ("--target-ratio", "0", "argument --target-ratio: '0'"),
    ("--target-ratio", "1.5", "argument --target-ratio: '1.5'"), ("--snr", "nan", "argument --snr: 'nan'"),
    ("--factors", "1,-2", "argument --factors: '1,-2'"),
    ("--keywords", "7", "--keywords=7"), ("--plot", "det.jpg", "--plot"),
])
def test_bad_options_name_the_option(fsdd_small, capsys, option, value, message):
    try:  # numbers are refused by the command line (argparse exits), the rest by spot-eval
        rc = main(["spot-eval", "default", "--data", str(fsdd_small), option, value, "--quiet"])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err


@pytest.mark.parametrize("spec, message", [
    ("default@hop=0", "hop=0"), ("default@min_hits=x", "min_hits='x' is not an integer"),
    ("default@speed=2", "'speed=2' is not key=value"), ("@hop=1", "no model"),
    ("default@negatives=10", "needs --cohort"), ("default@real=0", "real=0"),
    ("default@text=5,negatives=3", "do not combine"), ("default@confusables=-1", "confusables=-1"),
    ("default@context=3", "context=3 is for a normalised keyword"),
    ("default@twin=1", "twin=1"), ("default@norm=snorm,bg=shipped,context=3,twin=2", "twin=2"),
    ("default@norm=snorm,bg=shipped,shift=0.5", "shift=0.5"),
])
def test_bad_variants_are_refused(fsdd_small, capsys, spec, message):
    rc = main(["spot-eval", "default", "--data", str(fsdd_small), "--compare", spec, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err


def test_a_missing_dataset_and_a_non_number_are_clear(tmp_path, capsys):
    assert main(["spot-eval", "default", "--data", str(tmp_path / "nope")]) == 2
    assert "not a prepared dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["spot-eval", "default", "--data", str(tmp_path), "--trials", "many"])
    assert "--trials" in capsys.readouterr().err
