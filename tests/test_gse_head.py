"""The trained head on the Google speech embedding's windows (``gse-head``): its file, its
config, its training, its embedder and its table."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml

from conftest import REPO, needs_gse
from kws_proto.config.gse_head import GSEHeadConfig, load_gse_head_config
from kws_proto.errors import CheckpointError, ConfigError, DatasetError
from kws_proto.model.gse_head import (FILE, SHIPPED_DIR, GSEHead, load_head, save_head,
                                      shipped_head)


def _random_head(seed=0, hidden=16, dim=8) -> GSEHead:
    rng = np.random.default_rng(seed)
    return GSEHead(rng.normal(size=(288, hidden)).astype(np.float32), rng.normal(size=hidden),
                   rng.normal(size=(hidden, dim)), rng.normal(size=dim), record={"seed": seed})


def test_the_head_gives_unit_vectors_and_checks_its_input():
    head = _random_head()
    out = head(np.random.default_rng(1).normal(size=(5, 3, 96)))
    assert out.shape == (5, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\[n, 3, 96\]"):
        head(np.zeros((5, 288)))


def test_malformed_weights_are_refused():
    h = _random_head()
    with pytest.raises(CheckpointError, match="w1"):
        GSEHead(h.w1[:100], h.b1, h.w2, h.b2)
    with pytest.raises(CheckpointError, match="w1"):
        GSEHead(h.w1, h.b1[:3], h.w2, h.b2)


def test_the_file_round_trips_and_the_digest_sees_one_weight(tmp_path):
    head = _random_head()
    path = save_head(head, tmp_path / "h" / FILE)
    assert sorted(p.name for p in path.parent.iterdir()) == [FILE]  # nothing left aside
    back = load_head(path.parent)
    assert back.digest == head.digest and back.record == {"seed": 0}
    x = np.random.default_rng(2).normal(size=(4, 3, 96))
    np.testing.assert_array_equal(back(x), head(x))
    w2 = head.w2.copy()
    w2[0, 0] += 1e-3
    assert dataclasses.replace(head, w2=w2).digest != head.digest


def test_an_ensemble_averages_its_networks_squared_distances(tmp_path):
    nets = [_random_head(seed) for seed in (0, 1, 2)]
    ens = GSEHead.ensemble(nets, record={"heads": 3})
    assert ens.heads == 3 and ens.dim == 24 and ens.w1.shape == (3, 288, 16)
    x = np.random.default_rng(4).normal(size=(6, 3, 96))
    out = ens(x)
    assert out.shape == (6, 24) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    d_ens = ((out[:, None] - out[None]) ** 2).sum(-1)
    d_nets = np.mean([((e[:, None] - e[None]) ** 2).sum(-1) for e in (n(x) for n in nets)], 0)
    np.testing.assert_allclose(d_ens, d_nets, rtol=1e-4, atol=1e-5)
    back = load_head(save_head(ens, tmp_path / FILE))  # a file like one network's
    assert back.heads == 3 and back.digest == ens.digest and back.record == {"heads": 3}
    np.testing.assert_array_equal(back(x), out)
    assert len({ens.digest, *(n.digest for n in nets)}) == 4


def test_an_ensemble_is_of_single_networks_of_one_size():
    with pytest.raises(CheckpointError, match="one size"):
        GSEHead.ensemble([_random_head(0), _random_head(1, hidden=8)])
    with pytest.raises(CheckpointError, match="single networks"):
        GSEHead.ensemble([GSEHead.ensemble([_random_head(0)])])
    with pytest.raises(CheckpointError, match="single networks"):
        GSEHead.ensemble([])
    h = GSEHead.ensemble([_random_head(0), _random_head(1)])
    with pytest.raises(CheckpointError, match="leading axis"):
        GSEHead(h.w1, h.b1[:1], h.w2, h.b2)  # one network's bias beside two networks' weights


def test_a_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="no speech-embedding head"):
        load_head(tmp_path / FILE)
    (tmp_path / FILE).write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=str(tmp_path / FILE)):
        load_head(tmp_path / FILE)


def test_the_config_names_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump({"episodes": 10, "n_wya": 5}))
    with pytest.raises(ConfigError, match=r"h\.yaml.*n_wya"):
        load_gse_head_config(path)
    with pytest.raises(ConfigError, match="dropout"):
        GSEHeadConfig(dropout=1.0)
    with pytest.raises(ConfigError, match="n_way"):
        GSEHeadConfig(n_way=1)
    with pytest.raises(ConfigError, match="go together"):
        GSEHeadConfig(n_unknown=10)  # unknown words without the term they enter
    with pytest.raises(ConfigError, match="openset_loss"):
        GSEHeadConfig(n_unknown=10, openset_loss=1.5)
    with pytest.raises(ConfigError, match="neighbours"):
        GSEHeadConfig(neighbours=1.2)
    with pytest.raises(ConfigError, match="sum of at most 1"):
        GSEHeadConfig(neighbours=0.6, augmented=0.5)
    with pytest.raises(ConfigError, match="augmented=-0.1"):
        GSEHeadConfig(augmented=-0.1)
    path.write_text(yaml.safe_dump({"augmented": 0.25, "augment": {"reverb_prob": 1.0}}))
    loaded = load_gse_head_config(path)
    assert loaded.augment.reverb_prob == 1.0 and loaded.augment.noise_volume == 0.1
    assert GSEHeadConfig.from_dict(loaded.to_dict()) == loaded  # as a head's record keeps it
    path.write_text(yaml.safe_dump({"augment": {"reverb_pob": 1.0}}))
    with pytest.raises(ConfigError, match="reverb_pob"):
        load_gse_head_config(path)
    path.write_text(yaml.safe_dump({"corpora": [{"dataset": "x", "sorce": "synth"}]}))
    with pytest.raises(ConfigError, match=r"corpora\[0\]"):
        load_gse_head_config(path)


MEANS = np.random.default_rng(0).normal(size=(6, 3, 96)).astype(np.float32)  # six words' windows


def _draws(seed, per_word=12):
    """``(windows, labels)``: each word's mean window plus noise of the same size."""
    labels = np.repeat(np.arange(len(MEANS)), per_word)
    noise = np.random.default_rng(seed).normal(size=(len(labels), 3, 96))
    return (MEANS[labels] + noise).astype(np.float32), labels


def test_training_is_seeded_and_separates_the_words():
    from kws_proto.train.gse_head import train_gse_head

    cfg = GSEHeadConfig(episodes=60, n_way=4, k_shot=2, n_query=2, hidden=32, dim=16, seed=3)
    windows, labels = _draws(seed=1)
    logs = []
    a = train_gse_head(windows, labels, cfg, log=logs.append, every=30)
    b = train_gse_head(windows, labels, cfg, log=lambda *_: None)
    c = train_gse_head(windows, labels, dataclasses.replace(cfg, seed=4), log=lambda *_: None)
    assert a.digest == b.digest != c.digest
    assert len(logs) == 2 and "episode 60/60" in logs[-1]
    assert a.record["config"]["seed"] == 3 and a.dim == 16
    fresh, fresh_labels = _draws(seed=9)  # new draws of the same words
    e, centres = a(fresh), a(MEANS)
    hits = np.argmin(((e[:, None] - centres[None]) ** 2).sum(-1), 1) == fresh_labels
    assert hits.mean() > 0.8  # chance is 1/6


def test_an_ensemble_trains_its_networks_from_consecutive_seeds():
    from kws_proto.train.gse_head import train_gse_head

    cfg = GSEHeadConfig(episodes=20, n_way=4, k_shot=2, n_query=2, hidden=16, dim=8, seed=3)
    windows, labels = _draws(seed=1)
    quiet = dict(log=lambda *_: None)
    ens = train_gse_head(windows, labels, dataclasses.replace(cfg, heads=2), **quiet)
    one, two = (train_gse_head(windows, labels, dataclasses.replace(cfg, seed=s), **quiet)
                for s in (3, 4))
    assert ens.heads == 2 and ens.dim == 16 and ens.record["config"]["heads"] == 2
    for i, net in enumerate((one, two)):  # network i is the one network seed + i trains
        np.testing.assert_array_equal(ens.w2[i], net.w2)
        np.testing.assert_array_equal(ens.b1[i], net.b1)
    with pytest.raises(ConfigError, match="heads=0"):
        GSEHeadConfig(heads=0)


def test_unknown_words_of_an_episode_are_none_of_its_classes():
    from kws_proto.train.gse_head import _unknown_rows

    labels = np.repeat(np.arange(6), 5)
    by_word = [np.flatnonzero(labels == w) for w in range(6)]
    rng = np.random.default_rng(0)
    for _ in range(50):
        words = rng.choice(6, 4, replace=False)
        rows = _unknown_rows(rng, by_word, words, 7)
        assert rows.shape == (7,) and not np.isin(labels[rows], words).any()
    assert _unknown_rows(rng, by_word, words, 0).shape == (0,)


def test_the_open_set_step_scores_unknown_words_against_a_none_column():
    """The first step's loss (before its update; no dropout) against the formula in NumPy: the
    prototypical cross-entropy of the known queries, and the cross-entropy with a "none" column
    at the episode's mean distance, the unknown queries labelled "none"."""
    from kws_proto.train.gse_head import episode_step, head_network

    cfg = GSEHeadConfig(n_way=3, k_shot=2, n_query=2, n_unknown=4, openset_loss=0.25,
                        hidden=16, dim=8, dropout=0.0, temperature=5.0)
    net = head_network(cfg)
    rng = np.random.default_rng(0)
    support = rng.normal(size=(3, 2, 3, 96)).astype(np.float32)
    query = rng.normal(size=(3 * 2 + 4, 3, 96)).astype(np.float32)
    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    s = unit(net(support.reshape(-1, 3, 96)).numpy()).reshape(3, 2, -1)
    q = unit(net(query).numpy())
    d = ((q[:, None] - unit(s.mean(1))[None]) ** 2).sum(-1)  # [10, 3]

    def xent(logits, labels):
        logits = logits - logits.max(1, keepdims=True)
        return np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(len(labels)), labels])

    known = np.repeat(np.arange(3), 2)
    with_none = np.concatenate([known, [3] * 4])
    own = xent(-5.0 * d[:6], known)
    rejection = xent(-5.0 * np.concatenate([d, np.full((10, 1), d.mean())], 1), with_none)
    import keras

    twin = keras.models.clone_model(net)
    twin.set_weights(net.get_weights())
    loss, _ = episode_step(net, cfg)(support, query)
    np.testing.assert_allclose(float(loss), 0.75 * own + 0.25 * rejection, rtol=1e-4)
    closed = dataclasses.replace(cfg, n_unknown=0, openset_loss=0.0)
    loss, _ = episode_step(twin, closed)(support, query[:6])
    np.testing.assert_allclose(float(loss), own, rtol=1e-4)


def test_open_set_training_is_seeded():
    from kws_proto.train.gse_head import train_gse_head

    windows, labels = _draws(seed=1)
    cfg = GSEHeadConfig(episodes=20, n_way=4, k_shot=2, n_query=2, hidden=16, dim=8,
                        n_unknown=5, openset_loss=0.5, seed=3)
    a = train_gse_head(windows, labels, cfg, log=lambda *_: None)
    b = train_gse_head(windows, labels, cfg, log=lambda *_: None)
    assert a.digest == b.digest and a.record["config"]["n_unknown"] == 5


def test_training_in_context_shows_each_clip_alone_or_between_neighbours():
    from kws_proto.train.gse_head import _shown, train_gse_head

    windows, labels = _draws(seed=1)
    both = np.stack([windows, windows + 100.0], 1)  # [n, 2, 3, 96]: alone, in context
    rows = np.arange(12).reshape(3, 4)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(_shown(both, rows, rng, 1.0), both[rows, 1])
    mixed = _shown(both, rows, rng, 0.5)[..., 0, 0] - windows[rows][..., 0, 0]
    assert set(np.round(mixed).ravel().tolist()) == {0.0, 100.0}  # some of each
    assert _shown(both, np.zeros(0, np.int64), rng, 0.5).shape == (0, 3, 96)
    cfg = GSEHeadConfig(episodes=20, n_way=4, k_shot=2, n_query=2, hidden=16, dim=8, seed=3,
                        neighbours=1.0)
    alone = train_gse_head(np.stack([windows, windows], 1), labels, cfg, log=lambda *_: None)
    shifted = train_gse_head(both, labels, cfg, log=lambda *_: None)  # the context it trains on
    assert shifted.digest != alone.digest
    assert train_gse_head(both, labels, cfg, log=lambda *_: None).digest == shifted.digest


def test_augmented_training_shows_each_clip_alone_in_context_or_augmented():
    from kws_proto.train.gse_head import _shown, train_gse_head

    windows, labels = _draws(seed=1)
    views = np.stack([windows, windows + 100.0, windows + 200.0], 1)  # alone, context, augmented
    rows = np.arange(60).reshape(6, 10)
    rng = np.random.default_rng(0)

    def offset(shown):  # which view each clip was shown in, as 0, 100 or 200
        return np.round(shown[..., 0, 0] - windows[rows][..., 0, 0])

    np.testing.assert_array_equal(_shown(views, rows, rng, 0.0, 1.0), views[rows, 2])
    assert set(offset(_shown(views, rows, rng, 0.5, 0.5)).ravel()) == {100.0, 200.0}
    assert set(offset(_shown(views, rows, rng, 0.4, 0.3)).ravel()) == {0.0, 100.0, 200.0}
    pair = views[:, [0, 2]]  # no context view: the augmented one is the second
    np.testing.assert_array_equal(_shown(pair, rows, rng, 0.0, 1.0), pair[rows, 1])
    # the shipped head's draws: without augmentation, the same clips in context as before
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(_shown(views[:, :2], rows, a, 0.5),
                                  _shown(views, rows, b, 0.5, 0.0))
    cfg = GSEHeadConfig(episodes=20, n_way=4, k_shot=2, n_query=2, hidden=16, dim=8, seed=3,
                        augmented=1.0)
    plain = train_gse_head(np.stack([windows, windows], 1), labels, cfg, log=lambda *_: None)
    augmented = train_gse_head(pair, labels, cfg, log=lambda *_: None)
    assert augmented.digest != plain.digest
    assert train_gse_head(pair, labels, cfg, log=lambda *_: None).digest == augmented.digest


@needs_gse
def test_the_augmented_table_is_the_speech_embedding_of_the_augmented_words(tiny_folder):
    import soundfile as sf
    import tensorflow as tf

    from kws_proto.audio.augment import AugmentConfig, augment
    from kws_proto.audio.features import FeatureConfig
    from kws_proto.data.cache import waveform_cache
    from kws_proto.data.dataset import NOISE_DIR, load_manifest
    from kws_proto.model.gse import shared_model
    from kws_proto.model.gse_head import augmented_table, window_table

    noise_dir = tiny_folder / NOISE_DIR
    noise_dir.mkdir()
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 40000).astype(np.float32)
    sf.write(noise_dir / "white.wav", noise, 16000)
    manifest = load_manifest(tiny_folder)
    cfg = AugmentConfig(reverb_prob=0.5, noise_volume=0.3)
    table = augmented_table(manifest, cfg, seed=4, progress=False, batch_size=8)
    waves = np.asarray(waveform_cache(manifest, FeatureConfig(), progress=False), np.float32)
    noise_read = tf.constant(sf.read(noise_dir / "white.wav", dtype="float32")[0])
    want = np.concatenate([shared_model("tf").window_embeddings(augment(
        tf.constant(waves[s:s + 8]), noise_read, tf.constant([4, i], tf.int64), cfg).numpy())
        for i, s in enumerate(range(0, len(waves), 8))])
    np.testing.assert_allclose(table, want, rtol=1e-3, atol=1e-3)
    assert not np.allclose(table, window_table(manifest, progress=False), atol=1e-2)
    [cached] = (tiny_folder / ".cache").glob("gsewinaug-*.npy")
    written = cached.stat().st_mtime_ns
    again = augmented_table(manifest, cfg, seed=4, progress=False, batch_size=8)
    assert cached.stat().st_mtime_ns == written  # read from its cache the second time
    np.testing.assert_array_equal(again, table)
    assert not np.allclose(augmented_table(manifest, cfg, seed=5, progress=False, batch_size=8),
                           table, atol=1e-2)
    sf.write(noise_dir / "white.wav", noise[:20000], 16000)  # other noise: another cache
    assert not np.allclose(augmented_table(manifest, cfg, seed=4, progress=False, batch_size=8),
                           table, atol=1e-2)
    assert len(list((tiny_folder / ".cache").glob("gsewinaug-*.npy"))) == 3


@needs_gse
def test_the_context_table_is_the_speech_embedding_of_the_words_between_neighbours(tiny_folder):
    from kws_proto.audio.features import FeatureConfig
    from kws_proto.audio.neighbours import with_neighbours
    from kws_proto.data.cache import waveform_cache
    from kws_proto.data.dataset import load_manifest
    from kws_proto.model.gse import shared_model
    from kws_proto.model.gse_head import context_table

    manifest = load_manifest(tiny_folder)
    table = context_table(manifest, seed=2, progress=False)
    waves = np.asarray(waveform_cache(manifest, FeatureConfig(), progress=False), np.float32)
    mixed = with_neighbours(waves, [c.speaker for c in manifest.clips], seed=2)
    np.testing.assert_allclose(table, shared_model("tf").window_embeddings(mixed),
                               rtol=1e-4, atol=1e-4)
    again = context_table(manifest, seed=2, progress=False)
    assert isinstance(again, np.memmap)  # read from its cache the second time
    np.testing.assert_array_equal(again, table)
    assert not np.allclose(context_table(manifest, seed=3, progress=False), table)


@needs_gse
def test_training_words_leave_out_the_excluded_and_merge_corpora(tiny_folder, tmp_path):
    from kws_proto.train.gse_head import training_words

    cfg = GSEHeadConfig(n_way=2, k_shot=1, n_query=1, exclude_words=("Computer",))
    windows, labels, words = training_words([tiny_folder], cfg, progress=False)
    assert "computer" not in words and len(words) == 5
    assert windows.shape == (15, 3, 96) and sorted(set(labels.tolist())) == list(range(5))
    twice, labels2, words2 = training_words([tiny_folder, tiny_folder], cfg, progress=False)
    assert words2 == words and len(twice) == 30  # a word of two corpora is one class
    with pytest.raises(DatasetError, match="6-way"):
        training_words([tiny_folder], dataclasses.replace(cfg, n_way=6), progress=False)
    with pytest.raises(DatasetError, match="5-way episodes with unknown words need 6"):
        training_words([tiny_folder], dataclasses.replace(cfg, n_way=5, n_unknown=2,
                                                          openset_loss=0.5), progress=False)


@needs_gse
def test_the_embedder_is_the_head_on_the_speech_embeddings_windows(real_clips):
    from kws_proto.model.gse import remember_windows, shared_model
    from kws_proto.spot.frozen import frozen_embedder
    from kws_proto.spot.gse import GSEEmbedder

    emb = frozen_embedder("gse-head", "tf")
    out = emb(real_clips)
    windows = shared_model("tf").window_embeddings(real_clips)
    np.testing.assert_allclose(out, shipped_head()(windows), rtol=1e-5, atol=1e-6)
    assert out.shape == (len(real_clips), shipped_head().dim)
    assert emb.fingerprint not in (GSEEmbedder("tf").fingerprint, shipped_head().digest)
    model = shared_model("tf")
    with remember_windows():  # as a fused model embeds: the second ask is the first's copy
        first = model.window_embeddings(real_clips)
        first[0] += 1
        again = model.window_embeddings(real_clips)
        assert model._last is not None and not np.array_equal(first, again)
    np.testing.assert_array_equal(again, windows)
    assert model._last is None  # nothing kept outside the block


@needs_gse
def test_eval_scores_the_heads_embeddings_of_each_clip_crop(tiny_folder, capsys):
    """`eval gse-head` scores the episodes on the head's output for each clip's 1 s crop, its
    windows cached beside the feature caches."""
    from kws_proto.audio.features import FeatureConfig
    from kws_proto.cli import main
    from kws_proto.data.cache import load_clip
    from kws_proto.eval.grid import EvalSetting, score_grid
    from kws_proto.eval.gse import open_source
    from kws_proto.model.gse import shared_model

    assert main(["eval", "gse-head", "--data", str(tiny_folder), "--way", "3", "--shot", "1",
                 "--query", "2", "--episodes", "20", "--seed", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(list((tiny_folder / ".cache").glob("gsewin-*.npy"))) == 1
    source = open_source(tiny_folder)
    crops = np.stack([load_clip(source.manifest, i, FeatureConfig()) for i in range(len(source.manifest))])
    table = shipped_head()(shared_model("tf").window_embeddings(crops))
    want = score_grid(lambda episodes: table, source, source.splits.test, [EvalSetting(3, 1, 2, 20)], 2)
    assert rows[0]["mean"] == pytest.approx(want[0]["mean"], abs=1e-6)
    assert rows[0]["ci95"] == pytest.approx(want[0]["ci95"], abs=1e-6)


def test_the_shipped_head_is_what_its_config_and_record_say():
    record = json.loads((SHIPPED_DIR / "record.json").read_text())
    head = shipped_head()
    assert record["digest"] == head.digest
    config = load_gse_head_config(REPO / "experiments" / "configs" / "gse_head" / "gse_head.yaml")
    # the record holds the config it was trained with (fields added later take their defaults)
    assert GSEHeadConfig.from_dict(record["config"]) == config
    assert record["data"]["real_speech_used_for_training"] == "none"
    assert head.heads == config.heads and head.w1.shape[-2:] == (288, config.hidden)
    assert head.dim == config.heads * config.dim
