"""Keywords enrolled in context (kws_proto/spot/context.py): support clips said between other
words, through KeywordSpotter.enroll and `kws-proto enroll`, on the test encoder and real clips
(Picovoice when ../shared is there, else the built-in corpus's unseen words)."""

from __future__ import annotations

import dataclasses
import subprocess

import numpy as np
import pytest

from kws_proto.errors import AudioError, BankError, ConfigError
from kws_proto.spot.bank import TWIN_VERSION, Keyword, load_bank, save_bank
from kws_proto.spot.cohort import level_threshold
from kws_proto.spot.context import context_views, draw_neighbours
from kws_proto.spot.decision import keyword_distances
from kws_proto.spot.enrolment import CONTEXT_SHIFT
from tests.conftest import cli


@pytest.fixture(scope="module")
def words(keyword_clips):
    """``(support files, neighbour files)``: five clips of one keyword, eight of another."""
    kw = keyword_clips["keywords"]
    first, second = list(kw)[:2]
    return kw[first][:5], kw[second][:8]


@pytest.fixture(scope="module")
def background(keyword_spotter, keyword_clips):
    """The unenrolled word's clips joined and embedded: a cohort for normalised keywords."""
    return keyword_spotter.background(keyword_clips["unknown"][:10], join=True)


def _level(kw) -> float:
    """The cohort level ``z`` of a normalised keyword's calibration record."""
    return float(kw.calibration["rule"].rsplit("= ", 1)[1])


def test_context_views_put_each_clip_between_other_words(keyword_spotter, words):
    support, others = words
    clips, around = keyword_spotter.load_clips(support[:3]), keyword_spotter.load_clips(others[:6])
    views = context_views(keyword_spotter, clips, around, 2, seed=0)
    plain = np.asarray(keyword_spotter.embed(clips))
    assert views.shape == (3, 2, plain.shape[1])
    np.testing.assert_array_equal(views, context_views(keyword_spotter, clips, around, 2, seed=0))
    assert not np.allclose(views, context_views(keyword_spotter, clips, around, 2, seed=1),
                           atol=1e-3)  # the seed draws the neighbours and gaps
    assert not np.allclose(views[:, 0], plain, atol=1e-3)  # the neighbours changed the window
    assert not np.allclose(views[:, 0], views[:, 1], atol=1e-3)  # each view its own neighbours
    with pytest.raises(ConfigError, match="at least 2 neighbour clips"):
        context_views(keyword_spotter, clips, around[:1], 2)


def test_draw_neighbours_is_a_seeded_draw_of_at_most_n():
    paths = [f"w{i}.flac" for i in range(20)]
    drawn = draw_neighbours(paths, 5, seed=3)
    assert len(drawn) == len(set(drawn)) == 5 and set(drawn) <= set(paths)
    assert drawn == draw_neighbours(paths, 5, seed=3) and drawn != draw_neighbours(paths, 5, seed=4)
    assert sorted(draw_neighbours(paths, 50)) == sorted(paths)


def test_a_keyword_enrolled_in_context_gets_a_twin_beside_its_plain_prototype(
        keyword_spotter, words, background):
    support, others = words
    plain = keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                   background=background, context=0)
    bank = keyword_spotter.new_bank()
    kw = keyword_spotter.enroll(bank, "k", support, norm="snorm", background=background,
                                context=3, neighbours=others)
    assert plain.twin is None and kw.calibration["context_views"] == 3
    # the keyword itself is the plain one, cut at the same level
    np.testing.assert_array_equal(kw.prototype, plain.prototype)
    assert kw.threshold == plain.threshold and _level(kw) == _level(plain)
    twin = kw.twin
    assert twin.views == 3 and twin.shift == CONTEXT_SHIFT
    assert twin.norm.cohort == kw.norm.cohort
    assert not np.allclose(twin.prototype, kw.prototype, atol=1e-4)  # moved by the neighbours
    again = keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                   background=background, context=3, neighbours=others)
    np.testing.assert_array_equal(again.twin.prototype, twin.prototype)  # one seed, one twin
    other = keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                   background=background, context=3, neighbours=others, seed=1)
    assert not np.allclose(other.twin.prototype, twin.prototype, atol=1e-5)
    # a window is accepted when the keyword accepts it or its twin does, cut `shift` looser
    clips = keyword_spotter.load_clips([*support[:2], *others[:4]])
    emb = np.asarray(keyword_spotter.embed(clips))
    alone = keyword_distances(_bank_of(keyword_spotter, plain), emb)[:, 0]
    twin_alone = Keyword("k", twin.prototype, kw.support, kw.clips,
                         level_threshold(_level(kw) + twin.shift), {}, norm=twin.norm)
    in_context = keyword_distances(_bank_of(keyword_spotter, twin_alone), emb)[:, 0]
    both = keyword_distances(bank, emb)[:, 0]
    only = 0
    for factor in (0.5, 1.0, 2.0, 8.0, 64.0):
        a, c = alone <= factor * kw.threshold, in_context <= factor * twin_alone.threshold
        np.testing.assert_array_equal(both <= factor * kw.threshold, a | c)
        only += int((a != c).sum())
    assert only > 0 and np.all(both <= alone)


def _bank_of(spotter, keyword):
    bank = spotter.new_bank()
    bank.add(keyword)
    return bank


def test_the_context_rule_gives_twins_where_neighbours_are_and_follows_the_bank(
        keyword_spotter, words, background):
    support, others = words
    auto = keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                  background=background, neighbours=others)
    assert auto.twin is not None and auto.twin.views == 3
    # the test encoder ships no neighbours: none at hand, no twin
    assert keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                  background=background).twin is None
    assert keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, neighbours=others,
                                  norm=None).twin is None  # raw distances: the support rule
    plain = keyword_spotter.new_bank()
    keyword_spotter.enroll(plain, "a", support, norm="snorm", background=background, context=0)
    assert keyword_spotter.enroll(plain, "b", others[:5], norm="snorm", background=background,
                                  neighbours=support).twin is None  # as the bank's keywords
    twins = keyword_spotter.new_bank()
    keyword_spotter.enroll(twins, "a", support, norm="snorm", background=background,
                           neighbours=others)
    with pytest.raises(ConfigError, match="ships none"):  # follows them, and needs neighbours
        keyword_spotter.enroll(twins, "b", others[:5], norm="snorm", background=background)
    with pytest.raises(ConfigError, match="not by a rate"):
        keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, background=background,
                               fa_per_hour=10.0, norm="snorm", context=3, neighbours=others)


def test_a_bank_with_twins_reads_back_and_refuses_a_damaged_one(keyword_spotter, words,
                                                                background, tmp_path):
    support, others = words
    bank = keyword_spotter.new_bank()
    keyword_spotter.enroll(bank, "a", support, norm="snorm", background=background,
                           neighbours=others)
    keyword_spotter.enroll(bank, "b", others[:5], norm="snorm", background=background,
                           neighbours=support)
    path = save_bank(bank, tmp_path / "twins.npz")
    back = load_bank(path)
    assert back.header()["version"] == TWIN_VERSION
    for k in bank.names:
        np.testing.assert_array_equal(back[k].twin.prototype, bank[k].twin.prototype)
        assert back[k].twin.to_dict() == bank[k].twin.to_dict()
    emb = np.asarray(keyword_spotter.embed(keyword_spotter.load_clips(others[:3])))
    np.testing.assert_array_equal(keyword_distances(back, emb), keyword_distances(bank, emb))
    with np.load(path) as z:
        parts = {m: z[m] for m in z.files}
    parts["twins"] = parts["twins"] + np.float32(1e-3)
    np.savez(tmp_path / "edited.npz", **parts)
    with pytest.raises(BankError, match="checksum"):
        load_bank(tmp_path / "edited.npz")
    looser = dataclasses.replace(bank["a"], threshold=2 * bank["a"].threshold)
    assert looser.twin is bank["a"].twin  # one scalar still sets how permissive it is


def test_context_refuses_missing_or_unreadable_neighbours(keyword_spotter, words, background,
                                                          tmp_path):
    support, others = words
    bank = keyword_spotter.new_bank()
    with pytest.raises(ConfigError, match="needs at least 2 clips of other words"):
        keyword_spotter.enroll(bank, "k", support, norm="snorm", background=background, context=2,
                               neighbours=others[:1])
    with pytest.raises(ConfigError, match="ships none"):
        keyword_spotter.enroll(bank, "k", support, norm="snorm", background=background, context=2)
    with pytest.raises(ConfigError, match="context=-1"):
        keyword_spotter.enroll(bank, "k", support, norm="snorm", background=background, context=-1)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEnot audio at all")
    with pytest.raises(AudioError, match="broken.wav"):
        keyword_spotter.enroll(bank, "k", support, norm="snorm", background=background, context=2,
                               neighbours=[*others[:3], broken])
    assert len(bank) == 0  # nothing enrolled


def test_enroll_cli_with_context(trained_run, words, background, tmp_path):
    from kws_proto.spot.background import save_background

    support, others = words
    folder = tmp_path / "others"
    folder.mkdir()
    for f in others:
        (folder / f.name).symlink_to(f.resolve())
    bg = save_background(background, tmp_path / "bg.npz")
    bank_path = tmp_path / "ctx.npz"
    done = subprocess.run(cli("enroll", trained_run, *support, "--bank", bank_path, "--keyword",
                              "k", "--norm", "snorm", "--background", bg, "--context", "2",
                              "--neighbours", folder), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert load_bank(bank_path)["k"].twin.views == 2
    refused = subprocess.run(cli("enroll", trained_run, *support, "--bank", tmp_path / "x.npz",
                                 "--keyword", "k", "--neighbours", folder, "--context", "0"),
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "--neighbours DIR is for views in context" in refused.stderr
    assert not (tmp_path / "x.npz").exists()


def test_neighbours_keep_the_speech_of_each_clip_and_refuse_a_broken_file(keyword_spotter, words,
                                                                          tmp_path):
    from kws_proto.audio.neighbours import speech_extent
    from kws_proto.spot.context import load_neighbours, save_neighbours

    _, others = words
    clips = keyword_spotter.load_clips(others[:4])
    rate = keyword_spotter.features.sample_rate
    path = save_neighbours(clips, rate, tmp_path / "n.npz", "four clips")
    back = load_neighbours(path, rate)
    assert [len(b) for b in back] == [int(np.subtract(*speech_extent(c)[::-1])) for c in clips]
    for b, c in zip(back, clips):  # the same speech at full range, to 16-bit rounding
        speech = c[slice(*speech_extent(c))]
        np.testing.assert_allclose(b, speech / np.abs(speech).max(), atol=2e-4)
    (tmp_path / "bad.npz").write_text("not a neighbours file")
    with pytest.raises(ConfigError, match="bad.npz"):
        load_neighbours(tmp_path / "bad.npz", rate)
    with pytest.raises(ConfigError, match="at least 2 clips"):
        save_neighbours(clips[:1], rate, tmp_path / "one.npz", "one")
    assert not (tmp_path / "one.npz").exists()


def test_a_bank_refuses_a_twin_of_another_cohort_or_size(keyword_spotter, words, background):
    support, others = words
    kw = keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                background=background, context=2, neighbours=others)
    elsewhere = dataclasses.replace(kw.twin.norm, digest="ab" * 32)
    for twin, why in ((dataclasses.replace(kw.twin, norm=elsewhere), "same cohort"),
                      (dataclasses.replace(kw.twin, prototype=kw.twin.prototype[:-1]), "dim")):
        with pytest.raises(BankError, match=why):
            keyword_spotter.new_bank().add(dataclasses.replace(kw, twin=twin))
    with pytest.raises(BankError, match="same cohort"):  # a twin beside raw distances
        keyword_spotter.new_bank().add(dataclasses.replace(kw, norm=None))
