"""Plots: valid PNG files written atomically, that change with the data, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from kws_proto.errors import ConfigError
from kws_proto.eval.plots import (accuracy_by_shot, confusion_counts, confusion_matrix,
                             embedding_projection, learning_curves, pca_2d)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _pixels(path):
    """Decode the PNG (fails on a broken file) and return its pixels."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # something is drawn
    return image


def _files(folder):
    """Every file name in ``folder``, hidden temporaries included."""
    return sorted(p.name for p in folder.iterdir())


def _log(rate, final=True):
    records = [{"step": s, "episodes": 10 * s, "train_loss": 2.0 * np.exp(-rate * s),
                "train_acc": 1 - np.exp(-rate * s), "val_acc": 0.9 - 0.5 * np.exp(-rate * s),
                "val_ci95": 0.02, "lr": 1e-3} for s in range(1, 11)]
    return records + ([{"final": {"steps": 10}}] if final else [])


def test_learning_curves_png_changes_with_the_logs(tmp_path):
    a = learning_curves({"conv4": _log(0.3), "protores": _log(0.6)}, tmp_path / "a.png")
    b = learning_curves({"conv4": _log(0.3), "protores": _log(0.1)}, tmp_path / "b.png")
    pa, pb = _pixels(a), _pixels(b)
    assert pa.shape == pb.shape and not np.array_equal(pa, pb)
    assert _files(tmp_path) == ["a.png", "b.png"]  # no temporary file left behind
    learning_curves({"conv4": _log(0.6)}, a)  # replaced in place
    assert not np.array_equal(_pixels(a), pa)


def test_learning_curves_reject_bad_logs(tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        learning_curves({}, tmp_path / "x.png")
    with pytest.raises(ConfigError, match="'run1' has no validation records"):
        learning_curves({"run1": [{"final": {}}]}, tmp_path / "x.png")
    broken = _log(0.3, final=False)
    del broken[4]["val_acc"]
    with pytest.raises(ConfigError, match=r"'run2', step 5: record lacks \['val_acc'\]"):
        learning_curves({"run2": broken}, tmp_path / "x.png")
    with pytest.raises(ConfigError, match=r"x\.jpg.*\.png"):
        learning_curves({"run": _log(0.3)}, tmp_path / "x.jpg")
    assert _files(tmp_path) == []


def _rows(shift):
    return [{"model": m, "n_way": w, "k_shot": k, "mean": 0.4 + 0.08 * k + shift * (m == "b"),
             "ci95": 0.02 if k > 1 else float("nan")}
            for m in ("a", "b") for w in (2, 5) for k in (1, 5)]


def test_accuracy_by_shot_png_changes_with_the_rows(tmp_path):
    pa = _pixels(accuracy_by_shot(_rows(0.0), tmp_path / "a.png"))
    pb = _pixels(accuracy_by_shot(_rows(0.1), tmp_path / "b.png"))
    assert not np.array_equal(pa, pb)
    one_way = [r for r in _rows(0.0) if r["n_way"] == 5]
    _pixels(accuracy_by_shot(one_way, tmp_path / "c.png"))


def test_accuracy_by_shot_rejects_bad_rows(tmp_path):
    with pytest.raises(ConfigError, match="no result rows"):
        accuracy_by_shot([], tmp_path / "x.png")
    rows = _rows(0.0)
    del rows[3]["ci95"]
    with pytest.raises(ConfigError, match=r"row 3 .*lacks \['ci95'\]"):
        accuracy_by_shot(rows, tmp_path / "x.png")
    rows = _rows(0.0)
    rows[0]["mean"] = float("nan")
    with pytest.raises(ConfigError, match="row 0 has mean=nan"):
        accuracy_by_shot(rows, tmp_path / "x.png")
    rows[0]["mean"] = 74.5  # a percentage
    with pytest.raises(ConfigError, match=r"row 0 has mean=74\.5; need an accuracy in \[0, 1\]"):
        accuracy_by_shot(rows, tmp_path / "x.png")


def test_confusion_counts_map_episode_indices_to_keywords():
    classes = [("yes", "no"), ("no", "go")]
    labels = np.array([[0, 0, 1], [0, 1, 1]])
    predictions = np.array([[0, 1, 1], [1, 1, 0]])
    names, counts = confusion_counts(classes, labels, predictions)
    # episode 0: yes->yes, yes->no, no->no; episode 1: no->go, go->go, go->no
    assert names == ["go", "no", "yes"]
    np.testing.assert_array_equal(counts, [[1, 1, 0],
                                           [1, 1, 0],
                                           [0, 1, 1]])


def test_confusion_counts_reject_bad_input():
    with pytest.raises(ConfigError, match="n_episodes=1"):
        confusion_counts([("a", "b")], np.zeros((2, 3), int), np.zeros((2, 3), int))
    with pytest.raises(ConfigError, match="episode 0 predictions"):
        confusion_counts([("a", "b")], np.zeros((1, 3), int), np.full((1, 3), 2))


def test_confusion_matrix_png(tmp_path):
    names = ["go", "no", "yes"]
    a = _pixels(confusion_matrix(np.diag([5, 5, 5]), names, tmp_path / "a.png"))
    b = _pixels(confusion_matrix(np.ones((3, 3), int), names, tmp_path / "b.png"))
    assert not np.array_equal(a, b)
    with pytest.raises(ConfigError, match=r"shape \(3, 3\).*2 names"):
        confusion_matrix(np.ones((3, 3)), names[:2], tmp_path / "c.png")
    with pytest.raises(ConfigError, match="counts >= 0"):
        confusion_matrix(-np.ones((3, 3)), names, tmp_path / "c.png")


def test_embedding_projection_png(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"kw{i}" for i in range(3) for _ in range(20)]
    centres = rng.standard_normal((3, 16)) * 3
    E = np.repeat(centres, 20, axis=0) + rng.standard_normal((60, 16))
    a = _pixels(embedding_projection(E, names, tmp_path / "a.png"))
    b = _pixels(embedding_projection(E[::-1] * np.arange(1, 17), names, tmp_path / "b.png"))
    assert not np.array_equal(a, b)
    out = embedding_projection(E, names, tmp_path / "sub" / "c.png")  # makes the folder
    assert _files(out.parent) == ["c.png"]
    with pytest.raises(ConfigError, match="59 names for 60"):
        embedding_projection(E, names[:-1], tmp_path / "x.png")
    with pytest.raises(ConfigError, match=r"shape \(60,\)"):
        embedding_projection(E[:, 0], names, tmp_path / "x.png")
    with pytest.raises(ConfigError, match="NaN"):
        embedding_projection(np.full((60, 16), np.nan), names, tmp_path / "x.png")


def test_pca_2d_is_a_rotation_onto_the_main_axes():
    rng = np.random.default_rng(1)
    t = rng.standard_normal(200)
    direction = np.array([3.0, -1.0, 2.0]) / np.sqrt(14)
    X = 5.0 + np.outer(t, direction) * 10 + 0.01 * rng.standard_normal((200, 3))
    P, explained = pca_2d(X)
    assert explained[0] > 0.999 and explained.sum() <= 1.0 + 1e-12
    assert abs(np.corrcoef(P[:, 0], t)[0, 1]) > 0.9999
    np.testing.assert_allclose(P.mean(axis=0), 0.0, atol=1e-9)
    # on two-dimensional data PCA only rotates: pairwise distances are kept
    Y = rng.standard_normal((30, 2)) * [4.0, 1.0]
    Q, _ = pca_2d(Y)
    d = lambda Z: np.linalg.norm(Z[:, None] - Z[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(d(Q), d(Y), atol=1e-9)
