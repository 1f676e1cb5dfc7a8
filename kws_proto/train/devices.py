"""Where a training step runs: the ``tf.distribute`` strategy and TensorFlow's thread pools."""

from __future__ import annotations

import contextlib
import os

from kws_proto.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name: str, logical_cpus: int = 0):
    """``tf.distribute`` strategy by name: the default (one device), MirroredStrategy or
    MultiWorkerMirroredStrategy.

    ``mirrored`` replicates over every GPU, or, on a machine without one, over the logical CPU
    devices; ``logical_cpus=N`` first splits the CPU into N logical devices (must run before
    TensorFlow initialises its devices).  ``multi-worker`` is one worker of the cluster that
    ``TF_CONFIG`` describes (check it first with :func:`kws_proto.train.cluster.read_cluster`),
    its replicas every local GPU, or the CPU.
    """
    import tensorflow as tf  # lazy: TensorFlow

    if name not in STRATEGIES:
        raise ConfigError(f"strategy={name!r} must be one of {STRATEGIES}")
    split_cpu(logical_cpus)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])


def split_cpu(n: int) -> None:
    """Split the CPU into ``n`` logical devices (none when 0), before TensorFlow initialises its
    devices; nothing happens when it is split so already."""
    import tensorflow as tf  # lazy: TensorFlow

    if not n:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or ()) == n:
        return
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
    )


def local_replicas(dist) -> list[int]:
    """The global replica ids (``replica_id_in_sync_group``) of this process's replicas, in
    order: ``[0]`` on one device, ``[0 .. R-1]`` mirrored, a block of them on a worker."""
    import tensorflow as tf  # lazy: TensorFlow

    ids = dist.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(ctx.replica_id_in_sync_group))
    return [int(v.numpy()) for v in dist.experimental_local_results(ids)]


@contextlib.contextmanager
def dtype_policy(mixed: bool):
    """Layers built inside the block compute in float16 with float32 weights (Keras'
    ``mixed_float16``) when ``mixed``; the global policy is restored on exit, so later models
    (evaluation, the head) are float32 as before.  Without ``mixed`` nothing changes."""
    if not mixed:
        yield
        return
    import keras  # lazy: TensorFlow

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def thread_pools() -> dict:
    """``{"intra_op": n, "inter_op": m}``: TensorFlow's thread pools in this process (0 = its
    default, one thread per core)."""
    import tensorflow as tf  # lazy: TensorFlow

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
    import tensorflow as tf  # lazy: TensorFlow

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
