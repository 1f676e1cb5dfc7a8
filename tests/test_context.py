"""Keywords enrolled in context (kws_proto/spot/context.py): support clips said between other
words, through KeywordSpotter.enroll and `kws-proto enroll`, on the test encoder and real clips
(Picovoice when ../shared is there, else the built-in corpus's unseen words)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from kws_proto.errors import AudioError, ConfigError
from kws_proto.spot.bank import load_bank
from kws_proto.spot.context import context_views, draw_neighbours
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


def test_a_keyword_enrolled_in_context_moves_its_prototype_and_its_cut(keyword_spotter, words,
                                                                        background):
    support, others = words
    plain = keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                   background=background)
    ctx = keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                 background=background, context=3, neighbours=others)
    assert ctx.calibration["context_views"] == 3 and "context_views" not in plain.calibration
    assert not np.allclose(ctx.prototype, plain.prototype, atol=1e-4)
    # its clips' embeddings are the means of their 3 plain views and 3 in context: the plain
    # part is the plain keyword's support, so twice the context keyword's less it is the rest
    rest = 2 * ctx.support - plain.support
    assert not np.allclose(rest, plain.support, atol=1e-3)
    # cut looser by the shift, on the same cohort scale (larger accepts more)
    assert _level(ctx) == pytest.approx(_level(plain) + CONTEXT_SHIFT)
    assert ctx.threshold > plain.threshold
    given = keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                   background=background, context=3, neighbours=others, level=-2.5)
    assert _level(given) == -2.5
    again = keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                   background=background, context=3, neighbours=others)
    np.testing.assert_array_equal(again.prototype, ctx.prototype)  # one seed, one keyword
    other = keyword_spotter.enroll(keyword_spotter.new_bank(), "k", support, norm="snorm",
                                   background=background, context=3, neighbours=others, seed=1)
    assert not np.allclose(other.prototype, ctx.prototype, atol=1e-5)


def test_context_refuses_missing_or_unreadable_neighbours(keyword_spotter, words, background,
                                                          tmp_path):
    support, others = words
    bank = keyword_spotter.new_bank()
    with pytest.raises(ConfigError, match="needs at least 2 clips of other words"):
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
    assert load_bank(bank_path)["k"].calibration["context_views"] == 2
    refused = subprocess.run(cli("enroll", trained_run, *support, "--bank", tmp_path / "x.npz",
                                 "--keyword", "k", "--neighbours", folder),
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "--neighbours DIR is for --context" in refused.stderr
    assert not (tmp_path / "x.npz").exists()


def test_a_twin_keyword_accepts_a_window_when_either_of_its_prototypes_does(keyword_spotter, words,
                                                                             background):
    from kws_proto.eval.embedded import embed_recordings
    from kws_proto.eval.spot_eval import TrialBank

    support, others = words
    plain, ctx = keyword_spotter.new_bank(), keyword_spotter.new_bank()
    keyword_spotter.enroll(plain, "k", support, norm="snorm", background=background)
    keyword_spotter.enroll(ctx, "k", support, norm="snorm", background=background, context=3,
                           neighbours=others)
    clips = keyword_spotter.load_clips([*support[:2], *others[:4]])
    emb = embed_recordings(keyword_spotter, [clips.reshape(-1)], 0.1)
    d = TrialBank(plain, ctx).distances(emb)
    alone, in_context = emb.distances(plain), emb.distances(ctx)
    only = 0  # windows one prototype accepts and the other does not
    for factor in (0.5, 1.0, 2.0, 8.0):
        a, c = alone <= factor * plain.thresholds, in_context <= factor * ctx.thresholds
        np.testing.assert_array_equal(d <= factor * plain.thresholds, a | c)
        only += int((a != c).sum())
    assert only > 0
    assert np.all(d <= alone)  # never farther than the plain keyword
    np.testing.assert_array_equal(TrialBank(plain).distances(emb), alone)
