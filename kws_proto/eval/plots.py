"""Figures of the encoder comparison, written as PNG files.

Every function takes plain data (log records, result rows, counts, arrays), draws one figure on
a :class:`matplotlib.figure.Figure` (no ``pyplot``, so no global state and no display is
touched; PNG is rendered by the Agg canvas), and writes it atomically: to a hidden temporary
file beside ``out``, then ``os.replace``.  Bad input raises :class:`~kws_proto.errors.ConfigError`
naming the offending run, key or shape before anything is written.

- :func:`learning_curves` -- training loss, training accuracy and validation accuracy against
  training episodes, one line per run (the records of ``train.log.jsonl``).
- :func:`accuracy_by_shot` -- test accuracy with 95% CI error bars against shots, one line per
  model, one panel per way (the rows of :func:`kws_proto.eval.evaluate.evaluate_run`).
- :func:`confusion_counts` and :func:`confusion_matrix` -- a keyword confusion matrix summed over
  episodes whose class indices mean different keywords in each episode.
- :func:`embedding_projection` -- a 2-D PCA scatter of embeddings coloured by keyword.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kws_proto.errors import ConfigError
from kws_proto.util.atomic import atomic_path

CURVE_KEYS = ("episodes", "train_loss", "train_acc", "val_acc")
SHOT_KEYS = ("model", "n_way", "k_shot", "mean", "ci95")
DPI = 120


def learning_curves(logs: Mapping[str, Sequence[Mapping]], out) -> Path:
    """Training loss, training accuracy and validation accuracy of several runs vs episodes.

    Parameters
    ----------
    logs : mapping of str to list of dict
        ``{run name: log records}``.  A record with a ``"step"`` key is one validation point and
        must hold ``episodes``, ``train_loss``, ``train_acc`` and ``val_acc`` (accuracies in
        [0, 1]); records without ``"step"`` (the final summary of ``kws_proto.train.trainer``) are skipped.
    out : path
        The PNG file to write.

    Returns
    -------
    out : Path

    Raises
    ------
    ConfigError
        No runs, a run without validation records, or a record missing a key.
    """
    if not logs:
        raise ConfigError("learning_curves: no runs to plot (logs is empty)")
    curves = {}
    for name, records in logs.items():
        points = [r for r in records if "step" in r]
        if not points:
            raise ConfigError(f"learning_curves: run {name!r} has no validation records "
                              f"(records with a 'step' key)")
        for r in points:
            missing = [k for k in CURVE_KEYS if k not in r]
            if missing:
                raise ConfigError(f"learning_curves: run {name!r}, step {r['step']}: "
                                  f"record lacks {missing}")
        points = sorted(points, key=lambda r: r["episodes"])
        curves[name] = {k: np.asarray([float(r[k]) for r in points]) for k in CURVE_KEYS}

    fig = _figure(3 * 4.2)
    axes = fig.subplots(1, 3)
    panels = (("train_loss", "training loss", 1.0), ("train_acc", "training accuracy (%)", 100.0),
              ("val_acc", "validation accuracy (%)", 100.0))
    for ax, (key, title, scale) in zip(axes, panels):
        for name, c in curves.items():
            ax.plot(c["episodes"], scale * c[key], marker="o", markersize=3, label=name)
        ax.set_title(title)
        ax.set_xlabel("training episodes")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize="small")
    return _save(fig, out)


def accuracy_by_shot(rows: Sequence[Mapping], out) -> Path:
    """Test accuracy (mean ± 95% CI) by shots, one line per model and one panel per way.

    Parameters
    ----------
    rows : list of dict
        Each with ``model`` (str), ``n_way``, ``k_shot`` (int), ``mean`` and ``ci95`` (accuracy
        in [0, 1]; a ``nan`` half-width, from one episode, draws no error bar).
    out : path

    Returns
    -------
    out : Path

    Raises
    ------
    ConfigError
        No rows, a row missing a key, or a mean outside [0, 1] (e.g. a percentage).
    """
    if not rows:
        raise ConfigError("accuracy_by_shot: no result rows to plot")
    for i, r in enumerate(rows):
        missing = [k for k in SHOT_KEYS if k not in r]
        if missing:
            raise ConfigError(f"accuracy_by_shot: row {i} ({dict(r)!r}) lacks {missing}")
        if not 0.0 <= float(r["mean"]) <= 1.0:  # also catches nan
            raise ConfigError(f"accuracy_by_shot: row {i} has mean={r['mean']!r}; "
                              f"need an accuracy in [0, 1]")
    ways = sorted({int(r["n_way"]) for r in rows})
    models = list(dict.fromkeys(str(r["model"]) for r in rows))  # first-seen order

    fig = _figure(4.0 * len(ways))
    axes = np.atleast_1d(fig.subplots(1, len(ways), sharey=True))
    for ax, way in zip(axes, ways):
        for model in models:
            sel = sorted((r for r in rows if int(r["n_way"]) == way and str(r["model"]) == model),
                         key=lambda r: int(r["k_shot"]))
            if not sel:
                continue
            shots = [int(r["k_shot"]) for r in sel]
            mean = 100 * np.asarray([float(r["mean"]) for r in sel])
            ci = 100 * np.nan_to_num(np.asarray([float(r["ci95"]) for r in sel]), nan=0.0)
            ax.errorbar(shots, mean, yerr=ci, marker="o", capsize=3, label=model)
        ax.set_title(f"{way}-way")
        ax.set_xlabel("shots (support clips per keyword)")
        ax.set_xticks(sorted({int(r["k_shot"]) for r in rows if int(r["n_way"]) == way}))
        ax.axhline(100 / way, color="grey", linestyle=":", linewidth=1)  # chance
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%), 95% CI")
    axes[0].legend(fontsize="small")
    return _save(fig, out)


def confusion_counts(episode_classes: Sequence[Sequence[str]], labels, predictions):
    """Sum per-episode confusions into one keyword-by-keyword count matrix.

    Class index ``c`` of episode ``e`` stands for ``episode_classes[e][c]`` (``Episode.classes``),
    so the same index means different keywords in different episodes.

    Parameters
    ----------
    episode_classes : list of sequence of str [length n_episodes]
    labels, predictions : np.ndarray [shape=(n_episodes, n_queries), dtype=int]
        True and predicted class indices (``EpisodeScores.labels`` / ``.predictions``).

    Returns
    -------
    names : list of str
        Every keyword that occurs, sorted.
    counts : np.ndarray [shape=(len(names), len(names)), dtype=int64]
        ``counts[i, j]``: queries of keyword ``names[i]`` predicted as ``names[j]``.

    Raises
    ------
    ConfigError
        Shapes that disagree, or an index outside its episode's classes.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.ndim != 2 or labels.shape != predictions.shape or len(labels) != len(episode_classes):
        raise ConfigError(
            f"confusion_counts: labels {labels.shape} and predictions {predictions.shape} must be "
            f"equal [n_episodes, n_queries] arrays with n_episodes={len(episode_classes)}")
    names = sorted({c for classes in episode_classes for c in classes})
    index = {c: i for i, c in enumerate(names)}
    counts = np.zeros((len(names), len(names)), np.int64)
    for e, classes in enumerate(episode_classes):
        ids = np.asarray([index[c] for c in classes])
        for what, a in (("labels", labels[e]), ("predictions", predictions[e])):
            if a.size and (a.min() < 0 or a.max() >= len(ids)):
                raise ConfigError(f"confusion_counts: episode {e} {what} hold index {a.max()} "
                                  f"or {a.min()} outside its {len(ids)} classes")
        np.add.at(counts, (ids[labels[e]], ids[predictions[e]]), 1)
    return names, counts


def confusion_matrix(counts, class_names: Sequence[str], out) -> Path:
    """Draw a confusion matrix, each row normalised to the share of that keyword's queries.

    Parameters
    ----------
    counts : np.ndarray [shape=(C, C)]
        ``counts[i, j]``: queries of class ``i`` predicted as ``j`` (see :func:`confusion_counts`).
    class_names : sequence of str [length C]
    out : path

    Returns
    -------
    out : Path

    Raises
    ------
    ConfigError
        A non-square or negative matrix, or a name count that differs from its size.
    """
    counts = np.asarray(counts, dtype=np.float64)
    names = [str(c) for c in class_names]
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(names):
        raise ConfigError(f"confusion_matrix: counts of shape {counts.shape} must be square "
                          f"with one row per class name ({len(names)} names)")
    if counts.size == 0 or not np.all(np.isfinite(counts)) or counts.min() < 0:
        raise ConfigError("confusion_matrix: counts must be a non-empty matrix of counts >= 0")
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # [C, C] row shares
    c = len(names)
    side = min(2.0 + 0.45 * c, 16.0)
    fig = _figure(side, side)
    ax = fig.subplots()
    image = ax.imshow(100 * rates, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the keyword's queries")
    ax.set_xticks(range(c), names, rotation=90 if c > 6 else 0)
    ax.set_yticks(range(c), names)
    ax.set_xlabel("predicted keyword")
    ax.set_ylabel("true keyword")
    if c <= 20:
        for i in range(c):
            for j in range(c):
                ax.text(j, i, f"{100 * rates[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    return _save(fig, out)


def embedding_projection(embeddings, names: Sequence[str], out) -> Path:
    """Scatter the first two principal components of ``embeddings``, coloured by keyword.

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n, d)], n >= 2
    names : sequence of str [length n]
        Keyword of every row (one legend entry per distinct keyword, in first-seen order).
    out : path

    Returns
    -------
    out : Path

    Raises
    ------
    ConfigError
        Not a finite 2-D array of at least two rows, or a name count that differs from ``n``.
    """
    X = np.asarray(embeddings, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ConfigError(f"embedding_projection: embeddings of shape {X.shape} must be "
                          f"[n >= 2, d >= 1]")
    if len(names) != X.shape[0]:
        raise ConfigError(f"embedding_projection: {len(names)} names for {X.shape[0]} embeddings")
    if not np.all(np.isfinite(X)):
        raise ConfigError("embedding_projection: embeddings hold NaN or infinite values")
    P, explained = pca_2d(X)
    names = [str(n) for n in names]
    keywords = list(dict.fromkeys(names))
    cmap = _colormap(len(keywords))
    fig = _figure(6.5, 5.5)
    ax = fig.subplots()
    for i, kw in enumerate(keywords):
        sel = np.asarray([n == kw for n in names])
        ax.scatter(P[sel, 0], P[sel, 1], s=12, color=cmap(i), label=kw, alpha=0.8)
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f}% of variance)")
    ax.legend(fontsize="small", markerscale=1.5, loc="best",
              ncol=1 if len(keywords) <= 12 else 2)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def pca_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of ``X`` [shape=(n, d)] on their first two principal axes (SVD).

    Returns
    -------
    P : np.ndarray [shape=(n, 2)]
        Coordinates (a second column of zeros when ``d`` or the rank is 1).
    explained : np.ndarray [shape=(2,)]
        Share of the total variance along each axis.
    """
    Xc = X - X.mean(axis=0)
    _, s, vt = np.linalg.svd(Xc, full_matrices=False)  # vt: [min(n, d), d]
    P = np.zeros((X.shape[0], 2))
    k = min(2, vt.shape[0])
    P[:, :k] = Xc @ vt[:k].T  # [n, k]
    var = s**2
    explained = np.zeros(2)
    explained[:k] = var[:k] / var.sum() if var.sum() > 0 else 0.0
    return P, explained


def _figure(width: float, height: float = 3.6):
    """A pyplot-free figure (rendered by the Agg canvas on save)."""
    from matplotlib.figure import Figure  # lazy: matplotlib

    return Figure(figsize=(width, height), layout="constrained")


def _colormap(n: int):
    """``i -> colour`` for ``n`` distinct keywords: qualitative up to 20, then a sampled ramp."""
    from matplotlib import colormaps  # lazy: matplotlib

    if n <= 10:
        return colormaps["tab10"]
    return colormaps["tab20"] if n <= 20 else colormaps["turbo"].resampled(n)


def _save(fig, out) -> Path:
    """Render ``fig`` as PNG to ``out`` atomically (temporary sibling, then ``os.replace``)."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"{out}: plots are written as PNG; give a path ending in .png")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return out
