"""Episodic training: the explicit GradientTape loop of the design, with checkpoints.

One optimizer step per N-way K-shot episode (per replica under ``--strategy mirrored`` or
``multi-worker``)::

    with tf.GradientTape() as tape:
        loss, acc = net(support, query, training=True)
    grads = tape.gradient(loss, net.trainable_variables)
    optimizer.apply_gradients(zip(grads, net.trainable_variables))

With ``train.distill`` > 0 the feed also carries the frozen teacher's embeddings of the episode's
clips (:func:`~kws_proto.model.distill.teacher_table`, built once into the dataset's cache), and
the step minimises ``loss + train.distill * distill``, the relational distillation term
(:mod:`kws_proto.model.distill`); the log's ``train_loss`` stays the prototypical loss and
``train_distill`` is the term's mean, unweighted.  Distillation trains on one replica only.

BatchNorm uses the statistics of the episode's own batch (support and query together) while
training, and its moving averages (``training=False``) for validation, evaluation and enrolment.
Validation runs every ``train.val_every`` episodes on fixed episodes drawn once from the seed;
the best weights by validation accuracy go to ``best.weights.h5`` (with ``train.ema`` > 0 it is
the moving average of the weights that is validated and kept); a checkpoint of the whole
:class:`~kws_proto.train.state.TrainState` is written at every validation, so ``--resume`` after
Ctrl-C or SIGKILL loses at most one validation interval.  Ctrl-C also writes one where the state is
whole: between steps or within a step of one process (its update and its step count happen in
one call), not during validation nor within a step of several workers (a worker that died can
leave a collective step half applied).  The sampler's state is the step itself
(episode ``i`` is drawn from ``(seed, i)``), so a resumed run sees the episodes it would have seen.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

from data_prep.builtin import prepare_data
from kws_proto.config import ExperimentConfig
from kws_proto.errors import ConfigError
from kws_proto.model.runs import RunDir
from kws_proto.model.scoring import evaluate_episodes
from kws_proto.train.cluster import SINGLE, Cluster, read_cluster, worker_output
from kws_proto.train.devices import local_replicas, make_strategy, set_feed_cores, thread_pools
from kws_proto.train.head_fit import fit_head
from kws_proto.train.state import TrainState, check_run_dir


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
    strategy : {"default", "mirrored", "multi-worker"}
        "mirrored" runs one episode per local device and all-reduces the gradients;
        "multi-worker" is one worker of the cluster in ``TF_CONFIG``
        (:mod:`kws_proto.train.cluster`): every worker calls this with the same arguments, the
        chief writes ``run_dir``, the others a scratch folder removed at the end.
    logical_cpus : int
        Split the CPU into this many logical devices first (see
        :func:`~kws_proto.train.devices.make_strategy`).
    """
    cluster = read_cluster() if strategy == "multi-worker" else SINGLE  # before TensorFlow starts
    # then: thread pools and devices are fixed once TensorFlow runs an op
    if not set_feed_cores(cfg.train.feed_cores):
        warnings.warn(f"train.feed_cores={cfg.train.feed_cores} is not applied: TensorFlow already "
                      "runs with other thread pools in this process (train in a fresh one, e.g. "
                      "with `kws-proto train`, to apply it)", stacklevel=2)
    dist = make_strategy(strategy, logical_cpus)
    check_distill(cfg, dist.num_replicas_in_sync)
    run = RunDir(Path(run_dir))
    check_run_dir(run, cfg, resume)
    if resume and run.is_finished():  # a new head for a trained encoder
        if cluster.is_chief:
            print(f"{run.root}: training finished already; refitting its head only", flush=True)
            run.write_config(cfg)
            fit_head(run.root, progress=progress)
        return run.read_result()
    with worker_output(run, cluster) as out:
        return train_episodes(cfg, dist, cluster, run, out, resume, progress and cluster.is_chief)


def train_episodes(cfg: ExperimentConfig, dist, cluster: Cluster, run: RunDir, out: RunDir,
                   resume: bool, progress: bool) -> dict:
    """The loop of :func:`train`: this worker's part of the run, written into ``out`` (``run``
    itself on the chief), resumed from ``run``'s checkpoint.

    Step ``s`` trains the sampler's episodes ``s*R .. s*R+R-1`` on the ``R`` replicas of the
    cluster, episode ``s*R + r`` on replica ``r`` (:func:`~kws_proto.train.devices.local_replicas`);
    each worker feeds only its own replicas' episodes, so the global sequence of episodes is
    that of one process with ``R`` replicas, whatever the number of workers.
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    if not resume and out.log_path.exists():
        out.log_path.unlink()  # a fresh run's log starts empty
    out.write_config(cfg)
    tf.keras.utils.set_random_seed(cfg.train.seed)

    data = prepare_data(cfg, progress=progress)
    data.write_splits(out.splits_path)
    ep = cfg.episodes
    sampler = data.sampler("train", ep.n_way, ep.k_shot, ep.n_query, seed=cfg.train.seed,
                           unknown=ep.unknown, silence=ep.silence)
    val_episodes = data.fixed_episodes("validation", ep.val_way, ep.val_shot, ep.val_query,
                                       ep.val_episodes, seed=cfg.train.seed + 1)
    targets = None  # [n_clips, d_teacher]: the teacher's embedding of every clip
    if cfg.train.distill > 0:
        from kws_proto.model.distill import teacher_table

        targets = teacher_table(cfg.train.teacher, data.manifest, data.feature_config, progress,
                                centre=cfg.train.teacher_centre)

    state = TrainState.create(cfg, dist, out.checkpoints)
    total = cfg.train.episodes
    if resume:
        checkpoint = state.restore_latest(run.checkpoints)  # the chief's
        start = int(state.step.numpy())
        print(f"resuming {run.root} at step {start} of {total} "
              f"(checkpoint {checkpoint or 'none: starting from step 0'})", flush=True)
        out.truncate_log(start)
    start = int(state.step.numpy())
    replicas = dist.num_replicas_in_sync
    mine = local_replicas(dist)
    train_step, loss_meter, acc_meter, distill_meter = make_train_step(
        state, dist, mine[0], cfg.train.jit_compile, cfg.train.distill)
    dataset = data.train_dataset(sampler, start=start * replicas, every=replicas, offsets=mine,
                                 targets=targets)
    if replicas > 1:
        dataset = dataset.batch(len(mine), drop_remainder=True)
    writer = tf.summary.create_file_writer(str(out.root / "tb"))

    stopped_early = False
    partial = False  # whether the state may be half-updated now (Ctrl-C then writes no checkpoint)
    t_train = _seconds_before(run, start)  # training time of earlier processes of this run
    bar = tqdm(total=total, initial=start, desc=f"train {cfg.name}", unit="ep",
               disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        for batch in dataset.take(max(0, total - start)):  # (support, query[, targets])
            partial = cluster.workers > 1  # a dead worker fails a collective mid-step
            train_step(*batch)
            partial = False
            s = int(state.step.numpy())
            bar.update(1)
            bar.set_postfix(loss=f"{loss_meter.result():.3f}", acc=f"{acc_meter.result():.3f}")
            if s % cfg.train.val_every and s != total:
                continue
            t_train += time.perf_counter() - t0
            partial = True  # weights swapped for their average; record and checkpoint unwritten
            record = validate_and_save(state, cfg, data, val_episodes, out, replicas,
                                       loss_meter, acc_meter, t_train, distill_meter)
            partial = False
            with writer.as_default(step=s):
                for k in ("train_loss", "train_acc", "train_distill", "val_acc", "lr"):
                    if k in record:
                        tf.summary.scalar(k, record[k])
            if cluster.is_chief:
                term = f" distill {record['train_distill']:.4f}" if "train_distill" in record else ""
                bar.write(f"step {s}: loss {record['train_loss']:.3f}{term} train acc "
                          f"{record['train_acc']:.3f} val acc {record['val']}"
                          f"{' *' if record['improved'] else ''}")
            for meter in (loss_meter, acc_meter, distill_meter):
                meter.reset_state()
            if cfg.train.patience and int(state.bad_validations.numpy()) >= cfg.train.patience:
                stopped_early = True
                break
            t0 = time.perf_counter()
    except KeyboardInterrupt:
        if not partial:  # else the last checkpoint stands: --resume redoes what followed it
            state.save()
        bar.close()
        raise
    bar.close()
    result = result_record(cfg, state, replicas, stopped_early, t_train, cluster.workers)
    if cluster.is_chief:
        fit_head(out.root, data)  # from the best weights; before result.json marks the run finished
    out.append_log({"final": result})
    out.write_result(result)
    return result


def check_distill(cfg: ExperimentConfig, replicas: int) -> None:
    """A :class:`~kws_proto.errors.ConfigError` when ``cfg`` distils (``train.distill`` > 0) on
    more than one replica: the teacher's targets are fed to single-replica training only."""
    if cfg.train.distill > 0 and replicas > 1:
        raise ConfigError(f"train.distill={cfg.train.distill!r} trains on one replica only, "
                          f"not {replicas} (--strategy mirrored or multi-worker): set "
                          "train.distill=0 or train with the default strategy")


def make_train_step(state: TrainState, dist, first_replica: int = 0, jit_compile: bool = False,
                    distill: float = 0.0):
    """``(train_step, loss_meter, acc_meter, distill_meter)``: the traced step of one episode per
    replica.

    ``train_step(support, query)`` takes ``[n_way, k_shot, frames, n_mfcc]`` and
    ``[n_way, n_query, frames, n_mfcc]`` (with a leading axis of this process's replicas under
    a multi-replica strategy, the first of them global replica ``first_replica``), applies one
    optimizer update, feeds the meters, moves the weight average and counts the step.  ``jit_compile`` compiles
    the forward and backward pass with XLA.  A loss-scaling optimizer (mixed precision) scales
    the loss before the gradients and unscales them in its update.  ``train_step(support, query,
    targets)`` (one replica only, :func:`check_distill`) takes the teacher's ``[n_way * k_shot +
    n_way * n_query, d_teacher]`` too and minimises ``loss + distill * term``
    (:meth:`~kws_proto.model.protonet.PrototypicalNetwork.call`); ``distill_meter`` averages the
    term (it stays empty without targets) and ``loss_meter`` the prototypical loss alone.
    """
    import tensorflow as tf

    net, optimizer, average = state.net, state.optimizer, state.average
    replicas = dist.num_replicas_in_sync
    loss_meter = tf.keras.metrics.Mean("loss")
    acc_meter = tf.keras.metrics.Mean("accuracy")
    distill_meter = tf.keras.metrics.Mean("distill")

    def gradients(support, query, targets=None):
        with tf.GradientTape() as tape:
            if targets is None:
                (loss, acc), term = net(support, query, training=True), None
                objective = loss
            else:
                loss, acc, term = net(support, query, training=True, teacher=targets)
                objective = loss + distill * term
            scaled = optimizer.scale_loss(objective / replicas)  # unchanged without loss scaling
        return loss, acc, term, tape.gradient(scaled, net.trainable_variables)

    if jit_compile:
        gradients = tf.function(gradients, jit_compile=True)

    def step_fn(support, query, targets=None):
        loss, acc, term, grads = gradients(support, query, targets)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return loss, acc, term

    @tf.function(reduce_retracing=True)
    def train_step(support, query, targets=None):
        if replicas == 1:
            loss, acc, term = step_fn(support, query, targets)
        else:  # support/query: [local replicas, n_way, k, ...]; replica r trains on episode r
            values = dist.experimental_distribute_values_from_function(
                lambda ctx: (support[ctx.replica_id_in_sync_group - first_replica],
                             query[ctx.replica_id_in_sync_group - first_replica])
            )
            loss, acc = dist.run(lambda s, q: step_fn(s, q)[:2], args=values)
            loss = dist.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None)
            acc = dist.reduce(tf.distribute.ReduceOp.MEAN, acc, axis=None)
            term = None
        loss_meter.update_state(loss)
        acc_meter.update_state(acc)
        if term is not None:
            distill_meter.update_state(term)
        if average:  # after the update
            average.update(state.step)
        state.step.assign_add(1)  # in the call that updates: an interrupt never parts the two

    return train_step, loss_meter, acc_meter, distill_meter


def validate_and_save(state: TrainState, cfg: ExperimentConfig, data, val_episodes, run: RunDir,
                      replicas: int, loss_meter, acc_meter, seconds: float,
                      distill_meter=None) -> dict:
    """Score the (averaged) weights on the validation episodes, keep them when best, append the
    log record and write a checkpoint; return the record (plus ``val`` and ``improved``).  With
    ``train.distill`` > 0 the record holds ``train_distill``, ``distill_meter``'s mean."""
    from kws_proto.model.loading import save_weights

    s = int(state.step.numpy())
    with state.average.swapped():  # validate and keep the average
        val = evaluate_episodes(state.net, data, val_episodes)
        improved = val.mean > float(state.best_acc.numpy())
        if improved:
            save_weights(state.net.encoder, run.best_weights)
    record = {
        "step": s, "episodes": s * replicas,
        "train_loss": float(loss_meter.result()), "train_acc": float(acc_meter.result()),
        "val_acc": val.mean, "val_ci95": val.ci95,
        "lr": float(state.schedule(s)), "seconds": round(seconds, 2),
    }
    if cfg.train.distill > 0 and distill_meter is not None:
        record["train_distill"] = float(distill_meter.result())
    state.record_validation(val.mean)
    record["best_val_acc"] = float(state.best_acc.numpy())
    run.append_log(record)
    state.save()
    return {**record, "val": val, "improved": improved}


def result_record(cfg: ExperimentConfig, state: TrainState, replicas: int, stopped_early: bool,
                  seconds: float, workers: int = 1) -> dict:
    """The run's ``result.json``: how far it trained, how well, how fast, how big."""
    import numpy as np

    steps = int(state.step.numpy())
    encoder = state.net.encoder
    return {
        "name": cfg.name,
        "steps": steps,
        "episodes": steps * replicas,
        "replicas": replicas,
        "workers": workers,
        "global_batch": replicas,  # episodes per optimizer step, over every worker
        "stopped_early": stopped_early,
        "best_val_acc": float(state.best_acc.numpy()),
        "train_minutes": round(seconds / 60, 3),
        "ms_per_episode": round(1000 * seconds / max(1, steps * replicas), 2),
        "parameters": int(sum(np.prod(v.shape) for v in encoder.weights)),
        "embedding_dim": int(encoder.output_shape[-1]),
        "threads": thread_pools(),  # the pools the step ran with
    }


def _seconds_before(run: RunDir, start: int) -> float:
    """Training seconds the run had spent up to its checkpoint at ``start`` (0 for a new run)."""
    done = [r["seconds"] for r in run.read_log() if r.get("step", -1) <= start and "seconds" in r]
    return float(done[-1]) if start and done else 0.0
