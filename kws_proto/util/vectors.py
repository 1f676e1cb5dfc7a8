"""Vector helpers shared by every layer."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """``x`` scaled to unit L2 length along ``axis`` (rows of norm below ``eps`` divided by
    ``eps``), in ``x``'s dtype: the numpy twin of ``tf.math.l2_normalize(x, axis, epsilon=eps)``."""
    x = np.asarray(x)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), np.asarray(eps, x.dtype))


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``||a_i - b_j||^2`` of rows ``a [n, d]`` and ``b [m, d]``,
    summed over ``d``: ``[n, m]`` float64, the numpy twin of
    :func:`kws_proto.model.protonet.squared_distances` (in float64, both sets centred on the
    mean of ``b`` first, tiny negatives clipped at 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(b):
        centre = b.mean(axis=0)
        a, b = a - centre, b - centre
    d = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)
