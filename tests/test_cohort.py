"""Per-keyword score normalisation against a cohort (s-norm): the statistics, the score scale,
enrolment on that scale, banks that keep it, and the benchmark's variants."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from kws_proto.audio.features import FeatureConfig
from kws_proto.errors import BankError, ConfigError
from kws_proto.eval.spot_variants import parse_variant
from kws_proto.spot.background import Background
from kws_proto.spot.bank import (NORMED_VERSION, VERSION, EncoderInfo, KeywordBank, load_bank,
                                 save_bank)
from kws_proto.spot.cohort import (RATIO, RATIO_UNIT, CohortNorm, cohort_norm, level_threshold,
                                   normalise, window_stats)
from kws_proto.spot.decision import keyword_distances
from kws_proto.spot.detect import decide_windows
from kws_proto.spot.enrolment import enrol_keyword

D = 6
FP = "ab" * 32


def _background(seed: int = 0, n: int = 400, fingerprint: str = FP) -> Background:
    rng = np.random.default_rng(seed)
    return Background(rng.normal(size=(n, D)).astype(np.float32), 0.5, f"noise {seed}",
                      fingerprint)


def _views(seed: int, centre: float, k: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (centre + 0.3 * rng.normal(size=(k, 3, D))).astype(np.float32)  # [k, S, d]


def _bank(fingerprint: str = FP) -> KeywordBank:
    enc = EncoderInfo(model="/runs/x", fingerprint=fingerprint, encoder="protores",
                      distance="euclidean", embedding_dim=D)
    return KeywordBank(enc, FeatureConfig())


def test_statistics_are_those_of_the_nearest_rows():
    d = np.array([9.0, 1.0, 7.0, 3.0, 2.0, 8.0])
    n = cohort_norm(d, 3, FP, "x")
    assert (n.mu, n.top) == (2.0, 3)
    assert math.isclose(n.sigma, math.sqrt(2 / 3), rel_tol=1e-12)
    assert cohort_norm(d, 50, FP, "x").top == 6  # all rows when fewer than top
    long = cohort_norm(d, 3, FP, "x", source="/a/file.wav, " * 1000).source
    assert len(long) < 300 and long.startswith("/a/file.wav") and "13000 characters" in long
    with pytest.raises(ConfigError, match="no spread"):
        cohort_norm(np.ones(10), 5, FP, "x")
    with pytest.raises(ConfigError, match="top"):
        cohort_norm(d, 1, FP, "x")


def test_the_ratio_unit_is_a_share_of_the_nearest_rows_mean():
    d = np.array([9.0, 1.0, 7.0, 3.0, 2.0, 8.0])
    n = cohort_norm(d, 3, FP, "x", method=RATIO)
    assert (n.mu, n.top, n.method) == (2.0, 3, RATIO)
    assert math.isclose(n.sigma, RATIO_UNIT * 2.0, rel_tol=1e-12)
    # z is the distance as a ratio of the mean, in units of RATIO_UNIT
    np.testing.assert_allclose(n.z(np.array([1.0, 2.0, 4.0])),
                               (np.array([0.5, 1.0, 2.0]) - 1) / RATIO_UNIT, rtol=1e-12)
    # for one keyword it orders distances as s-norm does
    s = cohort_norm(d, 3, FP, "x")
    probe = np.array([5.0, 0.5, 2.5, 1.5])
    np.testing.assert_array_equal(np.argsort(n.z(probe)), np.argsort(s.z(probe)))
    # a cohort that repeats one distance has a mean, so a ratio, but no deviation
    assert cohort_norm(np.full(10, 4.0), 5, FP, "x", method=RATIO).sigma > 0
    with pytest.raises(ConfigError, match="all 0"):
        cohort_norm(np.zeros(10), 5, FP, "x", method=RATIO)
    with pytest.raises(ConfigError, match="normalisation"):
        cohort_norm(d, 3, FP, "x", method="tnorm")
    assert CohortNorm.from_dict(n.to_dict()) == n
    with pytest.raises(BankError, match="normalisation"):
        CohortNorm.from_dict({**n.to_dict(), "method": "znorm"})


def test_a_common_factor_moves_every_keywords_z_cut_by_the_same_amount():
    a, b = CohortNorm(2.0, 0.5, 10, FP, "x"), CohortNorm(40.0, 8.0, 10, FP, "x")
    raw = np.array([[1.0, 20.0], [2.0, 40.0], [2.4, 60.0], [3.0, 30.0]])
    z = np.stack([a.z(raw[:, 0]), b.z(raw[:, 1])], axis=1)
    scores = normalise(raw, [a, b])
    assert np.all(np.diff(a.apply(np.sort(raw[:, 0]))) > 0)  # monotone in the distance
    for z0, factor in ((-1.0, 1.0), (-1.0, 2.0), (0.5, 0.25)):
        t = np.full(2, level_threshold(z0)) * factor
        np.testing.assert_array_equal(scores <= t, z <= z0 + math.log2(factor) + 1e-12)
    np.testing.assert_array_equal(normalise(raw, [None, None]), raw)
    assert np.isfinite(a.apply(1e9)) and a.apply(-1e9) >= 0  # clipped, never negative


def test_window_statistics_are_those_of_each_windows_nearest_cohort_rows():
    rng = np.random.default_rng(3)
    cohort = rng.standard_normal((40, 6)).astype(np.float32)
    windows = rng.standard_normal((7, 6)).astype(np.float32)
    mu, sigma = window_stats(windows, cohort, top=5, chunk=3)  # chunks of 3: 3 + 3 + 1 rows
    for i, w in enumerate(windows):  # each row's five nearest, by a loop over the cohort
        near = sorted(float(((w.astype(np.float64) - c) ** 2).sum()) for c in cohort)[:5]
        assert math.isclose(mu[i], np.mean(near), rel_tol=1e-5)
        assert math.isclose(sigma[i], np.std(near), rel_tol=1e-4)
    assert np.allclose(window_stats(windows, cohort, top=500)[0],  # all rows when fewer than top
                       ((windows[:, None].astype(np.float64) - cohort[None]) ** 2).sum(2).mean(1),
                       rtol=1e-5)
    with pytest.raises(ConfigError, match="top"):
        window_stats(windows, cohort, top=1)


def test_the_window_side_rejects_a_window_that_lies_near_much_of_the_cohort():
    """Symmetric s-norm: at the same keyword distance, a window whose own nearest cohort rows
    are nearer (a crowded part of the space) scores higher, so a threshold rejects it first;
    with the same window statistics everywhere it ranks windows as the keyword side alone."""
    a = CohortNorm(2.0, 0.5, 10, FP, "x")
    raw = np.array([[1.5], [1.5], [1.0], [2.5]])
    crowded = (np.array([1.0, 3.0, 3.0, 3.0]), np.full(4, 0.5))
    s = normalise(raw, [a], crowded)[:, 0]
    assert s[0] > s[1]  # same distance, the crowded window is the less keyword-like
    level = (np.array([3.0] * 4), np.full(4, 0.5))
    np.testing.assert_array_equal(np.argsort(normalise(raw, [a], level)[:, 0]),
                                  np.argsort(normalise(raw, [a])[:, 0], kind="stable"))
    with pytest.raises(BankError, match="every keyword normalised"):
        normalise(np.hstack([raw, raw]), [a, None], crowded)


def test_a_normalised_keyword_is_cut_at_a_cohort_level():
    bg, views = _background(), _views(1, 0.5)
    kw = enrol_keyword(views, "k", list("abcd"), norm="snorm", background=bg, top=50)
    raw = keyword_distances(_raw_bank(kw), bg.embeddings)[:, 0]
    near = np.sort(raw)[:50]
    assert kw.norm.mu == pytest.approx(near.mean()) and kw.norm.sigma == pytest.approx(near.std())
    assert kw.norm.fingerprint == FP and kw.norm.digest == bg.digest
    assert kw.threshold == 0.25 and kw.calibration["rule"] == "cohort level z = -2"
    z = (raw - kw.norm.mu) / kw.norm.sigma
    bank = _bank()
    bank.add(kw)
    np.testing.assert_array_equal(keyword_distances(bank, bg.embeddings)[:, 0] <= kw.threshold,
                                  z <= -2)  # accepted: two cohort deviations nearer
    assert enrol_keyword(views, "k", list("abcd"), norm="snorm", background=bg,
                         level=1.5).threshold == 2 ** 1.5
    plain = enrol_keyword(views, "k", list("abcd"))
    assert plain.norm is None and plain.threshold != pytest.approx(kw.threshold)
    with pytest.raises(ConfigError, match="needs a background"):
        enrol_keyword(views, "k", list("abcd"), norm="snorm")
    with pytest.raises(ConfigError, match="normalisation"):
        enrol_keyword(views, "k", list("abcd"), norm="tnorm", background=bg)
    with pytest.raises(ConfigError, match="for a normalised keyword"):
        enrol_keyword(views, "k", list("abcd"), level=-2)
    with pytest.raises(ConfigError, match="negatives"):
        enrol_keyword(views, "k", list("abcd"), bg.embeddings[:20], norm="snorm", background=bg)


def _raw_bank(kw):
    bank = _bank()
    bank.add(dataclasses.replace(kw, norm=None))
    return bank


def test_rate_rule_on_the_normalised_scale_accepts_the_same_windows():
    bg, views = _background(), _views(2, 0.2)
    raw = enrol_keyword(views, "k", list("abcd"), fa_per_hour=20, background=bg)
    normed = enrol_keyword(views, "k", list("abcd"), fa_per_hour=20, background=bg,
                           norm="snorm", top=50)
    d_raw = keyword_distances(_raw_bank(raw), bg.embeddings)[:, 0]
    bank = _bank()
    bank.add(normed)
    d_norm = keyword_distances(bank, bg.embeddings)[:, 0]
    np.testing.assert_array_equal(d_raw <= raw.threshold, d_norm <= normed.threshold)


def test_bank_keeps_the_statistics_and_decides_the_same_after_loading(tmp_path):
    bg = _background()
    bank = _bank()
    for i, name in enumerate(("near", "far")):
        bank.add(enrol_keyword(_views(i, 0.3 + 2 * i), name, list("abcd"), norm="snorm",
                               background=bg, top=40))
    path = save_bank(bank, tmp_path / "b.npz")
    again = load_bank(path)
    assert again.header()["version"] == NORMED_VERSION
    assert again.norms == bank.norms
    probe = np.random.default_rng(5).normal(size=(30, D)).astype(np.float32)
    np.testing.assert_array_equal(keyword_distances(again, probe), keyword_distances(bank, probe))
    probe[:3] = bank["far"].prototype  # within "far" only, on either bank
    labels, _, _ = decide_windows(keyword_distances(again, probe), None, again.thresholds, None)
    assert labels[:3].tolist() == [1, 1, 1]
    # a bank without normalisation is written and read as before
    plain = _bank()
    plain.add(enrol_keyword(_views(3, 0.3), "plain", list("abcd")))
    assert load_bank(save_bank(plain, tmp_path / "p.npz")).header()["version"] == VERSION
    assert load_bank(tmp_path / "p.npz").norms == [None]


def test_a_bank_refuses_another_cohort_another_encoders_cohort_and_mixing():
    bg, other = _background(0), _background(1)
    kw = enrol_keyword(_views(0, 0.3), "a", list("abcd"), norm="snorm", background=bg)
    bank = _bank()
    bank.add(kw)
    with pytest.raises(BankError, match="one cohort"):
        bank.add(enrol_keyword(_views(1, 1.0), "b", list("abcd"), norm="snorm", background=other))
    with pytest.raises(BankError, match="one cohort"):
        bank.add(enrol_keyword(_views(1, 1.0), "b", list("abcd")))
    foreign = enrol_keyword(_views(0, 0.3), "a", list("abcd"), norm="snorm",
                            background=_background(0, fingerprint="cd" * 32))
    with pytest.raises(BankError, match="another encoder"):
        _bank().add(foreign)
    raw_bank = _bank()
    raw_bank.add(enrol_keyword(_views(1, 1.0), "b", list("abcd")))
    with pytest.raises(BankError, match="one cohort"):
        raw_bank.add(kw)
    bank.add(dataclasses.replace(kw, threshold=3.0), replace=True)  # the same cohort: fine
    assert bank["a"].threshold == 3.0


def test_a_bank_keeps_one_unit_and_a_ratio_keyword_decides_the_same_after_loading(tmp_path):
    bg = _background()
    ratio = enrol_keyword(_views(0, 0.3), "a", list("abcd"), norm=RATIO, background=bg, top=40)
    assert ratio.norm.method == RATIO
    assert ratio.threshold == level_threshold(-2.0)  # the level is a z on the ratio's scale
    d = ((bg.embeddings.astype(np.float64) - ratio.prototype) ** 2).sum(axis=1)
    assert math.isclose(ratio.norm.mu, np.sort(d)[:40].mean(), rel_tol=1e-5)
    snormed = enrol_keyword(_views(1, 1.0), "b", list("abcd"), norm="snorm", background=bg)
    bank = _bank()
    bank.add(ratio)
    with pytest.raises(BankError, match="one way against one cohort"):
        bank.add(snormed)  # the same cohort, another unit: not comparable
    bank.add(enrol_keyword(_views(1, 1.0), "b", list("abcd"), norm=RATIO, background=bg))
    again = load_bank(save_bank(bank, tmp_path / "r.npz"))
    assert [n.method for n in again.norms] == [RATIO, RATIO] and again.norms == bank.norms
    probe = np.random.default_rng(6).normal(size=(20, D)).astype(np.float32)
    np.testing.assert_array_equal(keyword_distances(again, probe), keyword_distances(bank, probe))


def test_variants_parse_and_refuse_incomplete_settings(tmp_path):
    v = parse_variant(f"default@norm=snorm,bg={tmp_path}/bg.npz,level=-2,top=100")
    assert (v.norm, v.level, v.top) == ("snorm", -2.0, 100)
    assert v.name == "default@norm=snorm,bg=bg.npz,top=100,level=-2"
    assert parse_variant("default").name == "default"
    assert parse_variant("default@norm=snorm,bg=shipped,tnorm=200").name == \
        "default@norm=snorm,bg=shipped,tnorm=200"
    for bad, why in (("default@norm=snorm", "go together"), ("default@bg=x.npz", "go together"),
                     ("default@level=-2", "for norm"), ("default@norm=znorm,bg=x", "normalisation"),
                     ("default@norm=snorm,bg=x,top=1", "top"),
                     ("default@norm=snorm,bg=x,text=3", "text"),
                     ("default@norm=snorm,bg=x,negatives=5", "negatives"),
                     ("default@tnorm=100", "for norm"), ("default@norm=snorm,bg=x,tnorm=1", "tnorm"),
                     ("default@norm=snorm,bg=x,tnorm=100,score=maxcos", "tnorm")):
        with pytest.raises(ConfigError, match=why):
            parse_variant(bad)


# -- with the encoder on real speech -------------------------------------------------------------
@pytest.fixture(scope="module")
def fsdd_background(keyword_spotter, fsdd_dir, tmp_path_factory):
    """60 FSDD clips joined, embedded by the test encoder, saved: ``(Background, path)``."""
    from kws_proto.spot.background import build_background, save_background

    files = sorted(fsdd_dir.glob("*.wav"))[::50]
    bg = build_background(keyword_spotter, files, source="fsdd sample", join=True)
    return bg, save_background(bg, tmp_path_factory.mktemp("bg") / "fsdd.bg.npz")


def test_detect_with_a_normalised_bank_is_the_benchmarks_sweep(keyword_spotter, keyword_clips,
                                                               fsdd_background, tmp_path):
    from kws_proto.eval.spot_eval import events_at, score_windows

    if keyword_clips["source"] != "picovoice":
        pytest.skip("needs ../shared/data/picovoice")
    bg, _ = fsdd_background
    kw = keyword_clips["keywords"]
    bank = keyword_spotter.new_bank()
    for name in ("jarvis", "computer"):
        files = kw[name][:5]
        bank.add(enrol_keyword(keyword_spotter.embed_views(files), name, [f.name for f in files],
                               norm="snorm", background=bg, top=200))
    audio = np.concatenate([keyword_spotter.load_clip(kw["jarvis"][10]), np.zeros(8000),
                            keyword_spotter.load_clip(kw["computer"][10]), np.zeros(8000)])
    audio = audio.astype(np.float32)
    ws = score_windows(keyword_spotter, bank, audio, batch=16)
    found = keyword_spotter.detect(bank, audio).events
    assert found  # something to compare: the computer clip at least
    assert events_at(ws, bank, 1.0) == found
    again = load_bank(save_bank(bank, tmp_path / "b.npz"))
    assert keyword_spotter.detect(again, audio).events == found
    # what the bank decides on: each keyword's raw squared distance through its own statistics
    emb = np.asarray(keyword_spotter.embed(keyword_spotter.load_clips(kw["snowboy"][:4])))
    raw = ((emb[:, None, :].astype(np.float64) - bank.prototypes[None].astype(np.float64)) ** 2
           ).sum(axis=2)  # [4, 2]
    z = (raw - np.array([n.mu for n in bank.norms])) / np.array([n.sigma for n in bank.norms])
    np.testing.assert_allclose(keyword_distances(bank, emb), np.exp2(z), rtol=1e-4)


def test_spot_eval_scores_normalised_variants_on_the_same_trials(trained_run, picovoice_dir,
                                                                 fsdd_background):
    from kws_proto.eval.spot_eval import spot_eval

    _, path = fsdd_background
    model = str(trained_run)
    normed, level = f"{model}@norm=snorm,bg={path}", f"{model}@norm=snorm,bg={path},level=-1.5"
    both = f"{model}@norm=snorm,bg={path},tnorm=50"
    r = spot_eval(picovoice_dir, [model, normed, level, both], trials=2, keywords=2, shots=3,
                  words=8, seed=5, factors=(0.5, 2.0))
    assert [v.name for v in r.variants][0] == model and len(r.variants) == 4
    targets = [v.counts[:, :, 1].tolist() for v in r.variants]
    assert targets[0] == targets[1] == targets[2] == targets[3]  # the same trials
    for t in r.variants[2].per_trial:
        assert t["thresholds"] == [round(2 ** -1.5, 4)] * 2
    assert r.variants[1].per_trial[0]["thresholds"] == [0.25] * 2  # the default level, z = -2
    assert r.variants[3].per_trial[0]["thresholds"] == [0.25] * 2  # the window side: same cut
    # the stream's windows are embedded once for every variant of the model: a variant scored
    # alone counts what it counted beside the others
    alone = spot_eval(picovoice_dir, [both], trials=2, keywords=2, shots=3, words=8, seed=5,
                      factors=(0.5, 2.0))
    np.testing.assert_array_equal(alone.variants[0].counts, r.variants[3].counts)


def test_enroll_normalises_against_a_background_and_keeps_one_cohort_per_bank(
        trained_run, keyword_clips, fsdd_background, tmp_path, capsys):
    from kws_proto.cli import main

    _, path = fsdd_background
    kw, bank = keyword_clips["keywords"], tmp_path / "b.npz"
    base = ["enroll", str(trained_run), "--bank", str(bank)]
    assert main([*base, "--keyword", "jarvis", *map(str, kw["jarvis"][:5]), "--norm", "snorm",
                 "--background", str(path)]) == 0
    assert "normalised against fsdd sample" in capsys.readouterr().out
    assert main(["enroll", "--bank", str(bank), "--keyword", "computer",
                 *map(str, kw["computer"][:5]), "--norm", "snorm", "--background", str(path),
                 "--level", "-1"]) == 0
    loaded = load_bank(bank)
    assert loaded.thresholds.tolist() == [0.25, 0.5] and loaded.norms[0].source == "fsdd sample (joined)"
    assert loaded.header()["version"] == NORMED_VERSION
    # a raw keyword beside normalised ones; one that follows them without their background (the
    # test encoder ships none); --norm without a background, --level alone
    assert main(["enroll", "--bank", str(bank), "--keyword", "snowboy",
                 *map(str, kw["snowboy"][:5]), "--norm", "none"]) == 2
    assert "one cohort" in capsys.readouterr().err
    assert main(["enroll", "--bank", str(bank), "--keyword", "snowboy",
                 *map(str, kw["snowboy"][:5])]) == 2
    assert "needs a background" in capsys.readouterr().err
    assert main([*base, "--keyword", "snowboy", *map(str, kw["snowboy"][:5]), "--norm",
                 "snorm"]) == 2
    assert main([*base, "--keyword", "snowboy", *map(str, kw["snowboy"][:5]), "--level",
                 "-1"]) == 2
    assert load_bank(bank).names == ["jarvis", "computer"]


def test_spot_eval_context_variants_cut_looser_and_twins_decide_by_the_plain_cut(
        trained_run, picovoice_dir, fsdd_dir, fsdd_background):
    from kws_proto.eval.spot_eval import spot_eval
    from kws_proto.spot.enrolment import CONTEXT_SHIFT

    _, path = fsdd_background
    normed = f"{trained_run}@norm=snorm,bg={path}"
    r = spot_eval(picovoice_dir, [normed, f"{normed},context=2", f"{normed},context=2,twin=1",
                                  f"{normed},context=2,shift=0.5"],
                  trials=2, keywords=2, shots=3, words=8, seed=5, factors=(0.5, 2.0),
                  cohort=fsdd_dir)
    plain, ctx, twin, shifted = r.variants
    assert shifted.per_trial[0]["thresholds"] == [round(2 ** (-2 + 0.5), 4)] * 2
    assert plain.counts[:, :, 1].tolist() == ctx.counts[:, :, 1].tolist() == twin.counts[:, :, 1].tolist()
    assert ctx.per_trial[0]["thresholds"] == [round(2 ** (-2 + CONTEXT_SHIFT), 4)] * 2
    assert twin.per_trial[0]["thresholds"] == plain.per_trial[0]["thresholds"] == [0.25] * 2
