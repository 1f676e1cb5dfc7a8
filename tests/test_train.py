"""The training loop end to end on the tiny built-in corpus: run files, resume, mirrored."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import cli as _cli
from conftest import train_run
from conftest import with_train as _with_train
from kws_proto.config import dump_config
from kws_proto.errors import CheckpointError, DatasetError
from kws_proto.model.runs import RunDir


def test_training_writes_a_complete_run_that_evaluates(smoke_config, tmp_path):
    from data_prep.builtin import prepare_data
    from kws_proto.eval.evaluate import evaluate_run, grid
    from kws_proto.train.trainer import train

    cfg = _with_train(smoke_config, episodes=30, val_every=10)
    result = train(cfg, prepare_data(cfg, progress=False), tmp_path / "run", progress=False)
    run = RunDir(tmp_path / "run")
    assert run.is_finished() and run.read_config() == cfg
    assert result["steps"] == 30 and result["episodes"] == 30
    assert result["parameters"] > 0 and result["embedding_dim"] > 0 and result["ms_per_episode"] > 0
    log = [r for r in run.read_log() if "step" in r]
    assert [r["step"] for r in log] == [10, 20, 30]
    assert max(r["val_acc"] for r in log) == pytest.approx(result["best_val_acc"])
    assert (run.root / "splits.json").is_file() and any((run.root / "tb").iterdir())

    rows = evaluate_run(run.root, grid([2], [1, 2], n_query=3, episodes=50), progress=False)
    assert [(r["n_way"], r["k_shot"]) for r in rows] == [(2, 1), (2, 2)]
    for r in rows:
        assert len(r["accuracies"]) == 50 and 0.0 <= r["mean"] <= 1.0
    again = evaluate_run(run.root, grid([2], [1], n_query=3, episodes=50), progress=False)
    assert again[0]["accuracies"] == rows[0]["accuracies"]  # fixed episodes, deterministic model

    # open set: the validation words as the unknown pool add AUROC and detection rate
    recorded = json.loads((run.root / "splits.json").read_text())
    open_rows = evaluate_run(run.root, grid([2], [2], n_query=3, episodes=30), progress=False,
                             unknown=recorded["validation"])
    assert 0.0 <= open_rows[0]["auroc"] <= 1.0 and 0.0 <= open_rows[0]["detection_at_5pct_far"] <= 1.0


def test_training_never_builds_corpora():
    """``kws_proto.train`` reads the dataset its caller opened: none of its modules imports
    ``data_prep`` (the corpus builders), not even lazily."""
    import ast

    from conftest import REPO

    for path in sorted((REPO / "kws_proto" / "train").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not [m for m in modules if m.split(".")[0] == "data_prep"], path.name


def test_existing_run_needs_resume_and_the_same_config(smoke_config, tmp_path):
    cfg = _with_train(smoke_config, episodes=10, val_every=10)
    train_run(cfg, tmp_path / "run")
    with pytest.raises(CheckpointError, match="--resume"):
        train_run(cfg, tmp_path / "run")
    with pytest.raises(CheckpointError, match="train.lr"):
        train_run(_with_train(cfg, lr=0.01), tmp_path / "run", resume=True)


def test_the_cli_refuses_a_wrong_resume_before_building_any_data(smoke_config, tmp_path):
    import dataclasses as dc

    cfg = dc.replace(smoke_config, data=dc.replace(smoke_config.data, dataset=str(tmp_path / "synth")))
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.write_config(cfg)
    path = tmp_path / "cfg.yaml"
    path.write_text(dump_config(_with_train(cfg, lr=0.01)))
    done = subprocess.run(_cli("train", path, "--run-dir", run.root, "--resume", "--quiet"),
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "train.lr" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "synth").exists()  # no corpus synthesised for a run that cannot go on


@pytest.mark.slow
def test_resume_after_sigkill_continues_steps_and_log(smoke_config, tmp_path):
    cfg = _with_train(smoke_config, episodes=400, val_every=10)
    path = tmp_path / "cfg.yaml"
    path.write_text(dump_config(cfg))
    run = RunDir(tmp_path / "run")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(_cli("train", path, "--run-dir", run.root, "--quiet"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len([r for r in run.read_log() if "step" in r]) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = [r["step"] for r in run.read_log() if "step" in r]
    assert len(killed_at) >= 2, f"no validation within the deadline: {proc.stderr.read().decode()[-2000:]}"
    assert not run.is_finished()

    short = _with_train(cfg, episodes=killed_at[-1] + 20)  # finish soon after the kill
    path.write_text(dump_config(short))
    (run.root / "config.yaml").write_text(dump_config(short))
    done = subprocess.run(_cli("train", path, "--run-dir", run.root, "--resume", "--quiet"),
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    said = re.search(rf"resuming {re.escape(str(run.root))} at step (\d+) of {short.train.episodes} "
                     rf"\(checkpoint \S+ckpt-(\d+)\)", done.stdout)
    assert said and said[1] == said[2] and int(said[1]) in killed_at, done.stdout[-2000:]
    steps = [r["step"] for r in run.read_log() if "step" in r]
    # one record per validation, none lost before the last checkpoint, none repeated after it
    assert steps == list(range(10, short.train.episodes + 1, 10)), (killed_at, steps)
    assert run.read_result()["steps"] == short.train.episodes


def test_weight_averaging_validates_and_keeps_the_average(smoke_config, tmp_path):
    """train.ema: one step keeps 0.1 x initial + 0.9 x stepped weights (decay warmed up to 1/10);
    the checkpoint's model holds the raw stepped weights, its averages the kept ones."""
    import numpy as np
    import tensorflow as tf

    from kws_proto.model.loading import build_network

    cfg = _with_train(smoke_config, episodes=1, val_every=1, ema=0.99)
    train_run(cfg, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    tf.keras.utils.set_random_seed(cfg.train.seed)  # as train() does before building
    initial = build_network(cfg)
    raw, kept = build_network(cfg), build_network(cfg)
    averages = [tf.Variable(tf.zeros_like(v)) for v in raw.trainable_variables]
    tf.train.Checkpoint(model=raw, averages=averages).restore(
        tf.train.latest_checkpoint(run.checkpoints)).expect_partial()
    kept.encoder.load_weights(run.best_weights)
    triples = list(zip(initial.trainable_variables, raw.trainable_variables, kept.trainable_variables))
    assert triples and all(np.any(r.numpy() != i.numpy()) for i, r, _ in triples)  # the step moved
    for (i, r, k), a in zip(triples, averages):
        # TF's float32 update (maybe fused multiply-adds) against numpy's: a few ulps of |w|
        np.testing.assert_allclose(k.numpy(), 0.1 * i.numpy() + 0.9 * r.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(a.numpy(), k.numpy())
    # the swap after validation was undone: the checkpoint's model holds the raw weights
    assert any(np.abs(r.numpy() - k.numpy()).max() > 1e-5 for _, r, k in triples)


def test_feed_cores_that_cannot_apply_warn_naming_the_key(smoke_config, tmp_path):
    """TensorFlow fixes its thread pools at its first op: in this process (where it runs)
    ``train.feed_cores`` cannot apply, so training warns and records the pools it really had.
    (Applied in a fresh process: tests/test_compare.py.)"""
    import tensorflow as tf

    float(tf.constant(1.0) + 1.0)  # TensorFlow runs
    pools = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
             "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    assert pools == {"intra_op": 0, "inter_op": 0}  # pytest's process has the defaults
    cfg = _with_train(smoke_config, episodes=1, val_every=1, feed_cores=1)
    with pytest.warns(UserWarning, match=r"train\.feed_cores=1 is not applied"):
        result = train_run(cfg, tmp_path / "run")
    assert result["threads"] == pools


@pytest.mark.slow
def test_mirrored_training_on_two_logical_cpus(smoke_config, tmp_path):
    cfg = _with_train(smoke_config, episodes=6, val_every=3, ema=0.9)  # averages across replicas
    path = tmp_path / "cfg.yaml"
    path.write_text(dump_config(cfg))
    done = subprocess.run(
        _cli("train", path, "--run-dir", tmp_path / "run", "--strategy", "mirrored",
             "--logical-cpus", "2", "--quiet"),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = RunDir(tmp_path / "run").read_result()
    assert result["replicas"] == 2
    assert result["steps"] == 6 and result["episodes"] == 12


def test_training_with_open_set_extras(smoke_config, synth_dataset, tmp_path):
    """Training episodes with an 'unknown' pool class and a 'silence' class run end to end."""
    import shutil

    from kws_proto.data.dataset import load_splits, write_splits

    root = tmp_path / "data"
    shutil.copytree(synth_dataset, root, ignore=shutil.ignore_patterns(".cache"))
    s = load_splits(root)
    write_splits(root, dataclasses.replace(s, train=s.train[3:], unknown=s.train[:3]))
    cfg = dataclasses.replace(
        _with_train(smoke_config, episodes=4, val_every=4),
        data=dataclasses.replace(smoke_config.data, dataset=str(root)),
        episodes=dataclasses.replace(smoke_config.episodes, unknown=True, silence=True),
    )
    result = train_run(cfg, tmp_path / "run")
    assert result["steps"] == 4 and 0.0 <= result["best_val_acc"] <= 1.0

    closed = dataclasses.replace(cfg, episodes=dataclasses.replace(cfg.episodes, silence=False))
    write_splits(root, s)  # no unknown pool any more
    with pytest.raises(DatasetError, match="unknown"):
        train_run(closed, tmp_path / "run2")
