"""Episodic training: the explicit GradientTape loop of the design, with checkpoints.

One optimizer step per N-way K-shot episode (per replica under ``--strategy mirrored`` or
``multi-worker``; :mod:`kws_proto.train.step`)::

    with tf.GradientTape() as tape:
        loss, acc = net(support, query, training=True)
    grads = tape.gradient(loss, net.trainable_variables)
    optimizer.apply_gradients(zip(grads, net.trainable_variables))

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

Training reads a dataset its caller has opened (:class:`~kws_proto.data.experiment.ExperimentData`,
e.g. ``data_prep.builtin.prepare_data``); it never builds one.  Building a cache runs TensorFlow,
which fixes its thread pools and devices at its first op, so a caller that builds the data first
calls :func:`prepare_process` before it (``kws-proto train`` does); :func:`train` calls it again,
which changes nothing then.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from kws_proto.config import ExperimentConfig
from kws_proto.data.experiment import ExperimentData
from kws_proto.model.beside import frozen_table
from kws_proto.model.loading import save_weights
from kws_proto.model.runs import RunDir
from kws_proto.model.scoring import evaluate_episodes
from kws_proto.train.cluster import SINGLE, Cluster, read_cluster, worker_output
from kws_proto.train.devices import (local_replicas, make_strategy, set_feed_cores, split_cpu,
                                     thread_pools)
from kws_proto.train.head_fit import fit_head
from kws_proto.train.state import TrainState, check_run_dir
from kws_proto.train.step import make_train_step


def prepare_process(cfg: ExperimentConfig, strategy: str = "default", logical_cpus: int = 0) -> Cluster:
    """Set this process up for training ``cfg``, before TensorFlow runs its first op; return its
    place in the cluster (:data:`~kws_proto.train.cluster.SINGLE` unless ``multi-worker``).

    Reads and checks ``TF_CONFIG`` (``multi-worker``), fixes the thread pools
    (``train.feed_cores``; a warning when TensorFlow already runs with others) and splits the CPU
    into ``logical_cpus`` devices.  Calling it again changes nothing.
    """
    cluster = read_cluster() if strategy == "multi-worker" else SINGLE  # before TensorFlow reads it
    if not set_feed_cores(cfg.train.feed_cores):
        warnings.warn(f"train.feed_cores={cfg.train.feed_cores} is not applied: TensorFlow already "
                      "runs with other thread pools in this process (train in a fresh one, e.g. "
                      "with `kws-proto train`, to apply it)", stacklevel=3)
    split_cpu(logical_cpus)
    return cluster


def train(cfg: ExperimentConfig, data: ExperimentData, run_dir: str | os.PathLike,
          resume: bool = False, strategy: str = "default", progress: bool = True,
          logical_cpus: int = 0) -> dict:
    """Train ``cfg`` on ``data`` into ``run_dir``; return the result record (also in ``result.json``).

    Parameters
    ----------
    cfg : ExperimentConfig
    data : ExperimentData
        ``cfg``'s dataset, opened through its front end and augmentation
        (``data_prep.builtin.prepare_data(cfg)``).
    run_dir : path
        Created if missing.  A directory that already holds checkpoints needs ``resume=True``.
    resume : bool
        Continue from the latest checkpoint; the stored config must train the same encoder
        (:func:`~kws_proto.config.same_training`: only ``head`` may differ).  On a finished
        run nothing is trained: the config is rewritten and the head refitted on ``data``.
    strategy : {"default", "mirrored", "multi-worker"}
        "mirrored" runs one episode per local device and all-reduces the gradients;
        "multi-worker" is one worker of the cluster in ``TF_CONFIG``
        (:mod:`kws_proto.train.cluster`): every worker calls this with the same arguments (and
        its own ``data``), the chief writes ``run_dir``, the others a scratch folder removed
        at the end.
    logical_cpus : int
        Split the CPU into this many logical devices first (see
        :func:`~kws_proto.train.devices.make_strategy`).
    """
    cluster = prepare_process(cfg, strategy, logical_cpus)
    dist = make_strategy(strategy)  # the CPU is split already
    run = RunDir(Path(run_dir))
    check_run_dir(run, cfg, resume)
    if resume and run.is_finished():  # a new head for a trained encoder
        if cluster.is_chief:
            print(f"{run.root}: training finished already; refitting its head only", flush=True)
            run.write_config(cfg)
            fit_head(run.root, data)
        return run.read_result()
    with worker_output(run, cluster) as out:
        trainer = Trainer(cfg, data, dist, cluster, run, out, progress and cluster.is_chief)
        return trainer.run(resume)


class Trainer:
    """This worker's part of a run: trained into ``out`` (``run`` itself on the chief), resumed
    from ``run``'s checkpoint.

    Step ``s`` trains the sampler's episodes ``s*R .. s*R+R-1`` on the ``R`` replicas of the
    cluster, episode ``s*R + r`` on replica ``r`` (:func:`~kws_proto.train.devices.local_replicas`);
    each worker feeds only its own replicas' episodes, so the global sequence of episodes is
    that of one process with ``R`` replicas, whatever the number of workers.

    Attributes
    ----------
    whole : bool
        Whether the state is whole now (Ctrl-C then writes a checkpoint); set by :meth:`_halfway`
        only.
    """

    def __init__(self, cfg: ExperimentConfig, data: ExperimentData, dist, cluster: Cluster,
                 run: RunDir, out: RunDir, progress: bool = True):
        self.cfg, self.data, self.dist, self.cluster = cfg, data, dist, cluster
        self.run_dir, self.out, self.progress = run, out, progress
        self.replicas = dist.num_replicas_in_sync
        self.whole = True

    def run(self, resume: bool = False) -> dict:
        """Train to ``train.episodes`` (or early stopping), fit the head on the chief, write the
        result; return it."""
        self._begin(resume)
        episodes = self._feed()
        self.bar = tqdm(total=self.cfg.train.episodes, initial=self.start, unit="ep",
                        desc=f"train {self.cfg.name}", disable=not self.progress, dynamic_ncols=True)
        try:
            stopped_early = self._loop(episodes)
        except KeyboardInterrupt:
            if self.whole:  # else the last checkpoint stands: --resume redoes what followed it
                self.state.save()
            raise
        finally:
            self.bar.close()
        result = self._result(stopped_early)
        if self.cluster.is_chief:
            fit_head(self.out.root, self.data)  # from the best weights; before result.json
        self.out.append_log({"final": result})
        self.out.write_result(result)
        return result

    def _begin(self, resume: bool) -> None:
        """The run's files, seeds, episodes and state (restored when resuming); ``self.start``."""
        cfg, out, ep = self.cfg, self.out, self.cfg.episodes
        if not resume and out.log_path.exists():
            out.log_path.unlink()  # a fresh run's log starts empty
        out.write_config(cfg)
        tf.keras.utils.set_random_seed(cfg.train.seed)
        self.data.write_splits(out.splits_path)
        self.sampler = self.data.sampler("train", ep.n_way, ep.k_shot, ep.n_query,
                                         seed=cfg.train.seed, unknown=ep.unknown, silence=ep.silence)
        self.val_episodes = self.data.fixed_episodes("validation", ep.val_way, ep.val_shot,
                                                     ep.val_query, ep.val_episodes,
                                                     seed=cfg.train.seed + 1)
        self.state = TrainState.create(cfg, self.dist, out.checkpoints)
        self.start = self._restore() if resume else 0
        self.seconds = _seconds_before(self.run_dir, self.start)  # of earlier processes

    def _restore(self) -> int:
        """Restore the chief's latest checkpoint, cut the log after it; return its step."""
        checkpoint = self.state.restore_latest(self.run_dir.checkpoints)
        start = int(self.state.step.numpy())
        print(f"resuming {self.run_dir.root} at step {start} of {self.cfg.train.episodes} "
              f"(checkpoint {checkpoint or 'none: starting from step 0'})", flush=True)
        self.out.truncate_log(start)
        return start

    def _feed(self):
        """The train step, its meters and TensorBoard writer; return the episodes still to train,
        batched by this process's replicas: ``(support [local replicas, n_way, k_shot, ...],
        query [local replicas, n_way, n_query, ...])``."""
        mine = local_replicas(self.dist)
        self.train_step, self.meters = make_train_step(self.state, self.dist, mine[0],
                                                       self.cfg.train.jit_compile)
        member = self.cfg.beside.member  # the frozen member trained beside, if any
        tables = {member: frozen_table(member, self.data)} if member else None
        dataset = self.data.train_dataset(self.sampler, start=self.start * self.replicas,
                                          every=self.replicas, offsets=mine, tables=tables)
        dataset = dataset.batch(len(mine), drop_remainder=True)
        self.writer = tf.summary.create_file_writer(str(self.out.root / "tb"))
        return dataset.take(max(0, self.cfg.train.episodes - self.start))

    def _loop(self, episodes) -> bool:
        """Train on ``episodes``, validating every ``train.val_every`` steps and at the last;
        return whether early stopping ended it."""
        total, patience = self.cfg.train.episodes, self.cfg.train.patience
        t0 = time.perf_counter()
        for episode in episodes:  # (support, query) or (support, query, tables)
            with self._halfway(self.cluster.workers > 1):  # a dead worker fails a collective
                self.train_step(*episode)
            s = int(self.state.step.numpy())
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{self.meters['train_loss'].result():.3f}",
                                 acc=f"{self.meters['train_acc'].result():.3f}")
            if s % self.cfg.train.val_every and s != total:
                continue
            self.seconds += time.perf_counter() - t0
            with self._halfway():  # weights swapped for their average; record, checkpoint unwritten
                record = self._validate(s)
            self._log(record)
            if patience and int(self.state.bad_validations.numpy()) >= patience:
                return True
            t0 = time.perf_counter()
        return False

    @contextlib.contextmanager
    def _halfway(self, applies: bool = True):
        """Inside the block the state may be half updated (when ``applies``): Ctrl-C there writes
        no checkpoint.  Only a block that completes makes the state whole again; one an
        exception leaves keeps it as it was for :meth:`run`'s handler."""
        self.whole = not applies
        yield
        self.whole = True

    def _validate(self, s: int) -> dict:
        """Score the (averaged) weights on the validation episodes, keep them when best, append
        the log record and write a checkpoint; return the record (plus ``val`` and ``improved``)."""
        state = self.state
        with state.average.swapped():  # validate and keep the average
            val = evaluate_episodes(state.net, self.data, self.val_episodes)
            improved = val.mean > float(state.best_acc.numpy())
            if improved:
                save_weights(state.net.encoder, self.out.best_weights)
        record = {
            "step": s, "episodes": s * self.replicas,
            "train_loss": float(self.meters["train_loss"].result()),
            "train_acc": float(self.meters["train_acc"].result()),
            "val_acc": val.mean, "val_ci95": val.ci95,
            "lr": float(state.schedule(s)), "seconds": round(self.seconds, 2),
        }
        state.record_validation(val.mean)
        record["best_val_acc"] = float(state.best_acc.numpy())
        self.out.append_log(record)
        state.save()
        return {**record, "val": val, "improved": improved}

    def _log(self, record: dict) -> None:
        """A validation's TensorBoard scalars and progress line; the meters start again."""
        with self.writer.as_default(step=record["step"]):
            for k in ("train_loss", "train_acc", "val_acc", "lr"):
                tf.summary.scalar(k, record[k])
        if self.cluster.is_chief:
            self.bar.write(f"step {record['step']}: loss {record['train_loss']:.3f} train acc "
                           f"{record['train_acc']:.3f} val acc {record['val']}"
                           f"{' *' if record['improved'] else ''}")
        for meter in self.meters.values():
            meter.reset_state()

    def _result(self, stopped_early: bool) -> dict:
        """The run's ``result.json``: how far it trained, how well, how fast, how big."""
        steps = int(self.state.step.numpy())
        encoder = self.state.net.encoder
        return {
            "name": self.cfg.name,
            "steps": steps,
            "episodes": steps * self.replicas,
            "replicas": self.replicas,
            "workers": self.cluster.workers,
            "global_batch": self.replicas,  # episodes per optimizer step, over every worker
            "stopped_early": stopped_early,
            "best_val_acc": float(self.state.best_acc.numpy()),
            "train_minutes": round(self.seconds / 60, 3),
            "ms_per_episode": round(1000 * self.seconds / max(1, steps * self.replicas), 2),
            "parameters": int(sum(np.prod(v.shape) for v in encoder.weights)),
            "embedding_dim": int(encoder.output_shape[-1]),
            "threads": thread_pools(),  # the pools the step ran with
        }


def _seconds_before(run: RunDir, start: int) -> float:
    """Training seconds the run had spent up to its checkpoint at ``start`` (0 for a new run)."""
    done = [r["seconds"] for r in run.read_log() if r.get("step", -1) <= start and "seconds" in r]
    return float(done[-1]) if start and done else 0.0
