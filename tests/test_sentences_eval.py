"""kws-proto spot-eval --sentences: the sentence corpus, candidate words, trials, scoring against
word timings, bad input, and one run on a few speakers of ../shared/data/speechocean762."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from kws_proto.cli import main
from kws_proto.errors import ConfigError, DatasetError
from kws_proto.eval.sentences import (candidate_words, draw_sentence_trials, free_seconds,
                                      load_sentences, score_utterances, training_words)
from kws_proto.eval.streams import GAP
from kws_proto.publish import SHIPPED_LEVEL
from kws_proto.spot.detect import Event
from tests.conftest import SHARED_DATA

SR = 16000
# utterance -> (speaker, seconds, [(word, start, end)])
SENTENCES = {
    "u1": ("s1", 3.0, [("hello", 0.5, 1.0), ("there", 1.1, 1.6), ("hello", 2.0, 2.5)]),
    "u2": ("s1", 2.0, [("the", 0.2, 0.4), ("garden", 0.5, 1.2)]),
    "u3": ("s2", 2.5, [("there", 0.3, 0.8), ("was", 0.9, 1.1), ("garden", 1.3, 2.0)]),
}
WORD_CLIPS = {"hello": 3, "there": 3, "garden": 3, "the": 3, "was": 1}  # clips in words/


def _tsv(path: Path, header, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(header)
        w.writerows(rows)


def make_corpus(root: Path, sentences=SENTENCES, extra_alignments=()) -> Path:
    """A corpus in speechocean762's layout: noise "sentences" of the given lengths, their
    text.tsv and alignments.tsv, and words/<word>/<speaker>_<n>.wav clips by speakers w1, w2..."""
    rng = np.random.default_rng(0)
    for utt, (spk, seconds, _) in sentences.items():
        (root / "utterances" / spk).mkdir(parents=True, exist_ok=True)
        sf.write(root / "utterances" / spk / f"{utt}.flac",
                 0.1 * rng.standard_normal(int(seconds * SR)), SR)
    _tsv(root / "utterances" / "text.tsv", ("utterance", "speaker", "seconds", "text"),
         [(u, s, f"{sec:.3f}", " ".join(w for w, _, _ in ws))
          for u, (s, sec, ws) in sentences.items()])
    _tsv(root / "utterances" / "alignments.tsv", ("utterance", "word", "start", "end"),
         [(u, w, f"{a:.2f}", f"{b:.2f}") for u, (_, _, ws) in sentences.items() for w, a, b in ws]
         + list(extra_alignments))
    for word, n in WORD_CLIPS.items():
        (root / "words" / word).mkdir(parents=True)
        for i in range(n):
            sf.write(root / "words" / word / f"w{i + 1}_0.wav", 0.1 * rng.standard_normal(SR // 2), SR)
    return root


# -- scoring --------------------------------------------------------------------------------------
def test_scoring_counts_hits_false_alarms_and_background_by_hand():
    truth = [[Event("hello", 0.5, 1.0), Event("hello", 2.0, 2.5)],  # utterance 1
             [Event("garden", 0.5, 1.2)],  # utterance 2
             []]  # utterance 3: no occurrence of a target
    detected = [
        [Event("hello", 0.3, 0.9, 0.5),  # hits hello #1
         Event("hello", 0.8, 1.3, 0.2),  # hello #1 again: false alarm, but not background
         Event("garden", 2.1, 2.4, 0.4),  # garden on a hello: false alarm and background
         Event("hello", 1.1, 1.6, 0.3)],  # between the hellos: false alarm and background
        [Event("garden", 1.1, 1.9, 0.3)],  # overlaps garden by 0.1 s: a hit
        [Event("garden", 0.0, 1.0, 0.6), Event("hello", 1.0, 2.0, 0.6)],  # 2 false alarms
    ]
    s = score_utterances(detected, truth)
    # hits: hello #1, garden -> 2; occurrences 3; false alarms 3 + 0 + 2 = 5
    assert (s["hits"], s["targets"], s["false_alarms"]) == (2, 3, 5)
    assert s["background"] == {"garden": 2, "hello": 2}
    # the same detection on the wrong utterance's timings is not a hit: nothing crosses utterances
    assert score_utterances([[], [Event("hello", 0.5, 1.0)], []], truth)["hits"] == 0
    assert [len(f) for f in s["false"]] == [3, 0, 2]
    assert s["false"][0][0] == Event("hello", 0.8, 1.3, 0.2)  # by start within an utterance
    assert score_utterances([[], [], []], truth) == {"hits": 0, "targets": 3, "false_alarms": 0,
                                                     "background": {}, "false": [[], [], []]}


def test_keyword_free_seconds_and_fa_per_hour(tmp_path):
    from kws_proto.eval.spot_results import curve

    corpus = load_sentences(make_corpus(tmp_path))
    assert corpus.seconds == pytest.approx(7.5)
    assert free_seconds(corpus.utterances, "hello") == pytest.approx(7.5 - 0.5 - 0.5)
    assert free_seconds(corpus.utterances, "garden") == pytest.approx(7.5 - 0.7 - 0.7)
    assert free_seconds(corpus.utterances, "absent") == pytest.approx(7.5)
    # 5 false alarms in 7.5 s of sentences, twice (two trials): 10 per 15 s = 2400 per hour
    pts = curve({1.0: np.array([4, 6, 10])}, 2 * 7.5 / 3600)
    assert pts[0]["fa_per_hour"] == pytest.approx(2400) and pts[0]["recall"] == pytest.approx(4 / 6)


# -- corpus, candidates and trials ----------------------------------------------------------------
def test_corpus_candidates_and_trials(tmp_path):
    corpus = load_sentences(make_corpus(tmp_path))
    assert [u.name for u in corpus.utterances] == ["u1", "u2", "u3"] and corpus.skipped == []
    assert corpus.occurrences == {"hello": 2, "there": 2, "the": 1, "garden": 2, "was": 1}
    assert corpus.speakers == {"s1", "s2"}
    assert corpus.clips["hello"] == [f"words/hello/w{i}_0.wav" for i in (1, 2, 3)]
    # "the" and "was" are too short; "was" also lacks clips; "garden" is a training word
    assert candidate_words(corpus, frozenset(), shots=2) == ["garden", "hello", "there"]
    assert candidate_words(corpus, frozenset({"garden"}), shots=2) == ["hello", "there"]
    assert candidate_words(corpus, frozenset(), shots=2, min_letters=3) == [
        "garden", "hello", "the", "there"]
    assert candidate_words(corpus, frozenset(), shots=4) == []
    cands = ["garden", "hello", "there"]
    a = draw_sentence_trials(cands, corpus.clips, trials=4, keywords=2, shots=2, seed=1)
    assert a == draw_sentence_trials(cands, corpus.clips, trials=4, keywords=2, shots=2, seed=1)
    assert draw_sentence_trials(cands, corpus.clips, 2, 2, 2, seed=1) == a[:2]  # trial i is fixed
    for t in a:
        assert len(set(t.keywords)) == 2 and set(t.keywords) <= set(cands)
        for k, s in zip(t.keywords, t.support):
            assert len(set(s)) == 2 and all(p.startswith(f"words/{k}/") for p in s)
    with pytest.raises(ConfigError, match=r"--keywords=4: only 3 candidate word\(s\)"):
        draw_sentence_trials(cands, corpus.clips, trials=1, keywords=4, shots=2, seed=0)


def test_the_shipped_encoders_training_words_are_read_from_its_config():
    from data_prep.words import DEFAULT_WORDS
    from kws_proto.eval.sentence_eval import excluded_words
    from kws_proto.eval.spot_variants import Variant

    words, source = training_words("default")
    lists = {name: {w.strip() for w in (REPO / "experiments" / "words" / name).read_text().splitlines()
                    if w.strip() and not w.startswith("#")} for name in ("large.txt", "cmudict1500.txt")}
    # the trained member's 870 words and the head's 870 + 1,500 (its config's synth_words)
    assert len(lists["large.txt"]) == 870 and len(lists["cmudict1500.txt"]) == 1500
    assert words == lists["large.txt"] | lists["cmudict1500.txt"]
    assert "experiments/words/large.txt" in source and "experiments/words/cmudict1500.txt" in source
    assert set(DEFAULT_WORDS) <= words
    for frozen in ("gse", "ewn"):  # no run folder to read: said, not guessed from a path
        none, why = training_words(frozen)
        assert none == frozenset() and why.startswith(f"{frozen}: a frozen embedding")
    every, sources = excluded_words([Variant("default"), Variant("gse")])
    assert words <= every and len(sources) == 3


# -- bad input ------------------------------------------------------------------------------------
def test_utterances_whose_timings_do_not_fit_are_skipped_and_named(tmp_path):
    bad = dict(SENTENCES)
    bad["u4"] = ("s2", 1.0, [("hello", 0.2, 1.5)])  # ends 0.5 s past its 1 s of audio
    root = make_corpus(tmp_path, bad, extra_alignments=[("u9", "hello", "0.1", "0.4")])
    (root / "utterances" / "s1" / "u2.flac").unlink()
    corpus = load_sentences(root)
    assert [u.name for u in corpus.utterances] == ["u1", "u3"]
    why = {s["utterance"]: s["why"] for s in corpus.skipped}
    assert set(why) == {"u2", "u4", "u9"}
    assert "no audio file" in why["u2"] and "u2.flac" in why["u2"]
    assert "'hello' aligned at 0.20-1.50 s does not fit its audio (1.00 s)" in why["u4"]
    assert "not in text.tsv" in why["u9"]


@pytest.mark.parametrize("span, shown", [
    (("-0.30", "0.40"), "-0.30-0.40 s"),  # starts before the audio
    (("0.90", "0.60"), "0.90-0.60 s"),  # ends before it starts
])
def test_negative_or_reversed_spans_are_skipped_named_and_counted(tmp_path, span, shown):
    root = make_corpus(tmp_path, extra_alignments=[("u2", "garden", *span)])
    corpus = load_sentences(root)
    assert [u.name for u in corpus.utterances] == ["u1", "u3"]  # the rest goes on
    assert corpus.skipped == [{"utterance": "u2", "why": f"word 'garden' aligned at {shown} does "
                                                        "not fit its audio (2.00 s)"}]


@pytest.mark.parametrize("name", ["text.tsv", "alignments.tsv"])
def test_a_missing_table_is_an_error_naming_it(tmp_path, name):
    root = make_corpus(tmp_path)
    (root / "utterances" / name).unlink()
    with pytest.raises(DatasetError, match=f"{name}: no such file"):
        load_sentences(root)


def test_no_scorable_utterance_and_bad_numbers_are_errors(tmp_path):
    root = make_corpus(tmp_path / "a", {"u1": ("s1", 1.0, [("hello", 0.5, 2.0)])})
    with pytest.raises(DatasetError, match="no utterance with audio and word timings"):
        load_sentences(root)
    root = make_corpus(tmp_path / "b")
    with open(root / "utterances" / "alignments.tsv", "a", encoding="utf-8") as f:
        f.write("u1\thello\tsoon\t2.0\n")
    with pytest.raises(DatasetError, match="line 10: start and end must be numbers"):
        load_sentences(root)


@pytest.mark.parametrize("args, message", [
    (["--snr", "10"], "--snr is for the clip streams of --data"),
    (["--words", "10"], "--words is for the clip streams of --data"),
    (["--min-letters", "0"], "argument --min-letters: '0'"),
    # only "there": "hello" and "garden" are words of the built-in corpus, "the" and "was" short
    (["--shots", "2", "--keywords", "9"], "--keywords=9: only 1 candidate word(s)"),
])
def test_bad_sentence_options_are_named(tmp_path, capsys, args, message):
    root = make_corpus(tmp_path)
    try:
        rc = main(["spot-eval", "gse", "--sentences", str(root), "--quiet", *args])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err


def test_sentence_only_options_need_sentences_and_a_missing_file_is_named(tmp_path, capsys):
    assert main(["spot-eval", "default", "--data", str(tmp_path), "--min-letters", "3"]) == 2
    assert "--min-letters is for --sentences" in capsys.readouterr().err
    root = make_corpus(tmp_path / "c")
    (root / "utterances" / "alignments.tsv").unlink()
    assert main(["spot-eval", "default", "--sentences", str(root), "--quiet"]) == 2
    assert "alignments.tsv: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["spot-eval", "default", "--sentences", str(root), "--data", str(root)])
    assert "not allowed with argument" in capsys.readouterr().err


# -- on real sentences ----------------------------------------------------------------------------
SPEAKERS = 2


@pytest.fixture(scope="module")
def so762_small(tmp_path_factory) -> Path:
    """The first two speakers' sentences of ../shared/data/speechocean762 (links) with their rows
    of text.tsv and alignments.tsv, and every words/ folder, or skip."""
    src = SHARED_DATA / "speechocean762"
    if not (src / "utterances" / "text.tsv").is_file():
        pytest.skip(f"real speech not available: {src} is absent (set KWS_SHARED_DATA)")
    root = tmp_path_factory.mktemp("so762")
    (root / "utterances").mkdir()
    (root / "words").symlink_to(src / "words")
    with open(src / "utterances" / "text.tsv", newline="", encoding="utf-8") as f:
        text = list(csv.DictReader(f, delimiter="\t"))
    speakers = sorted({r["speaker"] for r in text})[:SPEAKERS]
    for s in speakers:
        (root / "utterances" / s).symlink_to(src / "utterances" / s)
    keep = [r for r in text if r["speaker"] in speakers]
    _tsv(root / "utterances" / "text.tsv", ("utterance", "speaker", "seconds", "text"),
         [tuple(r.values()) for r in keep])
    with open(src / "utterances" / "alignments.tsv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t")
                if r["utterance"] in {k["utterance"] for k in keep}]
    _tsv(root / "utterances" / "alignments.tsv", ("utterance", "word", "start", "end"),
         [tuple(r.values()) for r in rows])
    return root


@pytest.mark.shared
def test_spotting_in_real_sentences(so762_small, tmp_path):
    from kws_proto.audio.loading import read_audio
    from kws_proto.eval.sentence_eval import embed_recordings, events_per_recording, sentence_eval
    from kws_proto.eval.sentences import SentenceTrial, builtin_words
    from kws_proto.eval.spot_eval import enrol
    from kws_proto.eval.spot_report import det_plot, table, to_json
    from kws_proto.spot.decision import keyword_distances
    from kws_proto.spot.spotter import KeywordSpotter

    r = sentence_eval(so762_small, ["default", "default@min_hits=2",
                                    "default@norm=ratio,bg=shipped,tnorm=100"], trials=2, seed=0,
                      factors=(0.5, 2.0))
    out = json.loads(to_json(r))
    with open(so762_small / "utterances" / "alignments.tsv", newline="", encoding="utf-8") as f:
        aligned = [row["word"] for row in csv.DictReader(f, delimiter="\t")]
    with open(so762_small / "utterances" / "text.tsv", newline="", encoding="utf-8") as f:
        seconds = sum(float(row["seconds"]) for row in csv.DictReader(f, delimiter="\t"))
    assert r.speaker_disjoint  # words/ speakers are not the sentences' speakers
    assert out["sentences"]["utterances"] == 40 and out["sentences"]["skipped"] == []
    assert out["sentences"]["hours"] == pytest.approx(seconds / 3600, rel=1e-3)
    assert builtin_words() <= set(out["excluded_words"])
    for t in r.trials:
        assert not set(t["keywords"]) & set(out["excluded_words"])
        assert all(len(k) >= 4 and out["keywords"][k] == aligned.count(k) for k in t["keywords"])
    for v in r.variants:
        assert [p["factor"] for p in v.curve] == [0.5, 1.0, 2.0]
        for t, spec in zip(v.per_trial, r.trials):  # occurrences counted from alignments.tsv
            assert t["targets"] == sum(aligned.count(k) for k in spec["keywords"])
            assert t["seconds_audio"] == pytest.approx(seconds, abs=0.01)
        assert set(v.recall_at) == {"10", "30", "100"}
        b = v.background
        assert len(b["per_keyword"]) == 2 * 3
        assert b["per_keyword_false_alarms"] <= v.calibrated["false_alarms"]
        # every false alarm put on an aligned word of its sentence, or on none
        assert sum(w["false_alarms"] for w in v.false_alarm_words) == v.calibrated["false_alarms"]
        assert {w["said"] for w in v.false_alarm_words} <= {*aligned, GAP}
    both = r.variants[2]  # the window side of s-norm: the same cohort cut, the shipped level
    assert both.per_trial[0]["thresholds"] == [round(2 ** SHIPPED_LEVEL, 4)] * 3
    # factor 1 is the spotter's detect on each utterance's audio
    bench_v, sp = r.variants[0], KeywordSpotter.from_model("default")
    corpus = load_sentences(so762_small)
    spec = r.trials[0]
    trial = SentenceTrial(0, tuple(spec["keywords"]),
                          tuple(tuple(spec["support"][k]) for k in spec["keywords"]))
    bank = enrol(sp, trial, so762_small, bench_v.variant)
    assert [round(float(x), 4) for x in bank.thresholds] == bench_v.per_trial[0]["thresholds"]
    audios = [read_audio(u.path, SR) for u in corpus.utterances[:4]]
    win = embed_recordings(sp, audios, bench_v.variant.hop)
    got = events_per_recording(win, keyword_distances(bank, win.embeddings), bank, 1.0,
                               bench_v.variant)
    want = [sp.detect(bank, y).events for y in audios]
    # the same events; scores equal to float32 rounding (the windows are embedded in other batches)
    assert [[(e.keyword, e.start, e.end, e.peak) for e in es] for es in got] == \
        [[(e.keyword, e.start, e.end, e.peak) for e in es] for es in want]
    for es, ws in zip(got, want):
        for e, w in zip(es, ws):
            assert (e.score, e.distance) == pytest.approx((w.score, w.distance), rel=1e-5)
    assert "background at calibrated" in table(r) and "min_hits=2" in table(r)
    assert det_plot(r, tmp_path / "det.png").stat().st_size > 1000
