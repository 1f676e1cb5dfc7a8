"""Embeddings of dataset rows and nearest-prototype scores of fixed episodes.

With ``training=False`` an embedding depends on its clip alone (BatchNorm uses its moving
averages), so every clip of the scored classes is embedded once and the episodes are then
scored on the stored embeddings: 1,000 episodes cost one pass over the clips, and every model
is scored on exactly the same episodes.  Training validates with these, evaluation reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws_proto.data.episodes import UNKNOWN_CLASS
from kws_proto.util.stats import MeanCI, mean_ci
from kws_proto.util.vectors import squared_distances


def embed_rows(net, features, rows, batch_size: int = 256) -> np.ndarray:
    """Embed manifest rows ``rows`` of ``features`` with ``training=False``.

    Parameters
    ----------
    net : PrototypicalNetwork
    features : np.ndarray [shape=(n_clips, frames, n_mfcc)]
        The dataset's feature cache (a memmap is fine: only ``rows`` are read).
    rows : array-like of int [shape=(m,)]

    Returns
    -------
    embeddings : np.ndarray [shape=(m, dim), dtype=float32]
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = []
    for i in range(0, len(rows), batch_size):
        batch = np.asarray(features[np.sort(rows[i : i + batch_size])])  # memmap fancy-index: sorted
        order = np.argsort(np.argsort(rows[i : i + batch_size]))
        out.append(net.embed(batch, training=False).numpy()[order])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def embedding_table(net, features, episodes) -> np.ndarray:
    """``[n_clips, dim]`` embeddings, filled for every row the episodes use (others zero)."""
    rows = np.unique(np.concatenate([np.concatenate([e.support.ravel(), e.query.ravel()]) for e in episodes]))
    if rows.size and rows[0] < 0:
        raise ValueError("evaluation episodes with a synthetic 'silence' class are not supported here")
    emb = embed_rows(net, features, rows)
    table = np.zeros((features.shape[0], emb.shape[1]), np.float32)
    table[rows] = emb
    return table


@dataclass(frozen=True)
class EpisodeScores:
    """Per-episode accuracies plus every query's true and predicted class index."""

    accuracies: np.ndarray  # [n_episodes]
    labels: np.ndarray  # [n_episodes, n_way * n_query]
    predictions: np.ndarray  # [n_episodes, n_way * n_query]

    @property
    def summary(self) -> MeanCI:
        return mean_ci(self.accuracies)


def prototype_distances(table: np.ndarray, episode, known_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances of an episode's queries to its class prototypes: the one scoring
    function behind closed-set accuracy, open-set scores and every experiment's variant.

    Parameters
    ----------
    table : np.ndarray [shape=(n_clips, dim)]
        Embeddings by manifest row (:func:`embedding_table`).
    episode : Episode
    known_only : bool
        Open set: prototypes of the keyword classes only, without the episode's trailing
        ``_unknown_`` class (whose queries are then scored against the keywords).

    Returns
    -------
    distances : np.ndarray [shape=(n_way * n_query, n_protos), dtype=float64]
        Computed in numpy (:func:`kws_proto.util.vectors.squared_distances`, the twin of the
        training loss's TensorFlow function): no TensorFlow call per episode.
    labels : np.ndarray [shape=(n_way * n_query,), dtype=int]
        Each query's class index in the episode (class-major order).
    """
    n_way, n_query = episode.query.shape
    n_protos = n_way - 1 if known_only else n_way
    if known_only and episode.classes[-1] != UNKNOWN_CLASS:
        raise ValueError(f"episode {episode.index} has no {UNKNOWN_CLASS!r} class: draw it with "
                         "unknown_classes")
    protos = table[episode.support[:n_protos]].mean(axis=1)  # [n_protos, dim]
    query = table[episode.query].reshape(n_way * n_query, -1)  # [n_way * n_query, dim]
    d = squared_distances(query, protos)  # [n_way * n_query, n_protos]
    return d, np.repeat(np.arange(n_way), n_query)


def score_episodes(table: np.ndarray, episodes) -> EpisodeScores:
    """Nearest-prototype accuracy of each episode on a precomputed embedding ``table``."""
    accs, labels, preds = [], [], []
    for e in episodes:
        d, y = prototype_distances(table, e)
        p = d.argmin(axis=1)
        accs.append(float((p == y).mean()))
        labels.append(y)
        preds.append(p)
    return EpisodeScores(np.asarray(accs), np.asarray(labels), np.asarray(preds))


def evaluate_episodes(net, data, episodes) -> MeanCI:
    """Mean ± CI accuracy of ``net`` on ``episodes`` over ``data.features``."""
    table = embedding_table(net, data.features, episodes)
    return score_episodes(table, episodes).summary
