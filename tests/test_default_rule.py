"""The default enrolment: a keyword normalised against the background its model ships
(kws_proto.spot.enrolment, "The default rule"; kws_proto.spot.background, "A model's own
background")."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from kws_proto.cli import main
from kws_proto.errors import ConfigError
from kws_proto.eval.spot_eval import SharedModels
from kws_proto.eval.spot_variants import parse_variant
from kws_proto.publish import SHIPPED_LEVEL
from kws_proto.spot.background import (
    SHIPPED,
    Background,
    load_background,
    save_background,
    shipped_background,
)
from kws_proto.spot.bank import TWIN_VERSION, load_bank, save_bank
from kws_proto.spot.cohort import NORM_LEVEL, RATIO, SNORM, cohort_norm
from kws_proto.spot.context import CONTEXT_VIEWS, SHIPPED as NEIGHBOURS, load_neighbours
from kws_proto.spot.enrolment import AUTO, enrol_keyword, enrolment_rule

FP = "cd" * 32


def _background(seed: int) -> Background:
    e = np.random.default_rng(seed).normal(size=(50, 4)).astype(np.float32)
    return Background(e, 0.01, f"bg{seed}", FP)


# -- the rule --------------------------------------------------------------------------------
def test_auto_normalises_against_the_models_own_background_unless_another_rule_is_asked():
    own, given = _background(0), _background(1)
    for norm, bg, shipped, want in ((AUTO, None, own, own), (AUTO, given, None, given)):
        n, b = enrolment_rule(norm, bg, shipped, [])
        assert n == SNORM and b is want
    assert enrolment_rule(AUTO, None, None, []) == (None, None)  # a model that ships none
    for other in ({"threshold": 0.5}, {"negatives": ["a.wav"]}):
        assert enrolment_rule(AUTO, None, own, [], **other) == (None, None)
    n, b = enrolment_rule(AUTO, None, own, [], fa_per_hour=10.0)  # the rate, on raw distances
    assert n is None and b is own


def test_a_keyword_follows_the_bank_and_explicit_choices_are_kept():
    own = _background(0)
    normed = cohort_norm(np.arange(10.0), 5, FP, own.digest)
    assert enrolment_rule(AUTO, None, own, [None]) == (None, None)
    n, b = enrolment_rule(AUTO, None, own, [normed, normed])
    assert n == SNORM and b is own
    assert enrolment_rule(None, None, own, []) == (None, None)
    n, b = enrolment_rule(SNORM, None, own, [], threshold=0.3)  # by hand on the normalised scale
    assert n == SNORM and b is own


def test_a_background_names_the_normalisation_its_level_is_for(tmp_path):
    """The default rule normalises by the background's own normalisation at its level; another
    normalisation asked for gets the generic level, not one measured for something else."""
    bg = dataclasses.replace(_background(0), cohort_level=-3.5, cohort_norm=RATIO)
    back = load_background(save_background(bg, tmp_path / "r.npz"))
    assert (back.cohort_level, back.cohort_norm, back.norm_rule) == (-3.5, RATIO, RATIO)
    assert back.level(RATIO) == -3.5 and back.level(SNORM) == NORM_LEVEL
    n, b = enrolment_rule(AUTO, None, back, [])
    assert n == RATIO and b is back
    views = np.random.default_rng(1).normal(size=(4, 3, 4)).astype(np.float32)
    kw = enrol_keyword(views, "k", list("abcd"), norm=n, background=b)
    assert kw.norm.method == RATIO and kw.threshold == 2.0 ** -3.5
    other = enrol_keyword(views, "k", list("abcd"), norm=SNORM, background=b)
    assert other.threshold == 2.0 ** NORM_LEVEL
    old = _background(1)  # a background written before it named one: its level is s-norm's
    assert old.norm_rule == SNORM
    assert dataclasses.replace(old, cohort_level=-3.0).level(SNORM) == -3.0
    with pytest.raises(ConfigError, match="normalisation"):
        dataclasses.replace(old, cohort_norm="znorm")


def test_a_half_precision_background_reads_back_rounded(tmp_path):
    bg = _background(2)
    path = save_background(bg, tmp_path / "bg.npz", half=True)
    with np.load(path) as z:
        assert z["embeddings"].dtype == np.float16
    back = load_background(path)
    assert back.embeddings.dtype == np.float32
    np.testing.assert_array_equal(back.embeddings, bg.embeddings.astype(np.float16))
    assert back.digest != bg.digest  # named by what is read
    assert back.digest == load_background(save_background(back, tmp_path / "b2.npz")).digest
    assert back.cohort_level is None
    levelled = dataclasses.replace(bg, cohort_level=-3.5)
    assert load_background(save_background(levelled, tmp_path / "l.npz")).cohort_level == -3.5
    with pytest.raises(ConfigError, match="level"):
        dataclasses.replace(bg, cohort_level=float("nan"))
    big = Background(bg.embeddings * 1e6, bg.hours, bg.source, FP)
    with pytest.raises(ConfigError, match="does not fit in float16"):
        save_background(big, tmp_path / "big.npz", half=True)
    assert not (tmp_path / "big.npz").exists()


# -- the shipped default ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def default():
    from kws_proto.spot.spotter import KeywordSpotter

    return KeywordSpotter.pretrained()


def test_the_default_ships_its_own_background(default):
    path = shipped_background(default.model_dir)
    assert path is not None and path.name == SHIPPED
    with np.load(path) as z:
        assert z["embeddings"].dtype == np.float16
        stored = z["embeddings"].size * 2  # bytes of float16 embeddings
    assert path.stat().st_size < 1.05 * stored + 200_000  # the embeddings, little else
    assert path.stat().st_size < 16_000_000  # MB, not more: it lives in the repository
    bg = default.shipped_background
    bg.check(default.fingerprint, default.features.digest)  # embedded by this very model
    record = json.loads((default.model_dir / "record.json").read_text())["background"]
    assert record["digest"] == bg.digest and record["windows"] == len(bg)
    assert math.isclose(record["hours"], bg.hours, rel_tol=1e-5) and bg.hours > 0.1
    assert record["cohort_level"] == bg.cohort_level == SHIPPED_LEVEL
    assert bg.source.startswith("data/so762-split/centre")  # no benchmark's speakers
    assert len(bg) > 500  # more windows than the statistics take


def test_default_ships_the_neighbours_of_its_enrolment(default):
    clips = default.shipped_neighbours
    record = json.loads((default.model_dir / "record.json").read_text())["neighbours"]
    assert record["file"] == NEIGHBOURS and record["clips"] == len(clips) >= 100
    assert record["source"].startswith("data/so762-split/centre")  # no benchmark's speakers
    assert "speechocean762" in record["licence"]
    assert all(0.05 < len(c) / default.features.sample_rate <= 1.0 for c in clips)
    assert all(np.abs(c).max() > 0.5 for c in clips)  # speech, at full range
    with pytest.raises(ConfigError, match="8000 Hz"):
        load_neighbours(default.model_dir / NEIGHBOURS, 8000)


def test_enroll_normalises_by_default_and_a_bank_follows_its_keywords(default, keyword_clips,
                                                                      tmp_path):
    kw = keyword_clips["keywords"]
    first, second = list(kw)[:2]
    bank, own = default.new_bank(), default.shipped_background
    a = default.enroll(bank, first, kw[first][:5])
    assert a.norm is not None and a.norm.cohort == (default.fingerprint, own.digest)
    assert a.threshold == 2.0 ** own.cohort_level and own.cohort_level != NORM_LEVEL
    assert a.calibration["rule"] == f"cohort level z = {own.cohort_level:g}"
    at_two = default.enroll(default.new_bank(), first, kw[first][:5], level=NORM_LEVEL)
    assert at_two.threshold == 2.0 ** NORM_LEVEL and at_two.norm == a.norm
    near = np.sort(((own.embeddings.astype(np.float64) - a.prototype) ** 2).sum(axis=1))[:a.norm.top]
    assert math.isclose(a.norm.mu, near.mean(), rel_tol=1e-4)  # its nearest shipped windows
    one = default.enroll(bank, second, kw[second][:1])  # a cohort level needs no spread
    assert one.norm.digest == own.digest
    # each with its twin in context, its neighbours the ones the model ships
    assert a.twin.views == one.twin.views == CONTEXT_VIEWS and a.twin.norm.cohort == a.norm.cohort
    assert at_two.twin is not None
    assert load_bank(save_bank(bank, tmp_path / "b.npz")).header()["version"] == TWIN_VERSION
    plain = default.enroll(default.new_bank(), first, kw[first][:5], context=0)
    assert plain.twin is None
    np.testing.assert_array_equal(plain.prototype, a.prototype)
    raw = default.new_bank()
    default.enroll(raw, first, kw[first][:5], norm=None)
    follows = default.enroll(raw, second, kw[second][:5])
    assert follows.norm is None and follows.calibration["rule"].endswith("leave-one-out distance")
    assert follows.twin is None
    by_hand = default.enroll(default.new_bank(), first, kw[first][:5], threshold=0.3)
    assert by_hand.norm is None and by_hand.threshold == 0.3
    with pytest.raises(ConfigError, match="at least 2"):
        default.enroll(default.new_bank(), first, kw[first][:1], norm=None)


def test_the_enroll_command_chooses_the_rule(keyword_clips, tmp_path, capsys):
    kw = keyword_clips["keywords"]
    word = next(iter(kw))
    clips = [str(p) for p in kw[word][:3]]
    base = ["enroll", "default", "--keyword", word, *clips]
    assert main([*base, "--bank", str(tmp_path / "a.npz")]) == 0
    out = capsys.readouterr().out
    assert "normalised against data/so762-split/centre" in out and "twin in context (3 more" in out
    assert main([*base, "--bank", str(tmp_path / "b.npz"), "--norm", "none"]) == 0
    assert load_bank(tmp_path / "b.npz")[word].norm is None
    for bad, why in ((["--norm", "none", "--background", "x.npz"], "not for --norm none"),
                     (["--norm", "none", "--level", "-1"], "not of --norm none"),
                     (["--text", "--norm", "snorm"], "recorded clips only")):
        assert main([*base, "--bank", str(tmp_path / "c.npz"), *bad]) == 2
        assert why in capsys.readouterr().err
    assert not (tmp_path / "c.npz").exists()


def test_the_benchmark_takes_the_shipped_background_by_name(default):
    models = SharedModels(None, 0)
    v = parse_variant("default@norm=snorm,bg=shipped")
    assert v.name == "default@norm=snorm,bg=shipped"
    assert models.background_of(v).digest == default.shipped_background.digest
    with pytest.raises(ConfigError, match="ships no background"):
        models.background_of(parse_variant("protores_synth@norm=snorm,bg=shipped"))
