"""Per-keyword score normalisation against a cohort of keyword-free speech (s-norm).

A raw distance ``d`` means something different for every keyword: a long word, a new speaker or
a keyword whose supports sit in a crowded part of the embedding space lies far from or near to
all speech alike, so one threshold accepts a different share of other speech for each keyword.
Speaker verification removes that with score normalisation against a cohort; the spotter does it
per keyword, with the cohort a background (:mod:`kws_proto.spot.background`: embedded windows of
keyword-free audio).

**The statistics.**  For keyword ``k``, the distances (by its scoring rule) of every background
window to it are measured; ``mu_k`` and ``sigma_k`` are the mean and standard deviation of its
``top`` nearest ones (``TOP``: the part of other speech that could be mistaken for it).  The
normalised distance is ``z = (d - mu_k) / sigma_k``: how many of the cohort's deviations a window
is nearer than the keyword's typical nearest other speech.

**The score the bank decides on** is ``2 ** z`` (:meth:`CohortNorm.apply`): monotone in ``d``
(the same windows within a keyword's threshold at the matching threshold), never negative, and
larger accepts more, so ``Keyword.threshold`` keeps its meaning; a threshold ``2 ** z0``
(:func:`level_threshold`) accepts windows up to ``z0``, and multiplying every keyword's threshold
by a factor ``f`` (a DET sweep) moves every keyword's ``z`` cut by the same ``log2 f``: doubling
the threshold admits one more cohort deviation, and the benchmark's factors 2**-5 ... 2**3 sweep
``z`` from 5 below to 3 above the calibrated cut in eighths.  ``z`` is clipped to
``[-Z_CLIP, Z_CLIP]`` so the score stays finite.

**The unit** (``norm``): ``"snorm"`` divides by the cohort's deviation ``sigma_k`` as above;
``"ratio"`` by a fixed share of its mean, ``sigma_k = RATIO_UNIT * mu_k``, so that ``z = (d /
mu_k - 1) / RATIO_UNIT``: the distance as a ratio of the keyword's typical nearest other speech.
For one keyword the two order windows alike (both are monotone in ``d``); they differ in how one
common level cuts different keywords.  The deviation of the nearest distances follows the shape
of that tail (relative to the mean it varies about twofold between keywords), and keywords cut
in its units sit at unlike rates of other speech; the mean is the steadier unit, and the one the
shipped ``default``'s background names for its default enrolment (measured:
experiments/spotting.md, "The cohort's mean as the unit").  ``RATIO_UNIT`` is the typical
deviation-to-mean share of a keyword's cohort, so a level means about as many units either way.

A keyword records its ``mu``, ``sigma``, ``top``, the method and the background's identity
(:meth:`CohortNorm.to_dict`: the encoder fingerprint that embedded it and a digest of its
embeddings), so a saved bank decides the same way wherever it is loaded, and a bank refuses a
keyword normalised against another background or another encoder's (:mod:`kws_proto.spot.bank`).

Measured: experiments/spotting.md, "Per-keyword score normalisation".
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from kws_proto.errors import BankError, ConfigError
from kws_proto.util.vectors import squared_distances

SNORM = "snorm"
RATIO = "ratio"
NORMS = (SNORM, RATIO)  # the normalisations (kws_proto.spot.enrolment)
RATIO_UNIT = 0.085  # "ratio"'s unit as a share of the cohort mean (module docstring)
TOP = 500
Z_CLIP = 60.0
#: The threshold of a normalised keyword unless given or carried by its background
#: (``Background.cohort_level``): ``z = -2``, two of its cohort deviations nearer than its
#: typical nearest other speech (experiments/spotting.md, "Per-keyword score normalisation":
#: chosen before measuring; the DET curve of a common level does not depend on it).
NORM_LEVEL = -2.0
SOURCE_CHARS = 200  # of a cohort's source kept with each keyword


@dataclass(frozen=True)
class CohortNorm:
    """A keyword's cohort statistics (module docstring).

    Attributes
    ----------
    mu, sigma : float
        Mean and standard deviation (``> 0``) of the keyword's ``top`` nearest cohort distances.
        With ``method="ratio"``, ``sigma`` is ``RATIO_UNIT * mu`` (module docstring).
    top : int
    fingerprint : str
        The encoder that embedded the cohort (:attr:`KeywordSpotter.fingerprint`).
    digest : str
        Hex SHA-256 of the cohort's embeddings (:func:`embeddings_digest`).
    source : str
        What the cohort was (the background's source).
    method : str
        The unit, one of :data:`NORMS` (module docstring).
    """

    mu: float
    sigma: float
    top: int
    fingerprint: str
    digest: str
    source: str = ""
    method: str = SNORM

    def __post_init__(self):
        if not (math.isfinite(self.mu) and math.isfinite(self.sigma) and self.sigma > 0):
            raise BankError(f"cohort statistics mu={self.mu!r}, sigma={self.sigma!r}: expected "
                            "finite numbers, sigma > 0")
        if self.method not in NORMS:
            raise BankError(f"normalisation {self.method!r} is not one of {', '.join(NORMS)}")

    def z(self, distances) -> np.ndarray:
        """``(d - mu) / sigma`` of ``distances`` (any shape), float64, clipped to ``Z_CLIP``."""
        z = (np.asarray(distances, np.float64) - self.mu) / self.sigma
        return np.clip(z, -Z_CLIP, Z_CLIP)

    def apply(self, distances) -> np.ndarray:
        """The score the bank decides on, ``2 ** z`` (module docstring), float64."""
        return np.exp2(self.z(distances))

    @property
    def cohort(self) -> tuple[str, str]:
        """The cohort's identity: ``(encoder fingerprint, embeddings digest)``."""
        return self.fingerprint, self.digest

    def to_dict(self) -> dict:
        return {"method": self.method, "mu": self.mu, "sigma": self.sigma, "top": self.top,
                "fingerprint": self.fingerprint, "digest": self.digest, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "CohortNorm":
        if d.get("method") not in NORMS:
            raise BankError(f"normalisation {d.get('method')!r} is not one of {', '.join(NORMS)}")
        return cls(float(d["mu"]), float(d["sigma"]), int(d["top"]), str(d["fingerprint"]),
                   str(d["digest"]), str(d.get("source", "")), d["method"])


def check_norm(norm: str | None) -> str | None:
    """``norm`` if it is None or one of :data:`NORMS`, else a :class:`ConfigError`."""
    if norm is not None and norm not in NORMS:
        raise ConfigError(f"norm={norm!r}: the score normalisation is one of {', '.join(NORMS)}")
    return norm


def embeddings_digest(embeddings: np.ndarray) -> str:
    """Hex SHA-256 of a cohort's embeddings ``[n, d]`` (as float32), naming the cohort."""
    e = np.ascontiguousarray(np.asarray(embeddings, np.float32))
    return hashlib.sha256(f"{e.shape}".encode() + e.tobytes()).hexdigest()


def cohort_norm(distances: np.ndarray, top: int, fingerprint: str, digest: str,
                source: str = "", method: str = SNORM) -> CohortNorm:
    """A keyword's :class:`CohortNorm` from its distances ``[n]`` to every cohort row: the mean
    and standard deviation of the ``top`` smallest (all when fewer); with ``method="ratio"`` the
    mean and ``RATIO_UNIT`` of it."""
    check_norm(method)
    d = np.asarray(distances, np.float64)
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 2:
        raise ConfigError(f"cohort top={top!r} must be an integer >= 2")
    if len(d) < 2:
        raise ConfigError(f"a cohort of {len(d)} row(s) cannot normalise: give a background of "
                          "at least 2 windows")
    n = min(int(top), len(d))
    near = np.partition(d, n - 1)[:n]
    if method == RATIO:
        mu = float(near.mean())
        if not mu > 0:
            raise ConfigError(f"the keyword's {n} nearest cohort distances are all 0: the "
                              "cohort holds its prototype itself, no scale to normalise by")
        return CohortNorm(mu, RATIO_UNIT * mu, n, fingerprint, digest, _short(source), method)
    sigma = float(near.std())
    if not sigma > 0:
        raise ConfigError(f"the keyword's {n} nearest cohort distances are all {near[0]:.6g}: no "
                          "spread to normalise by (a background of one repeated window?)")
    return CohortNorm(float(near.mean()), sigma, n, fingerprint, digest, _short(source), method)


def _short(source: str, limit: int = SOURCE_CHARS) -> str:
    """``source`` cut to ``limit`` characters (a background of many files names them all; the
    digest names the cohort, the source only tells a reader what it was)."""
    return source if len(source) <= limit else f"{source[:limit]}... ({len(source)} characters)"


def normalise(distances: np.ndarray, norms, window: tuple[np.ndarray, np.ndarray] | None = None
              ) -> np.ndarray:
    """Distances ``[n, n_kw]`` with column ``j`` passed through ``norms[j].apply`` (a column whose
    norm is None is left as it is), float64.

    With ``window = (mu_w, sigma_w)`` (:func:`window_stats`, each ``[n]``), the window side too:
    ``2 ** ((z_k + z_w) / 2)`` with ``z_w = (d - mu_w) / sigma_w``, the symmetric s-norm of
    speaker verification (every keyword must be normalised)."""
    d = np.asarray(distances, np.float64)
    if window is not None:
        if any(m is None for m in norms):
            raise BankError("the window side of s-norm needs every keyword normalised against "
                            "a cohort")
        mu_w, sigma_w = (np.asarray(x, np.float64)[:, None] for x in window)
        z_w = np.clip((d - mu_w) / sigma_w, -Z_CLIP, Z_CLIP)
        z_k = np.stack([m.z(d[:, j]) for j, m in enumerate(norms)], axis=1)
        return np.exp2(0.5 * (z_k + z_w))
    if all(m is None for m in norms):
        return d
    return np.stack([d[:, j] if m is None else m.apply(d[:, j]) for j, m in enumerate(norms)],
                    axis=1)


def window_stats(embeddings: np.ndarray, cohort: np.ndarray, top: int = TOP,
                 chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The window side of s-norm: for each of ``embeddings [n, d]``, the mean and standard
    deviation of its squared distances to its ``top`` nearest rows of ``cohort [m, d]`` (all
    when fewer): ``mu [n]``, ``sigma [n]`` float64 (``sigma`` at least 1e-12 of ``mu``).

    A window of speech that lies near much of the cohort (a common word, a hub of the space)
    gets a small ``mu`` and so needs a keyword distance that much smaller to be accepted."""
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 2:
        raise ConfigError(f"cohort top={top!r} must be an integer >= 2")
    c = np.asarray(cohort, np.float32)
    if len(c) < 2:
        raise ConfigError(f"a cohort of {len(c)} row(s) cannot normalise: give a background of "
                          "at least 2 windows")
    e = np.asarray(embeddings, np.float32)
    n = min(int(top), len(c))
    mu, sigma = np.empty(len(e)), np.empty(len(e))
    for i in range(0, len(e), chunk):
        near = np.partition(squared_distances(e[i:i + chunk], c), n - 1, axis=1)[:, :n]
        mu[i:i + chunk], sigma[i:i + chunk] = near.mean(axis=1), near.std(axis=1)
    return mu, np.maximum(sigma, 1e-12 * np.maximum(mu, 1e-12))


def level_threshold(z0: float) -> float:
    """The threshold that accepts normalised distances up to ``z = z0``: ``2 ** z0``."""
    if not math.isfinite(z0) or abs(z0) > Z_CLIP:
        raise ConfigError(f"level={z0!r}: a cohort level is a finite z within ±{Z_CLIP:g}")
    return 2.0 ** z0
