"""Vector helpers shared by every layer."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """``x`` scaled to unit L2 length along ``axis`` (rows of norm below ``eps`` divided by
    ``eps``), in ``x``'s dtype: the numpy twin of ``tf.math.l2_normalize(x, axis, epsilon=eps)``."""
    x = np.asarray(x)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), np.asarray(eps, x.dtype))
