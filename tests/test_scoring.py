"""The scoring rules of a bank: ``prototype`` (squared distance to the mean support) and
``maxcos`` (cosine distance to the nearest support), their thresholds, how banks store the rule,
and enrolment refusing supports that are all alike."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest

from kws_proto.audio.features import FeatureConfig
from kws_proto.errors import BankError, ConfigError
from kws_proto.eval.spot_variants import Variant, parse_variant
from kws_proto.spot.background import Background, threshold_for_rate
from kws_proto.spot.bank import EncoderInfo, KeywordBank, load_bank, save_bank
from kws_proto.spot.decision import (calibrate_maxcos, decide, keyword_distances,
                                     nearest_cosine_distances)
from kws_proto.spot.enrolment import enrol_keyword

D = 4


def _bank() -> KeywordBank:
    enc = EncoderInfo(model="/runs/x", fingerprint="ab" * 32, encoder="protores",
                      distance="euclidean", embedding_dim=D)
    return KeywordBank(enc, FeatureConfig())


def _unit(deg: float) -> list[float]:
    r = np.deg2rad(deg)
    return [float(np.cos(r)), float(np.sin(r)), 0.0, 0.0]


# -- the distance ---------------------------------------------------------------------------------
def test_nearest_cosine_distance_by_hand():
    support = np.array([[2.0, 0, 0, 0], [0, 3.0, 0, 0]])  # lengths do not matter
    e = np.array([[1.0, 0, 0, 0], [1.0, 1.0, 0, 0], [-1.0, 0, 0, 0], [0, 0, 5.0, 0],
                  [0, 0, 0, 0]])
    got = nearest_cosine_distances(e, support)
    np.testing.assert_allclose(got, [0.0, 1 - np.sqrt(0.5), 1.0, 1.0, 1.0], atol=1e-12)


def test_a_maxcos_bank_scores_by_the_nearest_support_not_the_prototype():
    bank = _bank()
    # the two supports point at 0 and 90 degrees: the prototype points at 45
    views = np.array([_unit(0), _unit(90)], np.float32)[:, None, :]
    bank.add(enrol_keyword(views, "k", ["a", "b"], threshold=0.05, score="maxcos"))
    e = np.array([_unit(0), _unit(45), _unit(85)], np.float32)
    d = keyword_distances(bank, e)[:, 0]
    np.testing.assert_allclose(d, [0.0, 1 - np.cos(np.deg2rad(45)), 1 - np.cos(np.deg2rad(5))],
                               atol=1e-6)
    # by the prototype rule the 45-degree clip would be the nearest; here it is rejected
    assert decide(d[:, None], np.array([0.05])).tolist() == [0, -1, 0]
    # larger accepts more: the same keyword rebuilt with a larger threshold takes it
    wide = _bank()
    wide.add(dataclasses.replace(bank["k"], threshold=0.3))
    assert decide(keyword_distances(wide, e), wide.thresholds).tolist() == [0, 0, 0]


def test_the_prototype_rule_is_unchanged_by_default():
    bank = _bank()
    rng = np.random.default_rng(0)
    views = rng.normal(size=(4, 3, D)).astype(np.float32)
    kw = enrol_keyword(views, "k", list("abcd"))
    bank.add(kw)
    e = rng.normal(size=(5, D)).astype(np.float32)
    expected = ((e.astype(np.float64) - kw.prototype.astype(np.float64)) ** 2).sum(axis=1)
    np.testing.assert_allclose(keyword_distances(bank, e)[:, 0], expected, rtol=1e-6)
    assert kw.score == "prototype" and bank.score == "prototype"


# -- the threshold --------------------------------------------------------------------------------
def test_maxcos_threshold_is_the_margin_times_the_leave_one_out_cosine_distance():
    # three clips at 0, 20 and 50 degrees, one view each: each clip's nearest other is 20, 20, 30
    # degrees away
    views = np.array([_unit(0), _unit(20), _unit(50)], np.float32)[:, None, :]
    loo = 1 - np.cos(np.deg2rad([20, 20, 30]))
    t, info = calibrate_maxcos(views, margin=1.25)
    assert t == pytest.approx(1.25 * loo.mean(), rel=1e-5)
    np.testing.assert_allclose(info["loo"], loo, atol=1e-6)
    # negatives at 10 and 70 degrees from the nearest clip cap it at their 0.5-quantile
    neg = np.array([_unit(-10), _unit(120)], np.float32)
    t, info = calibrate_maxcos(views, neg, margin=1.25, quantile=0.5)
    cap = np.quantile(1 - np.cos(np.deg2rad([10, 70])), 0.5)
    assert t == pytest.approx(min(1.25 * loo.mean(), cap), rel=1e-5)
    assert info["negatives"] == 2 and "quantile" in info["rule"]


def test_maxcos_views_are_measured_against_the_other_clips_mean_views():
    # clip 0 has views at -10 and +10 degrees (its embedding points at 0), clip 1 at 40
    views = np.array([[_unit(-10), _unit(10)], [_unit(40), _unit(40)]], np.float32)
    expected = np.mean([1 - np.cos(np.deg2rad(50)), 1 - np.cos(np.deg2rad(30))])  # clip 0's views
    t, info = calibrate_maxcos(views, margin=1.0)
    assert info["loo"][0] == pytest.approx(expected, abs=1e-6)
    assert info["loo"][1] == pytest.approx(1 - np.cos(np.deg2rad(40)), abs=1e-6)


def test_maxcos_at_a_rate_uses_the_cosine_distances_of_the_background():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(400, D)).astype(np.float32)
    segments = np.repeat(np.arange(50), 8)  # 50 files of 8 windows
    starts = np.tile(np.arange(8) * 0.1, 50)
    bg = Background(emb, 0.5, "noise", "ab" * 32, starts, segments)
    support = np.array([_unit(0), _unit(30)], np.float32)
    views = support[:, None, :]
    kw = enrol_keyword(views, "k", ["a", "b"], fa_per_hour=20, background=bg, score="maxcos")
    expected, info = threshold_for_rate(nearest_cosine_distances(emb, support), 0.5, 20, starts,
                                        segments)
    assert info["events"] > 0
    assert kw.threshold == expected and kw.score == "maxcos"
    proto = enrol_keyword(views, "k", ["a", "b"], fa_per_hour=20, background=bg)
    assert proto.threshold != kw.threshold


def test_maxcos_takes_no_weights_and_an_unknown_rule_is_named():
    views = np.array([_unit(0), _unit(30)], np.float32)[:, None, :]
    with pytest.raises(ConfigError, match="takes no prototype weights"):
        enrol_keyword(views, "k", ["a", "b"], weights=np.ones(2), score="maxcos")
    with pytest.raises(ConfigError, match="score='cosine'"):
        enrol_keyword(views, "k", ["a", "b"], score="cosine")


# -- banks ----------------------------------------------------------------------------------------
def _header(path) -> dict:
    with zipfile.ZipFile(path) as z, z.open("header.npy") as f:
        return json.loads(np.lib.format.read_array(f).tobytes().decode("utf-8"))


def test_a_maxcos_bank_round_trips_and_a_prototype_bank_is_written_as_before(tmp_path):
    views = np.array([_unit(0), _unit(30)], np.float32)[:, None, :]
    bank = _bank()
    bank.add(enrol_keyword(views, "k", ["a", "b"], score="maxcos"))
    back = load_bank(save_bank(bank, tmp_path / "m.npz"))
    assert back.score == "maxcos" and back["k"].threshold == bank["k"].threshold
    assert _header(tmp_path / "m.npz")["version"] == 2  # a reader of version 1 refuses it
    plain = _bank()
    plain.add(enrol_keyword(views, "k", ["a", "b"]))
    h = _header(save_bank(plain, tmp_path / "p.npz"))
    assert h["version"] == 1 and "score" not in h["keywords"][0]  # as banks were always written
    assert load_bank(tmp_path / "p.npz").score == "prototype"


def test_one_bank_holds_one_scoring_rule():
    views = np.array([_unit(0), _unit(30)], np.float32)[:, None, :]
    bank = _bank()
    bank.add(enrol_keyword(views, "one", ["a", "b"], score="maxcos"))
    with pytest.raises(BankError, match="'two' scores by 'prototype'.*\\(one\\) by 'maxcos'"):
        bank.add(enrol_keyword(views, "two", ["a", "b"]))
    bank.add(enrol_keyword(views, "one", ["a", "b"]), replace=True)  # its only keyword
    assert bank.score == "prototype"


# -- alike supports -------------------------------------------------------------------------------
@pytest.mark.parametrize("score", ["prototype", "maxcos"])
def test_supports_that_are_all_alike_are_refused_naming_the_keyword(score):
    one = np.array([[_unit(10), _unit(12), _unit(8)]], np.float32)  # one clip's three views
    views = np.repeat(one, 5, axis=0)  # the same clip five times
    with pytest.raises(ConfigError, match="keyword 'jarvis': its 5 support clips \\(a.wav\\) "
                                          "are all alike"):
        enrol_keyword(views, "jarvis", ["a.wav"] * 5, score=score)
    # a threshold by hand does not need a spread
    assert enrol_keyword(views, "jarvis", ["a.wav"] * 5, threshold=0.1, score=score).threshold == 0.1
    # clips that differ are fine
    views[1] += 0.01
    enrol_keyword(views, "jarvis", ["a.wav"] * 5, score=score)


# -- the benchmark's variants ---------------------------------------------------------------------
def test_a_maxcos_variant_is_parsed_named_and_checked():
    v = parse_variant("gse@score=maxcos")
    assert v == Variant("gse", score="maxcos") and v.name == "gse@score=maxcos"
    assert Variant("gse").name == "gse"
    with pytest.raises(ConfigError, match="score='cos' is not a scoring rule"):
        parse_variant("gse@score=cos")
    with pytest.raises(ConfigError, match="text and confusables enrol with the prototype rule"):
        parse_variant("default@text=4,score=maxcos")


# -- through the spotter and the command line -----------------------------------------------------
def test_maxcos_through_enroll_classify_and_detect(trained_run, keyword_spotter, keyword_clips,
                                                   tmp_path, capsys):
    from kws_proto.cli import main
    from kws_proto.eval.spot_eval import events_at, score_windows

    bank_path = tmp_path / "m.npz"
    (a, pa), (b, pb), (c, pc) = list(keyword_clips["keywords"].items())[:3]
    assert main(["enroll", str(trained_run), "--bank", str(bank_path), "--keyword", a,
                 *map(str, pa[:5]), "--score", "maxcos"]) == 0
    assert main(["enroll", "--bank", str(bank_path), "--keyword", b, *map(str, pb[:5])]) == 0
    assert main(["enroll", "--bank", str(bank_path), "--keyword", c, *map(str, pc[:5]),
                 "--score", "prototype"]) == 2  # the bank's rule is maxcos
    assert f"'{c}' scores by 'prototype'" in capsys.readouterr().err
    bank = load_bank(bank_path)
    assert bank.score == "maxcos" and bank.names == [a, b]
    assert "max-cosine" in bank[a].calibration["rule"] and 0 < bank[a].threshold < 2

    held = [pa[-1], pb[-1]]
    emb = keyword_spotter.embed_files(held)
    want = np.stack([nearest_cosine_distances(emb, k.support) for k in bank.keywords], axis=1)
    got = keyword_spotter.classify(bank, held)
    for row, r in zip(want, got):  # an accepted clip's distance, or the nearest keyword's
        chosen = bank.names.index(r.keyword if r.keyword != "unknown" else r.nearest)
        assert r.distance == pytest.approx(row[chosen], rel=1e-5, abs=1e-6)
        assert (r.keyword != "unknown") == bool((row <= bank.thresholds).any())

    # the benchmark's sweep at factor 1 is the spotter's detect, by this rule too
    import soundfile as sf
    import soxr

    parts = [np.zeros(16000, np.float32)]
    for p in (pa[-2], pb[-2], keyword_clips["unknown"][0]):
        y, sr = sf.read(p, dtype="float32")
        parts += [soxr.resample(y, sr, 16000).astype(np.float32) if sr != 16000 else y,
                  np.zeros(8000, np.float32)]
    audio = np.concatenate(parts)
    ws = score_windows(keyword_spotter, bank, audio, batch=16)
    assert events_at(ws, bank, 1.0) == keyword_spotter.detect(bank, audio).events
    wide = keyword_spotter.new_bank()  # thresholds doubled: the sweep's factor 2
    for k in bank.keywords:
        wide.add(dataclasses.replace(k, threshold=2 * k.threshold))
    events = keyword_spotter.detect(wide, audio).events
    assert events and events_at(ws, bank, 2.0) == events
    assert {e.keyword for e in events} & {a, b}  # a keyword played in the audio is found


def test_the_same_clip_five_times_is_refused_naming_the_keyword(keyword_spotter, keyword_clips):
    clip = list(keyword_clips["keywords"].values())[0][0]
    bank = keyword_spotter.new_bank()
    with pytest.raises(ConfigError, match=f"keyword 'hey': its 5 support clips \\({clip.name}\\) "
                                          "are all alike"):
        keyword_spotter.enroll(bank, "hey", [clip] * 5)
    assert len(bank) == 0
    kw = keyword_spotter.enroll(bank, "hey", [clip] * 5, threshold=2.0)  # by hand: allowed
    assert kw.threshold == 2.0
