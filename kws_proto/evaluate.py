"""Few-shot evaluation on fixed episodes: accuracy as mean ± 95% CI over episodes.

With ``training=False`` an embedding depends on its clip alone (BatchNorm uses its moving
averages), so every clip of the evaluated classes is embedded once and the episodes are then
scored on the stored embeddings: 1,000 episodes cost one pass over the clips, and every model
is scored on exactly the same episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws_proto.stats import MeanCI, mean_ci


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


def score_episodes(table: np.ndarray, episodes, distance: str = "euclidean") -> EpisodeScores:
    """Nearest-prototype accuracy of each episode on a precomputed embedding ``table``."""
    from kws_proto.protonet import prototypes, squared_distances
    import tensorflow as tf

    accs, labels, preds = [], [], []
    for e in episodes:
        n_way, n_query = e.query.shape
        support = table[e.support]  # [n_way, k_shot, dim]
        query = table[e.query].reshape(n_way * n_query, -1)  # [n_way * n_query, dim]
        if distance == "cosine":
            support = support / np.maximum(np.linalg.norm(support, axis=-1, keepdims=True), 1e-12)
            query = query / np.maximum(np.linalg.norm(query, axis=-1, keepdims=True), 1e-12)
        protos = prototypes(tf.constant(support))
        d = squared_distances(tf.constant(query), protos).numpy()  # [n_way * n_query, n_way]
        y = np.repeat(np.arange(n_way), n_query)
        p = d.argmin(axis=1)
        accs.append(float((p == y).mean()))
        labels.append(y)
        preds.append(p)
    return EpisodeScores(np.asarray(accs), np.asarray(labels), np.asarray(preds))


def evaluate_episodes(net, data, episodes, distance: str = "euclidean") -> MeanCI:
    """Mean ± CI accuracy of ``net`` on ``episodes`` over ``data.features``."""
    table = embedding_table(net, data.features, episodes)
    return score_episodes(table, episodes, distance).summary


@dataclass(frozen=True)
class EvalSetting:
    """One cell of the evaluation grid."""

    n_way: int
    k_shot: int
    n_query: int = 15
    episodes: int = 1000


def grid(ways, shots, n_query: int = 15, episodes: int = 1000) -> list[EvalSetting]:
    """Every (way, shot) combination, in order."""
    return [EvalSetting(int(w), int(k), n_query, episodes) for w in ways for k in shots]


def eval_episodes(data, classes, setting: EvalSetting, seed: int = 0, unknown=()):
    """The fixed episodes of one grid cell over ``classes`` of ``data`` (same seed, same episodes).

    With ``unknown`` words, every episode gets the extra pooled class ``_unknown_`` (open set)."""
    from kws_proto.episodes import EpisodeSampler, fixed_episodes

    sampler = EpisodeSampler(
        data.manifest, classes, setting.n_way, setting.k_shot, setting.n_query, seed=seed,
        speaker_disjoint=data.speaker_disjoint, unknown_classes=tuple(unknown),
    )
    return fixed_episodes(sampler, setting.episodes)


def open_eval_data(cfg, data_dir=None, speaker_disjoint: bool = False, progress: bool = True):
    """The dataset to score a run on: its own (``data_dir=None``) or any prepared folder,
    through the run's own front end, without augmentation."""
    from kws_proto.data import ensure_dataset, open_data

    root = ensure_dataset(cfg.data, progress=progress) if data_dir is None else data_dir
    return open_data(root, cfg.features, None, speaker_disjoint, progress=progress)


def evaluate_run(
    run_dir,
    settings: list[EvalSetting],
    data_dir=None,
    classes=None,
    seed: int = 0,
    speaker_disjoint: bool = False,
    progress: bool = True,
    unknown=(),
) -> list[dict]:
    """Score a trained run on fixed test episodes for every grid setting.

    Parameters
    ----------
    run_dir : path
        A run directory with ``best.weights.h5``, ``"default"``, or ``"gse"`` / ``"gse-full"``:
        the Google speech embedding (:mod:`kws_proto.gse_eval`; needs ``data_dir``).
    settings : list of EvalSetting
    data_dir : path or None
        A prepared dataset; None = the run's own dataset.
    classes : sequence of str or None
        Keywords to draw episodes from; None = the dataset's test split.
    seed : int
        Draws the episodes; two runs scored with the same seed, data and classes see identical
        episodes.
    unknown : sequence of str
        Open set: words pooled into an extra ``_unknown_`` class of every episode; the rows then
        also hold ``auroc`` and ``detection_at_5pct_far`` (:mod:`kws_proto.openset`).

    Returns
    -------
    rows : list of dict
        One per setting: ``n_way, k_shot, n_query, episodes, mean, ci95`` and ``accuracies``
        (per-episode, in episode order, for paired comparisons).
    """
    from kws_proto.gse_eval import evaluate_gse, is_gse
    from kws_proto.model_io import load_run_network

    if is_gse(run_dir):  # the Google speech embedding: same episodes, same rule, its own table
        return evaluate_gse(str(run_dir), settings, data_dir, classes, seed, speaker_disjoint,
                            progress, unknown)
    cfg, net = load_run_network(run_dir)
    data = open_eval_data(cfg, data_dir, speaker_disjoint, progress)
    classes = tuple(classes) if classes else data.splits.test
    rows = []
    for s in settings:
        episodes = eval_episodes(data, classes, s, seed, unknown)
        table = embedding_table(net, data.features, episodes)
        scores = score_episodes(table, episodes, cfg.model.distance)
        summary = scores.summary
        rows.append({
            "n_way": s.n_way, "k_shot": s.k_shot, "n_query": s.n_query, "episodes": s.episodes,
            "mean": summary.mean, "ci95": summary.ci95, "accuracies": scores.accuracies.tolist(),
        })
        if unknown:
            from kws_proto.openset import open_set_scores

            o = open_set_scores(table, episodes, far=0.05)
            rows[-1].update(auroc=o.auroc, detection_at_5pct_far=o.detection)
    return rows
