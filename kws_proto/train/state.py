"""What a training run carries from step to step, and its checkpoints.

:class:`TrainState` holds the network, the optimizer and its learning-rate schedule, the step,
the early-stopping state (best validation accuracy, validations without improvement) and the
weight averages; one ``tf.train.Checkpoint`` covers them all, written at every validation, so a
resumed run continues exactly where the checkpoint left it.  With ``train.mixed_precision`` the
network is built under Keras' ``mixed_float16`` policy and the optimizer is a
``LossScaleOptimizer`` (dynamic loss scaling) around Adam.
"""

from __future__ import annotations

from dataclasses import dataclass

from kws_proto.config import ExperimentConfig, same_training
from kws_proto.errors import CheckpointError
from kws_proto.model.objective import make_objective
from kws_proto.model.loading import build_network
from kws_proto.model.runs import RunDir
from kws_proto.train.averaging import WeightAverage
from kws_proto.train.devices import dtype_policy


@dataclass
class TrainState:
    net: object  # PrototypicalNetwork
    objective: object  # the episode loss, kws_proto.model.beside.make_objective
    optimizer: object
    schedule: object  # step -> learning rate
    step: object  # tf.Variable int64
    best_acc: object  # tf.Variable float64, -1 before the first validation
    bad_validations: object  # tf.Variable int64
    average: WeightAverage
    manager: object  # tf.train.CheckpointManager

    @classmethod
    def create(cls, cfg: ExperimentConfig, dist, checkpoints) -> "TrainState":
        """A fresh state for ``cfg`` under strategy ``dist``, checkpointed into the folder
        ``checkpoints``."""
        import tensorflow as tf  # lazy: TensorFlow

        with dist.scope():
            with dtype_policy(cfg.train.mixed_precision):
                net = build_network(cfg)
                objective = make_objective(cfg, net)
            schedule = tf.keras.optimizers.schedules.ExponentialDecay(
                cfg.train.lr, cfg.train.lr_decay_every, cfg.train.lr_decay, staircase=True
            )
            optimizer = tf.keras.optimizers.Adam(schedule)
            if cfg.train.mixed_precision:
                optimizer = tf.keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(objective.trainable_variables)
            step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            best_acc = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_acc")
            bad = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_validations")
            average = WeightAverage(net.trainable_variables, cfg.train.ema)
        ckpt = tf.train.Checkpoint(model=net, optimizer=optimizer, step=step, best_acc=best_acc,
                                   bad_validations=bad, averages=average.averages,
                                   **objective.checkpointed)
        manager = tf.train.CheckpointManager(ckpt, str(checkpoints), max_to_keep=2)
        return cls(net, objective, optimizer, schedule, step, best_acc, bad, average, manager)

    def restore_latest(self, checkpoints=None) -> str | None:
        """Restore the latest checkpoint of the folder ``checkpoints`` (default: this state's
        own; a worker of a multi-worker run reads the chief's), if any; return its path."""
        import tensorflow as tf  # lazy: TensorFlow

        latest = (self.manager.latest_checkpoint if checkpoints is None
                  else tf.train.latest_checkpoint(str(checkpoints)))
        if latest:
            self.manager.checkpoint.restore(latest).assert_existing_objects_matched()
        return latest

    def save(self) -> None:
        self.manager.save(checkpoint_number=int(self.step.numpy()))

    def record_validation(self, accuracy: float) -> bool:
        """Update the early-stopping state with a validation accuracy; True when it improved."""
        improved = accuracy > float(self.best_acc.numpy())
        if improved:
            self.best_acc.assign(accuracy)
            self.bad_validations.assign(0)
        else:
            self.bad_validations.assign_add(1)
        return improved


def check_run_dir(run: RunDir, cfg: ExperimentConfig, resume: bool) -> None:
    """A :class:`CheckpointError` unless ``run`` can take ``cfg``: a resumed run must hold a
    config that trains the same encoder, a new run must not overwrite one."""
    has_ckpt = run.checkpoints.is_dir() and any(run.checkpoints.iterdir())
    if resume:
        if not run.config_path.is_file():
            raise CheckpointError(f"{run.root}: nothing to resume (no config.yaml)")
        stored = run.read_config()
        if not same_training(stored, cfg):
            diff = config_diff(stored.to_dict(), cfg.to_dict())
            raise CheckpointError(f"{run.root}: config differs from the stored run: {diff}")
    elif has_ckpt or run.result_path.is_file():
        raise CheckpointError(
            f"{run.root}: already holds a run; pass --resume to continue it or choose another --run-dir"
        )


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """``["key.path: old -> new", ...]`` for every leaf where nested dicts ``a`` and ``b`` differ."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out
