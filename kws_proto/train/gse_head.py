"""Train a head on the frozen Google speech embedding's windows (:mod:`kws_proto.model.gse_head`).

Episodic, like the encoders: every step draws ``n_way`` words, ``k_shot`` support and ``n_query``
query clips of each (seeded), embeds them with the head (dropout on), and minimises the
cross-entropy of the logits ``-t * d``: ``d`` the squared distances of the unit-length query
embeddings to the unit-length means of the supports' (the prototypes), ``t`` a learned scale
(log-parametrised, starting at ``temperature``).  The speech embedding's windows are computed
once per clip (:func:`~kws_proto.model.gse_head.window_table`); the head is all that trains, a
few ms a step on a CPU.  The corpora are prepared datasets (the caller builds them).

Open-set episodes (``n_unknown`` > 0): after the classes' queries come ``n_unknown`` clips of words
of none of the episode's classes (one clip each of words drawn with replacement from the others).
They enter a second cross-entropy with one more column, "none": the logits are ``-t * [d_1, ...,
d_n, bar]`` with ``bar = exp(a) * mean d`` a learned multiple (``a`` starts at 0) of the
episode's mean query-prototype distance, held constant for the gradient, as in
:mod:`kws_proto.model.rejection`; the unknown clips are labelled "none", the others their class.
The loss is ``(1 - openset_loss) * prototypical + openset_loss * rejection``: the head learns to
put words it was not enrolled with beyond the bar, which is what a spotter's threshold needs.

Words in running speech (``neighbours`` > 0): each clip drawn into an episode is shown, with
that probability, said between two other words of its voice (the end of one before it, the start
of another after it; :func:`~kws_proto.model.gse_head.context_table`, one fixed draw per clip),
otherwise alone: a keyword in a sentence shares its 1 s window with its neighbours.

Augmented words (``augmented`` > 0): with that probability a clip is shown after the waveform
augmentation ``augment`` instead (:func:`~kws_proto.model.gse_head.augmented_table`, one fixed
draw per clip): reverberation and background noise, the rooms and microphones of real speech
that synthesised voices lack.  One uniform draw per clip picks its view: in context below
``neighbours``, augmented below ``neighbours + augmented``, otherwise alone.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from kws_proto.config.gse_head import GSEHeadConfig
from kws_proto.data.dataset import load_manifest
from kws_proto.errors import DatasetError
from kws_proto.model.gse import DIM
from kws_proto.model.gse_head import (
    WINDOWS,
    GSEHead,
    augmented_table,
    context_table,
    window_table,
)


def training_words(roots, config: GSEHeadConfig, progress: bool = True):
    """``(windows [n, 3, 96], labels [n], words)`` of the prepared datasets ``roots``: every
    clip of a word not in ``config.exclude_words`` (case-insensitive), a word of two corpora one
    class, words with fewer than ``k_shot + n_query`` clips left out.  With ``neighbours`` > 0,
    ``windows`` is ``[n, 2, 3, 96]``: each clip alone and said between two others."""
    excluded = {w.lower() for w in config.exclude_words}
    parts, names = [], []
    for root in roots:
        manifest = load_manifest(root)
        words = np.array([c.keyword.lower() for c in manifest.clips])
        keep = ~np.isin(words, sorted(excluded))
        views = [window_table(manifest, progress=progress)]
        if config.neighbours:
            views.append(context_table(manifest, config.seed, progress=progress))
        if config.augmented:
            views.append(augmented_table(manifest, config.augment, config.seed, progress=progress))
        table = np.asarray(views[0]) if len(views) == 1 else np.stack(views, 1)
        parts.append(table[keep])
        names.append(words[keep])
    windows, names = np.concatenate(parts), np.concatenate(names)
    need = config.k_shot + config.n_query
    _, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
    enough = counts[inverse] >= need
    words, labels = np.unique(names[enough], return_inverse=True)
    least = config.n_way + (config.n_unknown > 0)  # open-set episodes need a word of none
    if len(words) < least:
        raise DatasetError(f"{len(words)} words with {need} clips left "
                           f"in {[str(r) for r in roots]}; {config.n_way}-way episodes"
                           f"{' with unknown words' if config.n_unknown else ''} need {least}")
    return windows[enough].astype(np.float32), labels, [str(w) for w in words]


def head_network(config: GSEHeadConfig):
    """The Keras head: ``[n, 3, 96] -> [n, dim]`` (flatten, dropout, dense + ReLU, dropout, dense)."""
    import keras  # lazy: TensorFlow

    inp = keras.Input((WINDOWS, DIM))
    x = keras.layers.Dropout(config.dropout)(keras.layers.Flatten()(inp))
    x = keras.layers.Dense(config.hidden, activation="relu", name="hidden")(x)
    out = keras.layers.Dense(config.dim, name="out")(keras.layers.Dropout(config.dropout)(x))
    return keras.Model(inp, out, name=config.name)


def episode_step(net, config: GSEHeadConfig):
    """``step(support [way, shot, 3, 96], query [way * n_query + n_unknown, 3, 96]) -> (loss,
    accuracy)``, one optimiser update of ``net``, the logit scale and the "none" ratio; the last
    ``n_unknown`` queries are the episode's unknown words."""
    import keras  # lazy: TensorFlow
    import tensorflow as tf  # lazy: TensorFlow

    log_t = tf.Variable(np.log(config.temperature), dtype=tf.float32, name="log_t")
    log_none = tf.Variable(0.0, dtype=tf.float32, name="log_none_ratio")
    optimizer = keras.optimizers.Adam(config.lr)
    way, known = config.n_way, config.n_way * config.n_query
    labels = tf.repeat(tf.range(way), config.n_query)  # [way * n_query]
    with_none = tf.concat([labels, tf.fill([config.n_unknown], way)], 0)  # unknown -> column way
    variables = net.trainable_variables + [log_t] + ([log_none] if config.n_unknown else [])

    @tf.function
    def step(support, query):
        with tf.GradientTape() as tape:
            s = tf.math.l2_normalize(net(tf.reshape(support, (-1, WINDOWS, DIM)), training=True), -1)
            q = tf.math.l2_normalize(net(query, training=True), -1)  # [known + n_unknown, dim]
            protos = tf.math.l2_normalize(
                tf.reduce_mean(tf.reshape(s, (way, config.k_shot, -1)), 1), -1)
            d = tf.reduce_sum((q[:, None] - protos[None]) ** 2, -1)  # [known + n_unknown, way]
            t = tf.exp(log_t)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels, -t * d[:known]))
            if config.n_unknown:
                bar = tf.exp(log_none) * tf.stop_gradient(tf.reduce_mean(d))
                logits = -t * tf.concat([d, tf.fill([tf.shape(d)[0], 1], bar)], 1)
                rejection = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    with_none, logits))
                loss = (1.0 - config.openset_loss) * loss + config.openset_loss * rejection
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        hits = tf.cast(tf.argmin(d[:known], 1, output_type=tf.int32) == labels, tf.float32)
        return loss, tf.reduce_mean(hits)

    return step


def train_gse_head(windows: np.ndarray, labels: np.ndarray, config: GSEHeadConfig,
                   log=print, every: int = 1000) -> GSEHead:
    """Train the head of ``config`` on ``windows [n, 3, 96]`` (with ``neighbours`` or ``augmented``
    > 0: ``[n, views, 3, 96]``, each clip's views; :func:`training_words`) with word ``labels
    [n]``; ``log`` gets the mean loss and accuracy of every ``every`` episodes.  One seed fixes
    the initialisation, the dropout, the episodes and which view of each clip is shown; with
    ``heads`` = K > 1, K networks are trained alike from the seeds ``seed``, ``seed + 1``, … (the
    first is the network ``heads: 1`` trains) and stacked into one ensemble head."""
    if config.heads == 1:
        return _train_network(windows, labels, config, log, every)
    t0, nets = time.perf_counter(), []
    for i in range(config.heads):
        log(f"network {i + 1}/{config.heads} (seed {config.seed + i})")
        nets.append(_train_network(windows, labels, dataclasses.replace(
            config, heads=1, seed=config.seed + i), log, every))
    return GSEHead.ensemble(nets, record={"config": config.to_dict(),
                                          "train_seconds": round(time.perf_counter() - t0, 1)})


def _train_network(windows: np.ndarray, labels: np.ndarray, config: GSEHeadConfig,
                   log, every: int) -> GSEHead:
    """One network of :func:`train_gse_head`, from ``config.seed``."""
    import keras  # lazy: TensorFlow

    keras.utils.set_random_seed(config.seed)
    net = head_network(config)
    step = episode_step(net, config)
    rng = np.random.default_rng(config.seed)
    by_word = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
    per_class = config.k_shot + config.n_query
    t0, seen = time.perf_counter(), []
    for episode in range(1, config.episodes + 1):
        words = rng.choice(len(by_word), config.n_way, replace=False)
        rows = np.stack([rng.choice(by_word[w], per_class, replace=False) for w in words])
        shown = _shown(windows, rows, rng, config.neighbours, config.augmented)
        unknown = _shown(windows, _unknown_rows(rng, by_word, words, config.n_unknown), rng,
                         config.neighbours, config.augmented)
        loss, acc = step(shown[:, :config.k_shot], np.concatenate(
            [shown[:, config.k_shot:].reshape(-1, WINDOWS, DIM), unknown]))
        seen.append((float(loss), float(acc)))
        if episode % every == 0 or episode == config.episodes:
            loss_m, acc_m = np.mean(seen, axis=0)
            log(f"episode {episode}/{config.episodes}: loss {loss_m:.3f}, accuracy {acc_m:.3f} "
                f"({time.perf_counter() - t0:.0f} s)")
            seen = []
    w1, b1 = (v.numpy() for v in net.get_layer("hidden").weights)
    w2, b2 = (v.numpy() for v in net.get_layer("out").weights)
    return GSEHead(w1, b1, w2, b2, record={"config": config.to_dict(),
                                            "train_seconds": round(time.perf_counter() - t0, 1)})


def _unknown_rows(rng, by_word, words, n: int) -> np.ndarray:
    """``[n]`` clip rows, one each of ``n`` words drawn (with replacement) from those not in
    ``words``."""
    if not n:
        return np.zeros(0, np.int64)
    others = rng.choice(np.setdiff1d(np.arange(len(by_word)), words), n)
    return np.array([rng.choice(by_word[w]) for w in others], np.int64)


def _shown(windows: np.ndarray, rows: np.ndarray, rng, neighbours: float,
           augmented: float = 0.0) -> np.ndarray:
    """``windows`` of ``rows [...]`` as an episode shows them, ``[..., 3, 96]``: one uniform draw
    per clip, in context (view 1) below ``neighbours``, augmented (the last view) below
    ``neighbours + augmented``, otherwise alone (view 0); with both 0, no draw."""
    if not neighbours and not augmented:
        return windows[rows]
    if not rows.size:  # no draw for an empty set of rows (closed-set episodes)
        return np.zeros((0, WINDOWS, DIM), windows.dtype)
    u = rng.random(rows.shape)
    view = (u < neighbours).astype(np.int64)
    if augmented:
        view[(u >= neighbours) & (u < neighbours + augmented)] = windows.shape[1] - 1
    return windows[rows, view]
