"""The training step: one optimizer update from one episode per replica, through the strategy."""

from __future__ import annotations

import tensorflow as tf

from kws_proto.train.state import TrainState


def make_train_step(state: TrainState, dist, first_replica: int = 0, jit_compile: bool = False):
    """``(train_step, meters)``: the traced step of one episode per replica, and its meters.

    ``train_step(support, query, tables=None)`` takes ``support [local replicas, n_way, k_shot,
    frames, n_mfcc]``, ``query [local replicas, n_way, n_query, frames, n_mfcc]`` and the
    per-clip tables the objective reads (``{name: (support_rows, query_rows)}``, each with the
    same leading replica axis; :mod:`kws_proto.model.beside`), this process's
    replicas' episodes, the first of them global replica ``first_replica``
    (:func:`~kws_proto.train.devices.local_replicas`).  Always through the strategy
    (``dist.run``; with the default strategy that is one replica, episode 0): every replica
    applies its update, the meters take the replicas' mean loss and accuracy, the weight
    average moves, and the step is counted, all in one call, so an interrupt never parts the
    update from its count.

    ``jit_compile`` compiles the forward and backward pass with XLA.  The loss is divided by the
    replicas (their gradients are summed) and, with a loss-scaling optimizer (mixed precision),
    scaled before the gradients, which its update unscales.

    Returns
    -------
    train_step : tf.function
    meters : dict
        ``{"train_loss": keras.metrics.Mean, "train_acc": keras.metrics.Mean}``.
    """
    objective, optimizer, average = state.objective, state.optimizer, state.average
    variables = objective.trainable_variables
    replicas = dist.num_replicas_in_sync
    meters = {"train_loss": tf.keras.metrics.Mean("loss"),
              "train_acc": tf.keras.metrics.Mean("accuracy")}

    def gradients(support, query, tables):
        with tf.GradientTape() as tape:
            loss, acc = objective(support, query, tables)
            scaled = optimizer.scale_loss(loss / replicas)  # unchanged without loss scaling
        return loss, acc, tape.gradient(scaled, variables)

    if jit_compile:
        gradients = tf.function(gradients, jit_compile=True)

    def replica_step(support, query, tables):
        loss, acc, grads = gradients(support, query, tables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss, acc

    @tf.function(reduce_retracing=True)
    def train_step(support, query, tables=None):
        episodes = dist.experimental_distribute_values_from_function(  # replica r: episode r
            lambda ctx: tf.nest.map_structure(lambda t: t[ctx.replica_id_in_sync_group - first_replica],
                                              (support, query, tables or {})))
        loss, acc = dist.run(replica_step, args=episodes)
        meters["train_loss"].update_state(dist.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None))
        meters["train_acc"].update_state(dist.reduce(tf.distribute.ReduceOp.MEAN, acc, axis=None))
        if average:  # after the update
            average.update(state.step)
        state.step.assign_add(1)

    return train_step, meters
