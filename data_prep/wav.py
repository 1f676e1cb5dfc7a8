"""Writing 16-bit WAV clips quickly.

libsndfile writing straight to a path issues many small writes and seeks; encoding into memory
first and writing the bytes at once is an order of magnitude faster (experiments/speed.md).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf


def write_wav(path: str | os.PathLike, y: np.ndarray, sr: int) -> Path:
    """Write mono float audio as a 16-bit PCM WAV file.

    Parameters
    ----------
    path : path
        Destination (its folder must exist).
    y : np.ndarray [shape=(n,)]
        Samples in [-1, 1]; values beyond are clipped.
    sr : int
        Sample rate.
    """
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
    path = Path(path)
    path.write_bytes(buf.getvalue())
    return path
