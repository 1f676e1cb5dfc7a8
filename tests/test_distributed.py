"""Training past one process: TF_CONFIG checks, episode shards, local workers on 127.0.0.1 (killed
and resumed, against one mirrored process), mixed precision, XLA, caches shared by processes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from conftest import cli as _cli
from conftest import train_run
from conftest import with_train as _with_train
from kws_proto.config import dump_config
from kws_proto.errors import ConfigError
from kws_proto.model.runs import RunDir
from kws_proto.train.cluster import read_cluster

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _plain(cfg, **train):
    """``cfg`` without augmentation (no XLA-compiled augmentation to build in every process)."""
    return dataclasses.replace(_with_train(cfg, **train),
                               augment=dataclasses.replace(cfg.augment, enabled=False),
                               episodes=dataclasses.replace(cfg.episodes, val_episodes=4))


def _tf_config(workers, index=0):
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def test_tf_config_is_read_and_bad_ones_are_named():
    two = ["127.0.0.1:1", "127.0.0.1:2"]
    c = read_cluster(_tf_config(two, 1), check_port=False)
    assert (c.workers, c.index, c.is_chief, c.address) == (2, 1, False, "127.0.0.1:2")
    with_chief = json.dumps({"cluster": {"chief": ["h:1"], "worker": ["h:2"]},
                             "task": {"type": "worker", "index": 0}})
    assert read_cluster(with_chief, check_port=False).index == 1  # the chief comes first
    with pytest.raises(ConfigError, match="not valid JSON.*cluster"):
        read_cluster('{"cluster": ', check_port=False)
    with pytest.raises(ConfigError, match="no task"):
        read_cluster(json.dumps({"cluster": {"worker": two}}), check_port=False)
    with pytest.raises(ConfigError, match="task index 2 is not a worker"):
        read_cluster(_tf_config(two, 2), check_port=False)
    with pytest.raises(ConfigError, match="'h1' must be host:port"):
        read_cluster(_tf_config(["h1"]), check_port=False)
    with socket.socket() as s:  # a port this machine already listens on
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(ConfigError, match=f"{taken}: port .* in use"):
            read_cluster(_tf_config([taken, "127.0.0.1:2"], 0))


def test_the_cli_names_a_bad_tf_config(smoke_config, tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(dump_config(smoke_config))
    done = subprocess.run(_cli("train", path, "--run-dir", tmp_path / "run", "--strategy", "multi-worker"),
                          env={**ENV, "TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1"]}'},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "kws-proto train: error: TF_CONFIG is not valid JSON" in done.stderr
    assert not (tmp_path / "run").exists()


def test_worker_shards_are_the_single_sequence(smoke_config):
    """Worker w of a step of R replicas gets episodes s*R + r of its replicas r only: the shards
    of two workers interleave into the one-process sequence."""
    from data_prep.builtin import prepare_data

    cfg = _plain(smoke_config)  # episode ids and rows; augmentation is keyed by the id too
    data = prepare_data(cfg, progress=False)
    ep = cfg.episodes
    sampler = data.sampler("train", ep.n_way, ep.k_shot, ep.n_query, seed=0)
    whole = [s.numpy() for s, _ in data.train_dataset(sampler, start=4).take(4)]
    for worker in (0, 1):
        shard = [s.numpy() for s, _ in data.train_dataset(sampler, start=4, every=2,
                                                          offsets=[worker]).take(2)]
        for got, want in zip(shard, whole[worker::2]):
            np.testing.assert_array_equal(got, want)


def _wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _validated(run):
    return [r["step"] for r in run.read_log() if "step" in r]


def _checkpoint_weights(run):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run.checkpoints))  # the last: the weights, BN, Adam
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if n != "_CHECKPOINTABLE_OBJECT_GRAPH"}


@pytest.mark.slow
def test_two_workers_killed_resumed_equal_one_mirrored_process(smoke_config, tmp_path):
    """Two local workers: worker 1 SIGKILLed mid-run stops the run with an error naming it;
    both restarted with --resume finish it with every validation once; the weights equal a
    single mirrored process over 2 logical CPUs on the same seed and episodes; the non-chief
    left nothing behind."""
    cfg = _plain(smoke_config, episodes=16, val_every=2)
    path = tmp_path / "cfg.yaml"
    path.write_text(dump_config(cfg))
    run, scratch = RunDir(tmp_path / "run"), tmp_path / "tmp"
    scratch.mkdir()
    env = {**ENV, "TMPDIR": str(scratch)}
    err = tmp_path / "launcher.err"
    with open(err, "w") as f:
        launcher = subprocess.Popen(_cli("train", path, "--run-dir", run.root, "--workers", 2, "--quiet"),
                                    env=env, stdout=subprocess.DEVNULL, stderr=f)
    try:
        _wait_for(lambda: len(re.findall(r"worker \d of 2: pid", err.read_text())) == 2, 60, "workers")
        pids = dict(re.findall(r"worker (\d) of 2: pid (\d+)", err.read_text()))
        _wait_for(lambda: len(_validated(run)) >= 2 or launcher.poll() is not None, 180,
                  "two validations")
        os.kill(int(pids["1"]), signal.SIGKILL)
        launcher.wait(60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    killed_at = _validated(run)
    assert 2 <= len(killed_at) and killed_at[-1] < cfg.train.episodes, (killed_at, err.read_text()[-3000:])
    assert launcher.returncode == 2
    assert f"error: worker 1 of 2 (pid {pids['1']}) was killed by SIGKILL" in err.read_text()

    done = subprocess.run(_cli("train", path, "--run-dir", run.root, "--workers", 2, "--resume", "--quiet"),
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _validated(run) == list(range(2, cfg.train.episodes + 1, 2)), killed_at  # none lost or repeated
    result = run.read_result()
    assert (result["workers"], result["global_batch"], result["episodes"]) == (2, 2, 32)
    assert sorted(p.name for p in scratch.iterdir() if "kws-proto" in p.name) == []

    mirrored = RunDir(tmp_path / "mirrored")
    done = subprocess.run(_cli("train", path, "--run-dir", mirrored.root, "--strategy", "mirrored",
                               "--logical-cpus", 2, "--quiet"),
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in run.root.iterdir()) == sorted(p.name for p in mirrored.root.iterdir())
    workers, single = _checkpoint_weights(run), _checkpoint_weights(mirrored)
    assert workers.keys() == single.keys() and workers
    for name, w in workers.items():  # float32 all-reduce order may differ: relative tolerance
        np.testing.assert_allclose(w, single[name], rtol=1e-4, atol=1e-6, err_msg=name)


def _float16_runs_on_this_cpu() -> str | None:
    import tensorflow as tf

    try:
        x = tf.ones([1, 8, 8, 2], tf.float16)
        float(tf.reduce_sum(tf.nn.conv2d(x, tf.ones([3, 3, 2, 2], tf.float16), 1, "SAME")))
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
        return f"this CPU's TensorFlow has no float16 convolution ({type(e).__name__})"
    return None


def test_mixed_precision_trains_a_step_with_a_finite_loss(smoke_config, tmp_path):
    import keras

    reason = _float16_runs_on_this_cpu()
    if reason:
        pytest.skip(reason)
    train_run(_plain(smoke_config, episodes=2, val_every=2, mixed_precision=True), tmp_path / "run")
    (record,) = [r for r in RunDir(tmp_path / "run").read_log() if "step" in r]
    assert np.isfinite(record["train_loss"]) and 0.0 <= record["val_acc"] <= 1.0
    assert keras.config.dtype_policy().name == "float32"  # later models are float32 again


@pytest.mark.slow
def test_jit_compiled_step_trains(smoke_config, tmp_path):
    result = train_run(_plain(smoke_config, episodes=1, val_every=1, jit_compile=True),
                       tmp_path / "run")
    (record,) = [r for r in RunDir(tmp_path / "run").read_log() if "step" in r]
    assert result["steps"] == 1 and np.isfinite(record["train_loss"])


def test_processes_opening_a_dataset_at_once_build_its_cache_once(smoke_config, synth_dataset,
                                                                 tmp_path, monkeypatch):
    """Readers racing for a missing cache: one builds it, the others wait and memory-map it;
    `kws-prep cache` builds a config's caches beforehand."""
    import shutil

    from data_prep.cli import main as kws_prep
    from kws_proto.data import cache
    from kws_proto.data.dataset import load_manifest

    root = tmp_path / "data"
    shutil.copytree(synth_dataset, root, ignore=shutil.ignore_patterns(".cache"))
    builds, build = [], cache._build
    monkeypatch.setattr(cache, "_build", lambda *a: (builds.append(a[2]), time.sleep(0.3), build(*a)))
    manifest = load_manifest(root)
    got = []
    readers = [threading.Thread(target=lambda: got.append(cache.feature_cache(
        manifest, smoke_config.features, progress=False))) for _ in range(3)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert len(builds) == 1 and len(got) == 3
    assert all(isinstance(a, np.memmap) and not a.flags.writeable for a in got)

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(dump_config(dataclasses.replace(
        smoke_config, augment=dataclasses.replace(smoke_config.augment, enabled=True))))
    assert kws_prep(["cache", str(root), str(cfg), "--quiet"]) == 0
    assert len(builds) == 2  # the waveform cache; the feature cache was there
    assert len(list((root / ".cache").glob("wave-*.npy"))) == 1
