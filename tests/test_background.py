"""An operating point in false alarms per hour: the rate rule, the background file, enrolment."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from kws_proto.cli import main
from kws_proto.errors import BankError, ConfigError
from kws_proto.spot.background import (Background, load_background, save_background,
                                       threshold_for_rate)
from kws_proto.spot.bank import load_bank

DATA = REPO / "tests" / "data"


def _hand_made():
    """60 windows 0.1 s apart, 1 s long, background distance 10; three groups of near windows:
    A (windows 0-3, d=1: 4 hits), B (20-22, d=2: 3 hits), C (40-41 at d=3 and 42 at d=4).
    Events (min_hits 3, max_gap 1): t in [1, 2): A; [2, 4): A, B (C has 2 hits under 4);
    [4, 10): A, B, C; t >= 10: every window, one event."""
    d = np.full(60, 10.0)
    d[0:4], d[20:23], d[40:42], d[42] = 1.0, 2.0, 3.0, 4.0
    return d


@pytest.mark.parametrize("rate, threshold, events, after", [
    (1.0, 1.0, 1, 2),  # one event an hour: A only; the next distance up (2) adds B
    (2.0, 3.0, 2, 3),  # two: A and B, up to C's third hit at 4
    (2.9, 3.0, 2, 3),  # the allowed events are floor(rate x hours)
    (0.5, None, 0, 1),  # none: a threshold under the smallest distance
])
def test_the_rate_rule_counts_events_as_the_detector_merges_them(rate, threshold, events, after):
    t, info = threshold_for_rate(_hand_made(), 1.0, rate, hop=0.1, window=1.0)
    if threshold is None:
        assert 0 < t < 1.0
    else:
        assert t == threshold
    assert info["events"] == events and info["achieved_fa_per_hour"] == events <= rate
    assert info["next_fa_per_hour"] == after > rate


def test_events_are_counted_per_file_and_through_the_level_gate():
    d = _hand_made()
    d[28:32] = 1.0  # four hits in a row, or two at the end of one file and two at the next's start
    t, info = threshold_for_rate(d, 1.0, 1.0, hop=0.1)
    assert t < 1.0 and info["events"] == 0  # at 1: A and 28-31
    t, info = threshold_for_rate(d, 1.0, 1.0, segments=np.repeat([0, 1], 30), hop=0.1)
    assert (t, info["events"]) == (1.0, 1)  # at 1: A; 28-29 and 30-31 are two hits each
    levels = np.zeros(60)
    levels[0:4] = -80.0  # A is silence to the detector
    t, info = threshold_for_rate(_hand_made(), 1.0, 1.0, levels=levels, hop=0.1)
    assert (t, info["events"]) == (3.0, 1)  # B; C needs its third hit at 4


def test_counting_by_stretches_is_counting_the_whole_file():
    from kws_proto.spot.background import count_events
    from kws_proto.spot.detect import merge_events

    rng = np.random.default_rng(0)
    d = rng.gamma(2.0, size=3000)  # [n]: hits of every density as t grows
    starts, loud = np.arange(3000) * 0.1, rng.random(3000) > 0.1
    for t in np.quantile(d, [0.01, 0.05, 0.2, 0.5, 0.8]):
        labels = np.where((d <= t) & loud, 0, -1)
        whole = merge_events(["k"], starts, labels, d / t, d, 1.0)
        assert count_events(d, t, starts, [slice(0, 3000)], loud, 1.0) == len(whole)


def test_a_background_that_cannot_reach_the_rate_is_refused():
    # at t >= 10 every window makes one event: no threshold gives more than 3
    with pytest.raises(ConfigError, match="too short for 3 false alarms per hour"):
        threshold_for_rate(_hand_made(), 1.0, 3.0, hop=0.1)


@pytest.mark.parametrize("rate", [0, -1.0, float("nan"), float("inf")])
def test_a_rate_that_is_not_positive_is_refused(rate):
    with pytest.raises(ConfigError, match=f"fa_per_hour={rate!r} must be a positive"):
        threshold_for_rate(_hand_made(), 1.0, rate)


@pytest.mark.parametrize("rate", [0, -5.0, float("nan")])
def test_enrolment_names_a_rate_that_is_not_positive_before_anything_else(rate):
    from kws_proto.spot.enrolment import enrol_keyword

    views = np.random.default_rng(0).normal(size=(3, 1, 8)).astype(np.float32)
    for background in (None, _background()):  # with a background or without, the rate is named
        with pytest.raises(ConfigError, match=f"fa_per_hour={rate!r} must be a positive"):
            enrol_keyword(views, "k", "abc", fa_per_hour=rate, background=background)


def test_enroll_names_a_rate_that_is_not_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["enroll", "default", "--bank", str(tmp_path / "b.npz"), "--keyword", "k", "a.wav",
              "--fa-per-hour", "0", "--background", "bg.npz"])
    assert e.value.code == 2
    assert "argument --fa-per-hour: '0'" in capsys.readouterr().err


def _background(fingerprint="ab" * 32) -> Background:
    rng = np.random.default_rng(0)
    return Background(rng.normal(size=(50, 8)).astype(np.float32), 0.25, "noise", fingerprint,
                      np.arange(50) * 0.1, np.repeat([0, 1], 25), rng.normal(-20, 5, 50),
                      features="abc")


def test_a_background_survives_a_round_trip_and_a_changed_byte_is_caught(tmp_path):
    bg = _background()
    path = save_background(bg, tmp_path / "bg.npz")
    back = load_background(path)
    for name in ("embeddings", "starts", "segments", "levels"):
        np.testing.assert_array_equal(getattr(back, name), getattr(bg, name))
    assert (back.hours, back.source, back.fingerprint, back.hop, back.window, back.features) == \
        (0.25, "noise", bg.fingerprint, 0.1, 1.0, "abc")
    with np.load(path) as z:
        arrays = dict(z)
    arrays["levels"] = arrays["levels"] + 1.0
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(BankError, match="checksum mismatch"):
        load_background(tmp_path / "edited.npz")
    with pytest.raises(BankError, match="no such background"):
        load_background(tmp_path / "missing.npz")


def test_a_background_of_another_encoder_is_refused():
    bg = _background("cd" * 32)
    with pytest.raises(BankError, match="background fingerprint cdcdcdcd.*this encoder abababab"):
        bg.check("ab" * 32)
    bg.check("cd" * 32, "abc")
    with pytest.raises(BankError, match="front end abc"):
        bg.check("cd" * 32, "xyz")


# -- real clips, the shipped encoder ---------------------------------------------------------
@pytest.fixture(scope="module")
def spotter():
    from kws_proto.spot.spotter import KeywordSpotter

    return KeywordSpotter.pretrained()


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Support clips of "computer" and a keyword-free background: a 30 s recording of other
    synthesised words between pauses, and the test data's digits and "jarvis" as short files."""
    pytest.importorskip("espeakng_loader", reason="synthesised speech needs eSpeak NG")
    import soundfile as sf

    from kws_proto.spot.synthetic import say, voice_settings

    root = tmp_path_factory.mktemp("speech")
    support = []
    for i, (_, y) in enumerate(say("computer", voice_settings(4, seed=1))):
        support.append(root / f"computer{i}.wav")
        sf.write(support[-1], y, 16000)
    pause = np.zeros(4000, np.float32)
    words = ["weather", "yesterday", "garden", "music", "window", "travel", "number", "paper"]
    said = [y for w in words for _, y in say(w, voice_settings(3, seed=2))]
    long = root / "background" / "talk.wav"
    long.parent.mkdir()
    sf.write(long, np.concatenate([np.concatenate([y, pause]) for y in said]), 16000)
    files = [long, *sorted((DATA / "fsdd").glob("*.wav")), *(DATA / "picovoice" / "jarvis").glob("*")]
    return support, files


def test_enrol_at_a_rate_fires_at_most_that_often_on_the_background(spotter, speech):
    support, files = speech
    bg = spotter.background(files)
    assert bg.fingerprint == spotter.fingerprint and math.isclose(
        bg.hours, sum(_seconds(f) for f in files) / 3600, rel_tol=1e-6)
    rate = 300.0
    bank = spotter.new_bank()
    kw = spotter.enroll(bank, "computer", support, fa_per_hour=rate, background=bg)
    cal = kw.calibration
    assert cal["fa_per_hour"] == rate and cal["background_hours"] == round(bg.hours, 6)
    assert cal["achieved_fa_per_hour"] <= rate < cal["next_fa_per_hour"]
    detected = sum(len(spotter.detect(bank, f).events) for f in files)
    budget = math.floor(rate * bg.hours)
    assert abs(detected - cal["events"]) <= 1 and detected <= budget + 1
    plain = spotter.enroll(spotter.new_bank(), "computer", support, norm=None)
    assert plain.calibration["rule"].endswith("mean leave-one-out distance")
    assert dataclasses.replace(kw, threshold=1.0).threshold == 1.0
    own = spotter.shipped_background  # without a background given, the rate is on the model's
    shipped = spotter.enroll(spotter.new_bank(), "computer", support, fa_per_hour=rate)
    assert shipped.norm is None and shipped.calibration["background"] == own.source
    assert shipped.calibration["achieved_fa_per_hour"] <= rate
    member = type(spotter).from_model("protores_synth")  # ships no background
    assert member.shipped_background is None
    with pytest.raises(ConfigError, match="needs a background"):
        member.enroll(member.new_bank(), "computer", support, fa_per_hour=rate)
    with pytest.raises(BankError, match="another encoder"):
        spotter.enroll(spotter.new_bank(), "computer", support, fa_per_hour=rate,
                       background=dataclasses.replace(bg, fingerprint="00" * 32))


def _seconds(path: Path) -> float:
    import soundfile as sf

    info = sf.info(path)
    return info.frames / info.samplerate


def test_the_background_and_enroll_commands(speech, tmp_path, capsys):
    support, files = speech
    out = tmp_path / "bg.npz"
    assert main(["background", "default", *map(str, files), "--out", str(out)]) == 0
    assert "windows" in capsys.readouterr().out
    assert load_background(out).hours > 0
    assert load_background(out).cohort_norm == "ratio"  # a new background's default enrolment
    auto = tmp_path / "auto.npz"  # enrolled by the default rule against it: by its mean
    assert main(["enroll", "default", "--bank", str(auto), "--keyword", "computer",
                 *map(str, support), "--background", str(out), "--context", "0"]) == 0
    assert load_bank(auto)["computer"].norm.method == "ratio"
    bank = tmp_path / "b.npz"
    assert main(["enroll", "default", "--bank", str(bank), "--keyword", "computer",
                 *map(str, support), "--fa-per-hour", "300", "--background", str(out)]) == 0
    assert "false alarms per hour" in capsys.readouterr().out
    assert load_bank(bank)["computer"].calibration["fa_per_hour"] == 300.0
    digits = sorted(map(str, (DATA / "fsdd").glob("*.wav")))  # each under 1.2 s
    assert main(["background", "default", *digits, "--out", str(out)]) == 0
    assert "in 4 recording(s)" in capsys.readouterr().out.replace("\n", " ")
    alone = load_background(out)
    assert main(["background", "default", *digits, "--out", str(out), "--join"]) == 0
    assert "in 1 recording(s)" in capsys.readouterr().out
    joined = load_background(out)
    assert set(joined.segments) == {0} and joined.source.endswith("(joined)")
    assert math.isclose(joined.hours, alone.hours, rel_tol=1e-9)
    assert len(joined) > len(alone)  # windows across the joins
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEfmt ")
    assert main(["background", "default", *digits, str(broken), "--out", str(out)]) == 2
    assert "broken.wav" in capsys.readouterr().err
    assert main(["background", "default", *digits, str(broken), "--out", str(out),
                 "--skip-unreadable"]) == 0
    assert load_background(out).source.endswith("(1 unreadable left out)")
    assert math.isclose(load_background(out).hours, alone.hours, rel_tol=1e-9)
    assert main(["enroll", "protores_synth", "--bank", str(tmp_path / "m.npz"), "--keyword",
                 "c2", *map(str, support), "--fa-per-hour", "300"]) == 2
