"""Data-parallel training: episodes per second per device, and the scaling efficiency 1 -> 2
replicas.

Three layouts, each in fresh processes (TensorFlow fixes its devices per process): one replica
(the default strategy), ``mirrored`` over 2 logical CPUs in one process, and 2 local workers
(``multi-worker``, MultiWorkerMirroredStrategy over 127.0.0.1, one replica each).  Each runs the
training loop's own step (:func:`kws_proto.train.step.make_train_step`: forward, backward,
all-reduce, Adam) of ProtoRes (package defaults) on ready 5-way 5-shot 15-query episodes, one
per replica per step, so the feed is not measured.  A layout's figure is its fastest window of
WINDOW steps over PASSES passes over the layouts, in alternating order (the host runs in slow
bursts, see ``bench_pipeline``); episodes/s counts every replica's episode.  Scaling efficiency is ``episodes/s with 2 replicas / (2 x episodes/s with
1)``: 100 % is linear.  On a machine without GPUs the replicas share the CPU's cores, so this
measures the strategy's overhead on this CPU, not a speed-up: two replicas on 2 cores each get
about one.  Run: ``python -m benchmarks.run bench_distributed``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_WAY, K_SHOT, N_QUERY = 5, 5, 15
WARMUP, WINDOW, ROUNDS, PASSES = 2, 3, 6, 2
REPO = Path(__file__).resolve().parents[1]
LAYOUTS = {"1 replica (default strategy)": ("default", 1),
           "2 replicas, mirrored over 2 logical CPUs": ("mirrored", 1),
           "2 replicas, 2 local workers (multi-worker)": ("multi-worker", 2)}


def measure(strategy: str) -> dict:
    """Fastest-window steps of the loop's train step under ``strategy`` in this process."""
    import tensorflow as tf

    from kws_proto.config import ExperimentConfig
    from kws_proto.train.cluster import read_cluster
    from kws_proto.train.devices import local_replicas, make_strategy
    from kws_proto.train.state import TrainState
    from kws_proto.train.step import make_train_step

    if strategy == "multi-worker":
        read_cluster()
    dist = make_strategy(strategy, logical_cpus=2 if strategy == "mirrored" else 0)
    cfg = ExperimentConfig()
    tf.keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        state = TrainState.create(cfg, dist, Path(tmp))
        mine = local_replicas(dist)
        step, _ = make_train_step(state, dist, mine[0])
        frames, n_mfcc = cfg.features.shape
        support = tf.random.normal([len(mine), N_WAY, K_SHOT, frames, n_mfcc])  # local replicas
        query = tf.random.normal([len(mine), N_WAY, N_QUERY, frames, n_mfcc])
        for _ in range(WARMUP):
            step(support, query)
        windows = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            for _ in range(WINDOW):
                step(support, query)
            float(state.optimizer.iterations.numpy())  # the last update has run
            windows.append((time.perf_counter() - t0) / WINDOW)
    return {"replicas": dist.num_replicas_in_sync, "step_seconds": min(windows)}


def _run(strategy: str, workers: int) -> dict:
    """:func:`measure` in ``workers`` fresh processes (local workers get a TF_CONFIG each)."""
    from kws_proto.train.cluster import local_tf_configs

    cmd = [sys.executable, "-m", "benchmarks.bench_distributed", "--child", strategy]
    envs = ([{"TF_CONFIG": c} for c in local_tf_configs(workers)] if strategy == "multi-worker"
            else [{}])
    procs = [subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **e}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for e in envs]
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs):
        if p.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    got = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    return {"replicas": got[0]["replicas"], "step_seconds": max(g["step_seconds"] for g in got)}


def main() -> dict[str, float]:
    """Measure every layout; print episodes/s, per device, and the efficiency over 1 replica.

    Returns
    -------
    dict
        ``{"<layout> episodes/s": ..., "<layout> efficiency": ...}``.
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"   ProtoRes (package defaults), {N_WAY}-way {K_SHOT}-shot {N_QUERY}-query episodes, one per "
          f"replica per step; {os.cpu_count()} CPU cores, load average {load:.1f}; fastest of "
          f"{PASSES} x {ROUNDS} windows of {WINDOW} steps")
    print(f"   {'layout':<44} {'step ms':>8} {'episodes/s':>11} {'per device':>11} {'efficiency':>11}")
    fastest = {}
    for p in range(PASSES):
        for label in (list(LAYOUTS) if p % 2 == 0 else list(LAYOUTS)[::-1]):
            m = _run(*LAYOUTS[label])
            if label not in fastest or m["step_seconds"] < fastest[label]["step_seconds"]:
                fastest[label] = m
    out, single = {}, None
    for label, m in fastest.items():
        eps = m["replicas"] / m["step_seconds"]
        single = eps if single is None else single
        efficiency = eps / (m["replicas"] * single)
        out[f"{label} episodes/s"], out[f"{label} efficiency"] = eps, efficiency
        print(f"   {label:<44} {1e3 * m['step_seconds']:>8.0f} {eps:>11.2f} "
              f"{eps / m['replicas']:>11.2f} {100 * efficiency:>10.0f}%")
    print("   efficiency = episodes/s / (replicas x episodes/s of 1 replica); the replicas share "
          "this machine's CPU cores")
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # one layout in a fresh process: JSON on stdout
        print(json.dumps(measure(sys.argv[2])))
    else:
        main()
