"""The sliding window of spotting: one clip length every ``hop`` seconds from the first sample.

One :class:`Framing` cuts audio for offline detection (:func:`kws_proto.spot.detect.detect_audio`),
running audio (:class:`kws_proto.spot.streaming.StreamingSpotter`) and the spotting benchmark
(:mod:`kws_proto.eval.spot_eval`), so the three see the same windows at the same times: window
``i`` starts at sample ``i * hop_samples`` (``hop_samples = round(hop * sample_rate)``, at least 1);
the last window is zero-padded to reach the end of the audio; audio shorter than one window is one
padded window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws_proto.errors import ConfigError

HOP = 0.1  # seconds between window starts
WINDOW_BATCH = 256  # windows embedded per batch where a long recording is scored in pieces


def frame_windows(y: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Windows of ``y`` every ``hop`` samples, as a read-only strided view (no copy).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    window, hop : int > 0

    Returns
    -------
    windows : np.ndarray [shape=(max(1, ceil((n - window) / hop) + 1), window)]
        The last window is padded with zeros to reach the end of ``y``.
    """
    if window <= 0 or hop <= 0:
        raise ConfigError(f"window={window} and hop={hop} must be positive samples")
    y = np.asarray(y, dtype=np.float32)
    count = window_count(len(y), window, hop)
    need = (count - 1) * hop + window
    y = np.pad(y, (0, max(0, need - len(y))))
    return np.lib.stride_tricks.sliding_window_view(y, window)[::hop][:count]  # [count, window]


def window_count(n: int, window: int, hop: int) -> int:
    """Windows that cover ``n`` samples, the last zero-padded: ``max(1, ceil((n - window) / hop) + 1)``."""
    return 1 + max(0, -(-(n - window) // hop))  # ceil division


@dataclass(frozen=True)
class Framing:
    """Windows of ``window`` samples every ``hop`` samples of audio at ``sample_rate``.

    Build it with :meth:`of` (a front end and a hop in seconds).
    """

    window: int
    hop: int
    sample_rate: int

    @classmethod
    def of(cls, features, hop: float = HOP) -> "Framing":
        """The framing of a front end (``features``: ``num_samples``, ``sample_rate``) with
        windows every ``hop`` seconds."""
        if not hop > 0:
            raise ConfigError(f"hop={hop} must be a positive number of seconds")
        return cls(features.num_samples, max(1, int(round(hop * features.sample_rate))),
                   features.sample_rate)

    def frame(self, y: np.ndarray) -> np.ndarray:
        """:func:`frame_windows` of ``y``: ``[count, window]``."""
        return frame_windows(y, self.window, self.hop)

    def count(self, n: int) -> int:
        """Windows of ``n`` samples, the last one zero-padded (:func:`window_count`)."""
        return window_count(n, self.window, self.hop)

    def complete(self, n: int) -> int:
        """Windows whose samples all lie within the first ``n`` (0 when ``n`` < one window)."""
        return max(0, (n - self.window) // self.hop + 1)

    def start(self, index: int) -> float:
        """Start of window ``index`` in seconds."""
        return index * self.hop / self.sample_rate

    def starts(self, count: int) -> np.ndarray:
        """Starts of the first ``count`` windows in seconds: ``[count]`` float64."""
        return np.arange(count) * self.hop / self.sample_rate
