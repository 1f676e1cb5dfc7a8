"""Episodic training: the explicit GradientTape loop of the design, with checkpoints.

One optimizer step per N-way K-shot episode (per replica under ``--strategy mirrored``)::

    with tf.GradientTape() as tape:
        loss, acc = net(support, query, training=True)
    grads = tape.gradient(loss, net.trainable_variables)
    optimizer.apply_gradients(zip(grads, net.trainable_variables))

BatchNorm uses the statistics of the episode's own batch (support and query together) while
training, and its moving averages (``training=False``) for validation, evaluation and enrolment.
Validation runs every ``train.val_every`` episodes on fixed episodes drawn once from the seed;
the best weights by validation accuracy go to ``best.weights.h5`` (with ``train.ema`` > 0 it is
the moving average of the weights that is validated and kept); a checkpoint of model,
optimizer, step and early-stopping state is written at every validation, so ``--resume`` after
Ctrl-C or SIGKILL loses at most one validation interval.  The sampler's state is the step itself
(episode ``i`` is drawn from ``(seed, i)``), so a resumed run sees the episodes it would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path

from kws_proto.config import ExperimentConfig, same_training
from kws_proto.errors import CheckpointError
from kws_proto.runs import RunDir

STRATEGIES = ("default", "mirrored")


def make_strategy(name: str, logical_cpus: int = 0):
    """``tf.distribute`` strategy by name: the default (one device) or MirroredStrategy.

    ``mirrored`` replicates over every GPU, or, on a machine without one, over the logical CPU
    devices; ``logical_cpus=N`` first splits the CPU into N logical devices (must run before
    TensorFlow initialises its devices).  Multi-worker training is the same code path under
    ``tf.distribute.MultiWorkerMirroredStrategy`` with ``TF_CONFIG`` set on every worker.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        from kws_proto.errors import ConfigError

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
    (per-episode augmentation and MFCC, ``kws_proto.pipeline``) runs on its own threads beside
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


def train(
    cfg: ExperimentConfig,
    run_dir: str | os.PathLike,
    resume: bool = False,
    strategy: str = "default",
    progress: bool = True,
    logical_cpus: int = 0,
) -> dict:
    """Train ``cfg`` into ``run_dir``; return the result record (also in ``result.json``).

    Parameters
    ----------
    cfg : ExperimentConfig
    run_dir : path
        Created if missing.  A directory that already holds checkpoints needs ``resume=True``.
    resume : bool
        Continue from the latest checkpoint; the stored config must train the same encoder
        (:func:`~kws_proto.config.same_training`: only ``head`` may differ).  On a finished
        run nothing is trained: the config is rewritten and the head refitted.
    strategy : {"default", "mirrored"}
        "mirrored" runs one episode per local device and all-reduces the gradients.
    logical_cpus : int
        Split the CPU into this many logical devices first (see :func:`make_strategy`).
    """
    import numpy as np
    import tensorflow as tf
    from tqdm.auto import tqdm

    from kws_proto.data import prepare_data
    from kws_proto.evaluate import evaluate_episodes
    from kws_proto.head import fit_head
    from kws_proto.model_io import build_network, save_weights

    # first: thread pools and devices are fixed once TensorFlow runs an op
    if not set_feed_cores(cfg.train.feed_cores):
        warnings.warn(f"train.feed_cores={cfg.train.feed_cores} is not applied: TensorFlow already "
                      "runs with other thread pools in this process (train in a fresh one, e.g. "
                      "with `kws-proto train`, to apply it)", stacklevel=2)
    dist = make_strategy(strategy, logical_cpus)
    run = RunDir(Path(run_dir))
    _check_run_dir(run, cfg, resume)
    if resume and run.is_finished():  # a new head for a trained encoder
        run.write_config(cfg)
        fit_head(run.root, progress=progress)
        return run.read_result()
    if not resume and run.log_path.exists():
        run.log_path.unlink()  # a fresh run's log starts empty
    run.write_config(cfg)
    tf.keras.utils.set_random_seed(cfg.train.seed)

    data = prepare_data(cfg, progress=progress)
    data.write_splits(run.splits_path)
    ep = cfg.episodes
    sampler = data.sampler("train", ep.n_way, ep.k_shot, ep.n_query, seed=cfg.train.seed,
                           unknown=ep.unknown, silence=ep.silence)
    val_episodes = data.fixed_episodes(
        "validation", ep.val_way, ep.val_shot, ep.val_query, ep.val_episodes,
        seed=cfg.train.seed + 1,
    )

    replicas = dist.num_replicas_in_sync
    with dist.scope():
        net = build_network(cfg)
        schedule = tf.keras.optimizers.schedules.ExponentialDecay(
            cfg.train.lr, cfg.train.lr_decay_every, cfg.train.lr_decay, staircase=True
        )
        optimizer = tf.keras.optimizers.Adam(schedule)
        optimizer.build(net.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        best_acc = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_acc")
        bad_vals = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_validations")
        # the moving average of the trainable weights (train.ema > 0), validated and kept
        averages = [tf.Variable(tf.convert_to_tensor(v), trainable=False, name="ema")
                    for v in net.trainable_variables] if cfg.train.ema else []
    ckpt = tf.train.Checkpoint(model=net, optimizer=optimizer, step=step, best_acc=best_acc,
                               bad_validations=bad_vals, averages=averages)
    manager = tf.train.CheckpointManager(ckpt, str(run.checkpoints), max_to_keep=2)
    if resume and manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    loss_meter = tf.keras.metrics.Mean("loss")
    acc_meter = tf.keras.metrics.Mean("accuracy")

    def step_fn(support, query):
        with tf.GradientTape() as tape:
            loss, acc = net(support, query, training=True)
            scaled = loss / replicas
        grads = tape.gradient(scaled, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return loss, acc

    @tf.function(reduce_retracing=True)
    def train_step(support, query):
        if replicas == 1:
            loss, acc = step_fn(support, query)
        else:  # support/query: [replicas, n_way, k, ...]; replica r trains on episode r
            values = dist.experimental_distribute_values_from_function(
                lambda ctx: (support[ctx.replica_id_in_sync_group], query[ctx.replica_id_in_sync_group])
            )
            loss, acc = dist.run(step_fn, args=values)
            loss = dist.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None)
            acc = dist.reduce(tf.distribute.ReduceOp.MEAN, acc, axis=None)
        loss_meter.update_state(loss)
        acc_meter.update_state(acc)
        if averages:  # after the update, as tf.train.ExponentialMovingAverage(num_updates=step)
            t = tf.cast(step, tf.float32)
            decay = tf.minimum(cfg.train.ema, (1.0 + t) / (10.0 + t))
            for a, v in zip(averages, net.trainable_variables):
                a.assign(decay * a + (1.0 - decay) * v)

    total = cfg.train.episodes
    start = int(step.numpy())
    if resume:
        run.truncate_log(start)
    dataset = data.train_dataset(sampler, start=start * replicas)
    if replicas > 1:
        dataset = dataset.batch(replicas, drop_remainder=True)
    writer = tf.summary.create_file_writer(str(run.root / "tb"))
    stopped_early = False
    t_train = _seconds_before(run, start)  # training time of earlier sessions of this run
    bar = tqdm(total=total, initial=start, desc=f"train {cfg.name}", unit="ep",
               disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        for support, query in dataset.take(max(0, total - start)):
            train_step(support, query)
            step.assign_add(1)
            s = int(step.numpy())
            bar.update(1)
            bar.set_postfix(loss=f"{loss_meter.result():.3f}", acc=f"{acc_meter.result():.3f}")
            if s % cfg.train.val_every and s != total:
                continue
            t_train += time.perf_counter() - t0
            with _swapped(averages, net.trainable_variables):  # validate and keep the average
                val = evaluate_episodes(net, data, val_episodes, distance=cfg.model.distance)
                improved = val.mean > float(best_acc.numpy())
                if improved:
                    save_weights(net.encoder, run.best_weights)
            record = {
                "step": s, "episodes": s * replicas,
                "train_loss": float(loss_meter.result()), "train_acc": float(acc_meter.result()),
                "val_acc": val.mean, "val_ci95": val.ci95,
                "lr": float(schedule(s)), "seconds": round(t_train, 2),
            }
            if improved:
                best_acc.assign(val.mean)
                bad_vals.assign(0)
            else:
                bad_vals.assign_add(1)
            record["best_val_acc"] = float(best_acc.numpy())
            run.append_log(record)
            with writer.as_default(step=s):
                for k in ("train_loss", "train_acc", "val_acc", "lr"):
                    tf.summary.scalar(k, record[k])
            manager.save(checkpoint_number=s)
            bar.write(f"step {s}: loss {record['train_loss']:.3f} train acc {record['train_acc']:.3f} "
                      f"val acc {val}{' *' if improved else ''}")
            loss_meter.reset_state()
            acc_meter.reset_state()
            if cfg.train.patience and int(bad_vals.numpy()) >= cfg.train.patience:
                stopped_early = True
                break
            t0 = time.perf_counter()
    except KeyboardInterrupt:
        manager.save(checkpoint_number=int(step.numpy()))
        bar.close()
        raise
    bar.close()
    result = {
        "name": cfg.name,
        "steps": int(step.numpy()),
        "episodes": int(step.numpy()) * replicas,
        "replicas": replicas,
        "stopped_early": stopped_early,
        "best_val_acc": float(best_acc.numpy()),
        "train_minutes": round(t_train / 60, 3),
        "ms_per_episode": round(1000 * t_train / max(1, int(step.numpy()) * replicas), 2),
        "parameters": int(sum(np.prod(v.shape) for v in net.encoder.weights)),
        "embedding_dim": int(net.encoder.output_shape[-1]),
        "threads": thread_pools(),  # the pools the step ran with
    }
    fit_head(run.root, data)  # from the best weights; before result.json marks the run finished
    run.append_log({"final": result})
    run.write_result(result)
    return result


@contextlib.contextmanager
def _swapped(averages: list, variables: list):
    """Inside the block ``variables`` hold ``averages`` and vice versa; swapped back on exit.

    With no averages (``train.ema`` = 0) nothing happens.  Under a distribution strategy this
    runs in cross-replica context, where an assignment writes every replica's copy.
    """
    import tensorflow as tf

    def swap():
        for a, v in zip(averages, variables):
            raw = tf.identity(v)
            v.assign(a)
            a.assign(raw)

    swap()
    try:
        yield
    finally:
        swap()


def _seconds_before(run: RunDir, start: int) -> float:
    """Training seconds the run had spent up to its checkpoint at ``start`` (0 for a new run)."""
    done = [r["seconds"] for r in run.read_log() if r.get("step", -1) <= start and "seconds" in r]
    return float(done[-1]) if start and done else 0.0


def _check_run_dir(run: RunDir, cfg: ExperimentConfig, resume: bool) -> None:
    has_ckpt = run.checkpoints.is_dir() and any(run.checkpoints.iterdir())
    if resume:
        if not run.config_path.is_file():
            raise CheckpointError(f"{run.root}: nothing to resume (no config.yaml)")
        stored = run.read_config()
        if not same_training(stored, cfg):
            diff = _diff(stored.to_dict(), cfg.to_dict())
            raise CheckpointError(f"{run.root}: config differs from the stored run: {diff}")
    elif has_ckpt or run.result_path.is_file():
        raise CheckpointError(
            f"{run.root}: already holds a run; pass --resume to continue it or choose another --run-dir"
        )


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out
