"""Episode sampler invariants: classes, disjointness, speakers, seeds, extras, errors, saving."""

from __future__ import annotations

import numpy as np
import pytest

from kws_proto.data.dataset import Clip, Manifest
from kws_proto.data.episodes import (
    SILENCE,
    SILENCE_CLASS,
    UNKNOWN_CLASS,
    EpisodeSampler,
)
from kws_proto.errors import ConfigError, DatasetError

WORDS = [f"w{i}" for i in range(8)]


def make_manifest(tmp_path, clips_per_speaker: dict[str, dict[str, int]] | None = None) -> Manifest:
    """Manifest of ``{keyword: {speaker: n_clips}}`` (default: 8 words x 6 speakers x 3 clips)."""
    spec = clips_per_speaker or {w: {f"s{j}": 3 for j in range(6)} for w in WORDS}
    clips = [
        Clip(f"{w}/{s}_{n}.wav", w, s, 1.0, 16000)
        for w, speakers in spec.items()
        for s, count in speakers.items()
        for n in range(count)
    ]
    return Manifest(root=tmp_path, clips=clips)


def keywords_of(manifest: Manifest, rows: np.ndarray) -> set[str]:
    return {manifest.clips[i].keyword for i in np.ravel(rows)}


def speakers_of(manifest: Manifest, rows: np.ndarray) -> set[str]:
    return {manifest.clips[i].speaker for i in np.ravel(rows)}


@pytest.mark.parametrize("n_way,k_shot,n_query", [(2, 1, 1), (5, 5, 5), (8, 1, 15)])
@pytest.mark.parametrize("speaker_disjoint", [False, True])
def test_episode_invariants(tmp_path, n_way, k_shot, n_query, speaker_disjoint):
    m = make_manifest(tmp_path)
    classes = WORDS[:7] if n_way < 8 else WORDS
    sampler = EpisodeSampler(m, classes, n_way, k_shot, n_query, seed=3,
                             speaker_disjoint=speaker_disjoint)
    for e in sampler.episodes(0, 40):
        assert len(set(e.classes)) == n_way and set(e.classes) <= set(classes)
        assert e.support.shape == (n_way, k_shot) and e.query.shape == (n_way, n_query)
        assert e.support.dtype == np.int64
        rows = np.concatenate([e.support.ravel(), e.query.ravel()])
        assert len(np.unique(rows)) == len(rows), "a clip is used twice in one episode"
        for c, name in enumerate(e.classes):
            assert keywords_of(m, e.support[c]) == {name} == keywords_of(m, e.query[c])
            if speaker_disjoint:
                assert not speakers_of(m, e.support[c]) & speakers_of(m, e.query[c])


def test_without_speaker_disjoint_speakers_do_meet(tmp_path):
    """The data allows overlapping speakers, so the disjoint test above tests the sampler."""
    m = make_manifest(tmp_path)
    sampler = EpisodeSampler(m, WORDS, 5, 5, 5, seed=0)
    overlaps = [
        bool(speakers_of(m, e.support[c]) & speakers_of(m, e.query[c]))
        for e in sampler.episodes(0, 10) for c in range(e.n_way)
    ]
    assert any(overlaps)


def test_speaker_disjoint_with_one_dominant_speaker(tmp_path):
    """Uniform support clips would nearly always take the big speaker and leave too few query
    clips; the exact speaker split must still find the only valid partitions."""
    spec = {w: {"big": 30, "a": 1, "b": 1, "c": 1, "d": 1, "e": 1} for w in WORDS[:3]}
    m = make_manifest(tmp_path, spec)
    sampler = EpisodeSampler(m, WORDS[:3], 3, 5, 5, seed=1, speaker_disjoint=True)
    for e in sampler.episodes(0, 30):
        for c in range(3):
            s, q = speakers_of(m, e.support[c]), speakers_of(m, e.query[c])
            assert not s & q
            assert "big" in s | q  # five small speakers cannot fill 5 + 5 clips


def test_impossible_speaker_split_names_the_class(tmp_path):
    spec = {w: {f"s{j}": 3 for j in range(6)} for w in WORDS[:3]}
    spec["solo"] = {"only": 20}
    m = make_manifest(tmp_path, spec)
    EpisodeSampler(m, [*WORDS[:3], "solo"], 3, 2, 2, speaker_disjoint=False)
    with pytest.raises(DatasetError, match=r"'solo'.*1 speaker"):
        EpisodeSampler(m, [*WORDS[:3], "solo"], 3, 2, 2, speaker_disjoint=True)


def test_speaker_disjoint_needs_known_speakers(tmp_path):
    spec = {w: {f"s{j}": 3 for j in range(6)} for w in WORDS[:3]}
    spec["anon"] = {"": 10}
    m = make_manifest(tmp_path, spec)
    with pytest.raises(DatasetError, match=r"'anon'.*10 of 10 clips have no speaker"):
        EpisodeSampler(m, [*WORDS[:3], "anon"], 2, 1, 1, speaker_disjoint=True)


def test_same_seed_same_episodes_and_resume(tmp_path):
    m = make_manifest(tmp_path)
    a = list(EpisodeSampler(m, WORDS, 5, 2, 3, seed=7).episodes(0, 20))
    b = EpisodeSampler(m, WORDS, 5, 2, 3, seed=7)
    assert a == list(b.episodes(0, 20))
    assert b.sample(13) == a[13]  # episode i depends only on (seed, i): exact resume
    assert list(b.episodes(15, 20)) == a[15:]


def test_different_seed_or_index_gives_different_episodes(tmp_path):
    m = make_manifest(tmp_path)
    a = list(EpisodeSampler(m, WORDS, 5, 2, 3, seed=7).episodes(0, 20))
    b = list(EpisodeSampler(m, WORDS, 5, 2, 3, seed=8).episodes(0, 20))
    assert sum(x.classes == y.classes and np.array_equal(x.support, y.support)
               for x, y in zip(a, b)) == 0
    assert len({tuple(e.support.ravel()) for e in a}) == 20


def test_every_class_and_clip_gets_drawn(tmp_path):
    m = make_manifest(tmp_path)
    sampler = EpisodeSampler(m, WORDS, 3, 2, 2, seed=0)
    used = np.concatenate([np.r_[e.support.ravel(), e.query.ravel()]
                           for e in sampler.episodes(0, 200)])
    assert set(np.unique(used)) == set(range(len(m)))


def test_too_small_class_is_named_with_its_count(tmp_path):
    spec = {w: {f"s{j}": 3 for j in range(6)} for w in WORDS[:4]}
    spec["rare"] = {"s0": 2, "s1": 2}
    m = make_manifest(tmp_path, spec)
    with pytest.raises(DatasetError, match=r"need 6 clips.*'rare' \(4 clips\)"):
        EpisodeSampler(m, [*WORDS[:4], "rare"], 2, 1, 5)
    EpisodeSampler(m, [*WORDS[:4], "rare"], 2, 1, 3)  # 4 clips are enough for 1 + 3
    pooled = r"'_unknown_' \(4 clips\) \('_unknown_' pools \['rare'\]"
    with pytest.raises(DatasetError, match=pooled):
        EpisodeSampler(m, WORDS[:4], 2, 1, 5, unknown_classes=["rare"])


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(n_way=9), ConfigError, r"n_way=9 exceeds the 8 classes"),
        (dict(n_way=0), ConfigError, r"n_way=0 must be an integer >= 1"),
        (dict(k_shot=0), ConfigError, r"k_shot=0"),
        (dict(n_query=-1), ConfigError, r"n_query=-1"),
        (dict(seed=-2), ConfigError, r"seed=-2 must be an integer >= 0"),
        (dict(classes=[]), DatasetError, r"no classes"),
        (dict(classes=["w0", "w0", "w1"]), ConfigError, r"repeats \['w0'\]"),
        (dict(classes="w0"), ConfigError, r"not one string"),
        (dict(classes=["w0", "nope"], n_way=2), DatasetError, r"'nope' is not in the dataset"),
        (dict(classes=["w0", "w1", "zz"], n_way=5), DatasetError, r"'zz' is not in the dataset"),
        (dict(unknown_classes=["w0"]), ConfigError, r"\['w0'\] are also episode classes"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, error, match):
    m = make_manifest(tmp_path)
    args = dict(classes=WORDS, n_way=5, k_shot=2, n_query=2) | kwargs
    with pytest.raises(error, match=match):
        EpisodeSampler(m, **args)


@pytest.mark.parametrize("speaker_disjoint", [False, True])
def test_unknown_and_silence_extras(tmp_path, speaker_disjoint):
    m = make_manifest(tmp_path)
    train, pool = WORDS[:5], WORDS[5:]
    sampler = EpisodeSampler(m, train, 4, 3, 2, seed=2, unknown_classes=pool, silence=True,
                             speaker_disjoint=speaker_disjoint)
    assert sampler.episode_classes == 6
    pool_words = set()
    for e in sampler.episodes(0, 30):
        assert e.classes[-2:] == (UNKNOWN_CLASS, SILENCE_CLASS)
        assert set(e.classes[:4]) <= set(train)
        assert e.support.shape == (6, 3) and e.query.shape == (6, 2)
        assert (e.support[-1] == SILENCE).all() and (e.query[-1] == SILENCE).all()
        assert (e.support[:-1] >= 0).all() and (e.query[:-1] >= 0).all()
        unknown = np.r_[e.support[-2], e.query[-2]]
        assert keywords_of(m, unknown) <= set(pool)
        assert len(set(unknown)) == 5 and not set(unknown) & set(e.support[:-2].ravel())
        if speaker_disjoint:  # the pool's speakers count as one speaker across its words
            assert not speakers_of(m, e.support[-2]) & speakers_of(m, e.query[-2])
        pool_words |= keywords_of(m, unknown)
    assert pool_words == set(pool)  # the unknown class mixes every held-out word


def test_episode_is_read_only(tmp_path):
    m = make_manifest(tmp_path)
    e = EpisodeSampler(m, WORDS, 2, 1, 1).sample(0)
    with pytest.raises(ValueError):
        e.support[0, 0] = 3
