"""Where a training step runs: the ``tf.distribute`` strategy and TensorFlow's thread pools."""

from __future__ import annotations

import os

from kws_proto.errors import ConfigError

STRATEGIES = ("default", "mirrored")


def make_strategy(name: str, logical_cpus: int = 0):
    """``tf.distribute`` strategy by name: the default (one device) or MirroredStrategy.

    ``mirrored`` replicates over every GPU, or, on a machine without one, over the logical CPU
    devices; ``logical_cpus=N`` first splits the CPU into N logical devices (must run before
    TensorFlow initialises its devices).
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ConfigError(f"strategy={name!r} must be one of {STRATEGIES}")
    if logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(logical_cpus)]
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])


def thread_pools() -> dict:
    """``{"intra_op": n, "inter_op": m}``: TensorFlow's thread pools in this process (0 = its
    default, one thread per core)."""
    import tensorflow as tf

    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def set_feed_cores(n: int) -> bool:
    """Keep ``n`` CPU cores free of the training step's thread pools, for the episode feed.

    ``n`` > 0: TensorFlow's intra-op pool gets ``cores - n`` threads (at least 1) and its
    inter-op pool one, so the step's ops use the other cores while the ``tf.data`` feed
    (per-episode augmentation and MFCC, ``kws_proto.data.pipeline``) runs on its own threads beside
    it.  ``n`` = 0: TensorFlow's default pools (every core).  The pools are fixed when
    TensorFlow runs its first op, so this must come before any.

    Returns
    -------
    applied : bool
        Whether the process now runs with the pools ``n`` asks for (set now, or already so);
        False when TensorFlow already runs with others.
    """
    import tensorflow as tf

    if n:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        want = {"intra_op": max(1, (cores or 1) - n), "inter_op": 1}
    else:
        want = {"intra_op": 0, "inter_op": 0}  # TensorFlow's defaults
    if thread_pools() == want:
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(want["intra_op"])
        tf.config.threading.set_inter_op_parallelism_threads(want["inter_op"])
    except RuntimeError:  # TensorFlow is initialised: its pools can no longer change
        return False
    return True
