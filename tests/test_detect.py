"""Spotting in long audio: windows, event merging, scoring, and a constructed stream with known
keyword times."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from kws_proto.cli import main
from kws_proto.spot.detect import Event, EventMerger, _suppress, match_events
from kws_proto.spot.windows import frame_windows

SR = 16000
GAP = 1.5  # seconds of background between spoken words


@pytest.mark.parametrize("n, expected", [(16000, 1), (5000, 1), (16001, 2), (17600, 2), (17601, 3)])
def test_windows_cover_the_whole_signal(n, expected):
    y = np.arange(n, dtype=np.float32)
    w = frame_windows(y, 16000, 1600)
    assert w.shape == (expected, 16000)
    assert w[0, 0] == 0 and (w[-1] == n - 1).any()  # the last sample is in the last window
    if expected > 1:
        np.testing.assert_array_equal(w[1, :10], y[1600:1610])
    assert not w.flags.writeable  # a view, not a copy


def _merge(decisions, min_hits=2, max_gap=1, hop=0.1):
    """Events of per-window ``(label, ratio)`` decisions; labels index ["a", "b"]."""
    m = EventMerger(["a", "b"], window=1.0, min_hits=min_hits, max_gap=max_gap)
    out = []
    for i, (label, ratio) in enumerate(decisions):
        out += m.push(i * hop, label, ratio, ratio * 10)
    return out + m.flush()


def test_merger_joins_runs_bridges_one_gap_and_drops_single_hits():
    none = (-1, 2.0)
    events = _merge([none, (0, .5), (0, .3), none, (0, .6), none, none, none, (1, .9), none,
                     none] + [none] * 4 + [(1, .4), (1, .2), (1, .8)] + [none] * 12)
    assert [e.keyword for e in events] == ["a", "b"]
    a, b = events
    assert (a.start, a.end) == pytest.approx((0.1, 1.4))  # first hit window to last one's end
    assert a.score == pytest.approx(0.7) and a.peak == pytest.approx(0.7)
    assert (b.start, b.end) == pytest.approx((1.5, 2.7))  # the lone 'b' at 0.8 s was dropped
    # two misses end a run; a new run of the same keyword overlapping it joins it again
    assert _merge([(0, .5), none, none, (0, .4)], min_hits=1) == [
        Event("a", 0.0, 1.3, 0.6, 4.0, 0.8)]
    assert _merge([(0, .5), none, none] + [none] * 8 + [(0, .4)], min_hits=1) == [
        Event("a", 0.0, 1.0, 0.5, 5.0, 0.5), Event("a", 1.1, 2.1, 0.6, 4.0, 1.6)]


def test_overlapping_events_of_different_keywords_keep_the_surer():
    events = _merge([(0, .5), (0, .5), (1, .1), (1, .1), (1, .2)] + [(-1, 2.0)] * 12)
    assert [(e.keyword, round(e.score, 2)) for e in events] == [("b", 0.9)]


def test_streamed_events_are_final_when_released():
    rng = np.random.default_rng(0)
    labels = rng.choice([-1, -1, -1, 0, 1], size=300)
    decisions = [(int(l), float(r)) for l, r in zip(labels, rng.uniform(0, 1, 300))]
    m = EventMerger(["a", "b"], window=1.0, min_hits=2, max_gap=1)
    streamed = []
    for i, (label, ratio) in enumerate(decisions):
        for e in m.push(i * 0.1, label, ratio, ratio):
            assert e.end <= i * 0.1 + 1e-9  # released only once nothing later can touch it
            streamed.append(e)
    streamed += m.flush()
    assert len(streamed) > 5
    for x, y in zip(streamed, streamed[1:]):  # sorted, and no two events overlap any more
        assert x.end <= y.start
    assert streamed == _suppress(streamed)


def test_match_events_counts_hits_misses_and_false_alarms():
    truth = [Event("a", 1.0, 2.0), Event("b", 5.0, 6.0), Event("a", 9.0, 10.0)]
    detected = [Event("a", 0.5, 2.2, 0.9), Event("a", 1.5, 2.5, 0.3),  # a duplicate
                Event("a", 4.9, 6.0, 0.5), Event("b", 12.0, 13.0, 0.5)]  # wrong word, nowhere
    r = match_events(detected, truth)
    assert (r["hits"], r["misses"], r["false_alarms"]) == (1, 2, 3)
    assert [e.keyword for e in r["missed"]] == ["b", "a"]


@pytest.fixture(scope="module")
def stream(keyword_spotter, keyword_clips, tmp_path_factory):
    """A bank of the three keywords and a long recording built from held-back clips of them
    (and of the unenrolled word) between stretches of noise: ``(bank path, wav path, truth)``."""
    from kws_proto.spot.bank import save_bank

    bank = keyword_spotter.new_bank()
    for name, paths in keyword_clips["keywords"].items():
        keyword_spotter.enroll(bank, name, paths[:5])
    rng = np.random.default_rng(0)
    names = list(keyword_clips["keywords"])
    order = [(name, keyword_clips["keywords"][name][5 + i]) for i in range(3) for name in names]
    order += [(None, p) for p in keyword_clips["unknown"][:3]]
    order = [order[i] for i in rng.permutation(len(order))]
    clips = keyword_spotter.load_clips([p for _, p in order])  # the loudest second of each
    parts, truth, t = [], [], 0.0
    for (name, _), clip in zip(order, clips):
        parts += [0.001 * rng.standard_normal(int(GAP * SR)).astype(np.float32), clip]
        t += GAP
        if name is not None:
            truth.append(Event(name, t, t + 1.0))
        t += 1.0
    parts.append(0.001 * rng.standard_normal(int(GAP * SR)).astype(np.float32))
    root = tmp_path_factory.mktemp("stream")
    sf.write(root / "stream.wav", np.concatenate(parts), SR, subtype="FLOAT")
    return save_bank(bank, root / "bank.npz"), root / "stream.wav", truth


def test_detect_finds_the_spoken_keywords_of_a_constructed_stream(stream, keyword_clips,
                                                                  trained_run_kind, capsys):
    bank, wav, truth = stream
    assert main(["detect", str(bank), str(wav), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    events = [Event(**e) for e in out["events"]]
    r = match_events(events, truth)
    with capsys.disabled():
        print(f"\n{keyword_clips['source']} / {trained_run_kind} encoder, {out['duration']:.1f} s "
              f"stream with {len(truth)} keywords and 3 unenrolled words: hits {r['hits']}, "
              f"misses {r['misses']}, false alarms {r['false_alarms']}; RTF {out['rtf']:.4f}")
    n = 12 * int((GAP + 1) * SR) + int(GAP * SR)  # samples: 12 words, 13 gaps
    assert out["duration"] == pytest.approx(n / SR, abs=1e-3)
    assert out["windows"] == 1 + -(-(n - SR) // 1600)  # 1 s windows every 100 ms, to the end
    assert all(0 <= e.start < e.end <= out["duration"] + 1 for e in events)
    assert r["hits"] >= len(truth) / 2
    # the 40-episode smoke encoder is weak: then only fewer false alarms than keywords
    assert r["false_alarms"] <= (len(truth) if trained_run_kind == "smoke" else len(truth) / 3)


def test_detect_text_output_and_bad_input(stream, tmp_path, capsys):
    bank, wav, _ = stream
    assert main(["detect", str(bank), str(wav), "--hop", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "real-time factor" in out and "windows" in out
    assert main(["detect", str(bank), str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # refused by the command line, naming the option
        main(["detect", str(bank), str(wav), "--hop", "0"])
    assert e.value.code == 2 and "argument --hop: '0'" in capsys.readouterr().err
    assert main(["detect", str(bank)]) == 2  # neither a file nor --mic
