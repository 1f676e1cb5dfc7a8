"""The CL2N embedding head: its arithmetic, its fitting after training, and how runs carry it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kws_proto.config import ConfigError, ExperimentConfig, HeadConfig, same_training
from kws_proto.errors import CheckpointError
from kws_proto.model.runs import RunDir


def _with(cfg, **sections):
    return dataclasses.replace(cfg, **sections)


def test_head_config_is_checked_and_only_the_head_may_differ_for_the_same_training():
    with pytest.raises(ConfigError, match="head.kind='zscore'"):
        ExperimentConfig.from_dict({"head": {"kind": "zscore"}})
    with pytest.raises(ConfigError, match="head.clips=0"):
        HeadConfig(kind="cl2n", clips=0)
    a = ExperimentConfig()
    b = _with(a, head=HeadConfig(kind="cl2n"))
    assert a != b and same_training(a, b)
    assert not same_training(a, _with(b, name="other"))


def test_with_head_centres_then_scales_each_member_to_unit_length():
    from kws_proto.encoders import build_encoder
    from kws_proto.model.head import with_head

    enc = build_encoder("ensemble", (51, 40), member="protores", members=2,
                        member_params={"stem_filters": 8, "filters": [8, 12, 16]})
    x = np.random.default_rng(0).standard_normal((5, 51, 40)).astype(np.float32)
    raw = enc(x, training=False).numpy().astype(np.float64)
    centre = raw[:3].mean(0) + 0.1  # anything but the batch's own mean
    out = with_head(enc, centre, 2)(x, training=False).numpy().astype(np.float64)
    d = raw.shape[1] // 2
    for block in (slice(0, d), slice(d, 2 * d)):  # numpy, independently of the TF head
        y = raw[:, block] - centre[block]
        np.testing.assert_allclose(out[:, block], y / np.linalg.norm(y, axis=1, keepdims=True),
                                   atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out[:, :d], axis=1), 1.0, atol=1e-5)
    with pytest.raises(CheckpointError, match="does not fit"):
        with_head(enc, centre[:d], 2)


@pytest.fixture(scope="module")
def head_run(synth_dataset, tmp_path_factory):
    """The smoke config trained with ``head: {kind: cl2n}`` and clips enough to use every
    training clip of the tiny corpus."""
    from kws_proto.config import load_config

    from conftest import REPO, TINY_SYNTH, train_run

    cfg = load_config(REPO / "experiments" / "configs" / "smoke.yaml",
                      overrides={"data": {"dataset": str(synth_dataset), **TINY_SYNTH},
                                 "train": {"episodes": 20, "val_every": 10},
                                 "head": {"kind": "cl2n", "clips": 100000}})
    root = tmp_path_factory.mktemp("head") / "run"
    train_run(cfg, root)
    return cfg, root


def test_training_fits_the_centre_on_the_training_clips(head_run):
    from kws_proto.eval.evaluate import embed_rows, open_eval_data
    from kws_proto.model.head import read_head
    from kws_proto.model.loading import load_run_network

    cfg, root = head_run
    run = RunDir(root)
    assert run.is_finished() and run.head_path.is_file()
    centre, info = read_head(run.head_path)
    _, bare = load_run_network(root, head=False)
    data = open_eval_data(cfg, progress=False)
    train_words = set(data.splits.train)
    rows = [i for i, c in enumerate(data.manifest.clips) if c.keyword in train_words]
    assert info["clips"] == len(rows) == info["of_train_clips"]
    # embedded in other batches than at training: float32 rounding of the embeddings' scale
    expected = embed_rows(bare, data.features, rows).mean(0)
    np.testing.assert_allclose(centre, expected, atol=1e-5 * max(1.0, np.abs(expected).max()))

    _, net = load_run_network(root)  # with the head
    emb = embed_rows(net, data.features, rows[:8])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_the_head_changes_the_encoder_fingerprint_so_old_banks_are_refused(head_run, tmp_path):
    from kws_proto.spot.bank import KeywordBank
    from kws_proto.errors import BankError
    from kws_proto.model.loading import weights_fingerprint
    from kws_proto.spot.spotter import KeywordSpotter
    from kws_proto.model.loading import load_run_network

    _, root = head_run
    spotter = KeywordSpotter(root)
    assert spotter.fingerprint != weights_fingerprint(load_run_network(root, head=False)[1].encoder)
    bare_info = dataclasses.replace(spotter.encoder_info,
                                    fingerprint=weights_fingerprint(load_run_network(root, head=False)[1].encoder))
    with pytest.raises(BankError, match="another encoder"):
        spotter.check_bank(KeywordBank(bare_info, spotter.features))


def test_a_missing_head_file_is_a_clear_error(head_run, tmp_path):
    import shutil

    from kws_proto.model.loading import load_run_network

    _, root = head_run
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "head.npz").unlink()
    with pytest.raises(CheckpointError, match=r"head\.npz: missing"):
        load_run_network(copy)
    (copy / "head.npz").write_bytes(b"not a numpy archive")
    with pytest.raises(CheckpointError, match=r"head\.npz: unreadable"):
        load_run_network(copy)


def test_resuming_a_finished_run_with_another_head_refits_it_without_training(head_run, tmp_path):
    import shutil

    from data_prep.builtin import prepare_data
    from kws_proto.train.trainer import train

    cfg, root = head_run
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    run = RunDir(copy)
    log, weights = run.log_path.read_text(), run.best_weights.read_bytes()
    data = prepare_data(cfg, progress=False)  # the refit reads the data it is given
    result = train(_with(cfg, head=HeadConfig()), data, copy, resume=True, progress=False)
    assert result == run.read_result()
    assert run.read_config().head.kind == "none" and not run.head_path.exists()
    assert run.log_path.read_text() == log and run.best_weights.read_bytes() == weights
    train(_with(cfg, head=HeadConfig(kind="cl2n", clips=5)), data, copy, resume=True, progress=False)
    assert run.head_path.is_file()
    with pytest.raises(CheckpointError, match="episodes"):  # a change of training is refused
        train(_with(cfg, train=dataclasses.replace(cfg.train, episodes=99)), data, copy,
              resume=True, progress=False)
