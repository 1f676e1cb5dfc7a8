"""KeywordSpotter: a trained encoder turned into a tool: enrol keywords, classify clips, spot.

    from kws_proto.spotter import KeywordSpotter
    spotter = KeywordSpotter.from_model("runs/smoke")        # or KeywordSpotter.pretrained()
    bank = spotter.new_bank()
    spotter.enroll(bank, "jarvis", ["j1.flac", "j2.flac", "j3.flac", "j4.flac", "j5.flac"])
    save_bank(bank, "my.bank.npz")
    spotter.classify(bank, ["query.wav"])                   # -> [Classification]
    spotter.detect(bank, "long.flac")                       # -> Detection (events, RTF)

Clips go through the run's own front end (``cfg.features``: :func:`kws_proto.audio.load_audio`
with its rate, length and crop, then the in-graph MFCC of :mod:`kws_proto.export`) and the
encoder with ``training=False``.

**Decision rule.**  ``d_k`` is the squared Euclidean distance (summed over dimensions) from a
clip's embedding to keyword ``k``'s prototype, in :func:`kws_proto.bank.metric_space`.  A clip is
keyword ``k`` when ``k`` is the nearest keyword among those within their own threshold
(``d_k <= t_k``); "unknown" when no keyword is.

**Enrolment views.**  A sliding window rarely starts where the front end would crop a clip, so
each support clip is embedded as a sliding window would see it: cut at its crop and at
``ENROL_SHIFTS_MS`` (-100 and +100 ms, one detection hop either side) from it, the recording's own
samples where it has them, zeros beyond.  The clip's support embedding is the mean of its views
(in :func:`kws_proto.bank.metric_space`); the prototype the mean of the clips'.

**Threshold rule** (:func:`calibrate_threshold`), per keyword, from its own ``k >= 2`` support
clips: the leave-one-out distances ``l_i`` = mean over clip ``i``'s views of ``d(view, prototype
of the other k - 1 clips)`` are distances of genuine clips to a prototype that has not seen them;
``t = SUPPORT_MARGIN * mean_i l_i`` (1.25 x the typical distance of a genuine clip).  With
negative clips (``--negatives``), their distances ``n_j`` to the full prototype cap it:
``t = min(1.25 * mean_i l_i, NEGATIVE_QUANTILE-quantile of n_j)``, so at most that share (5%) of
the given negatives is accepted.  ``--threshold`` sets it by hand.

Measured on Picovoice (30 draws of 3 keywords x 5 clips, 20 held-back clips each, 40 clips of each
of the other 3 words as unknown; accepted = held-back clips labelled with their own keyword,
rejected = unknown clips labelled "unknown"):

- the views, ``python experiments/enrol_views.py`` (clips from the first 80 of each word), with
  the shipped ensemble: 1.25 x mean with views 78.7% accepted / 88.7% rejected, one view
  77.2% / 89.3%; queries cut 100 ms off their crop 76.4% / 89.1% against 73.8% / 90.2%; streams
  289 of 360 found with 25 false alarms against 281 and 20. With the single ProtoRes shipped
  before it: 1.25 x mean with views 76.1% accepted / 87.9% rejected, one view 74.6% / 88.1%;
  queries cut 100 ms off their crop 74.3% / 88.7% against 71.6% / 88.9%; 1.5 x mean with views
  83.8% / 74.5%; ``detect`` on 40 constructed streams 285 of 360 keywords found with 25 false
  alarms against 280 and 30 (``experiments/README.md``, "Enrolment views");
- the margin, one view per clip (before the views, other draws): that single ProtoRes 1.25 x mean
  78% / 90% (the best mean of the two, 84%); 1.5 x mean 86% / 79%; 1 x mean 61% / 96%; 0.75 x
  max 70% / 88%; 1 x max 85% / 67%; the demo's single ProtoRes of then 1.5 x mean 81% / 73%;
  1 x max 83% / 64%; 1 x mean 60% / 92%.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws_proto.audio import crop_start, load_audio, read_audio, window_at
from kws_proto.bank import EncoderInfo, Keyword, KeywordBank, metric_space
from kws_proto.errors import AudioError, BankError, CheckpointError, ConfigError

SUPPORT_MARGIN = 1.25
ENROL_SHIFTS_MS = (-100.0, 0.0, 100.0)
NEGATIVE_QUANTILE = 0.05
AUDIO_EXTS = (".wav", ".flac", ".ogg")
UNKNOWN = "unknown"


def weights_fingerprint(model) -> str:
    """Hex SHA-256 of a model's weight values (shapes, dtypes and bytes, in order).

    Unlike a hash of the ``.weights.h5`` file it does not change when the same weights are saved
    again, and it covers the BatchNorm moving averages that ``training=False`` uses.
    """
    h = hashlib.sha256()
    for v in model.weights:
        w = np.ascontiguousarray(v.numpy())
        h.update(f"{w.dtype.str}{w.shape}".encode())
        h.update(w.tobytes())
    return h.hexdigest()


def keyword_distances(bank: KeywordBank, embeddings: np.ndarray) -> np.ndarray:
    """Squared distances of embeddings ``[n, d]`` to every prototype: ``[n, n_kw]`` float64."""
    from kws_proto.protonet import squared_distances

    if not len(bank):
        raise BankError("the keyword bank is empty: enrol a keyword first")
    e = metric_space(embeddings, bank.encoder.distance)
    return squared_distances(e, bank.prototypes).numpy().astype(np.float64)


def decide(distances: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Keyword index of each row (nearest keyword within its threshold), ``-1`` for unknown.

    Parameters
    ----------
    distances : np.ndarray [shape=(n, n_kw)]
    thresholds : np.ndarray [shape=(n_kw,)]

    Returns
    -------
    labels : np.ndarray [shape=(n,), dtype=int64]
    """
    masked = np.where(distances <= thresholds[None, :], distances, np.inf)  # [n, n_kw]
    labels = masked.argmin(axis=1)
    return np.where(np.isfinite(masked.min(axis=1)), labels, -1)


def _metric_views(support: np.ndarray, distance: str) -> np.ndarray:
    """Support ``[k, S, d]`` (or ``[k, d]``, one view each) in :func:`metric_space`: ``[k, S, d]``."""
    v = np.asarray(support, dtype=np.float32)
    v = v[:, None, :] if v.ndim == 2 else v
    if v.ndim != 3:
        raise ConfigError(f"support of shape {v.shape}: expected [clips, views, dim] or "
                          "[clips, dim]")
    k, n_views, d = v.shape
    return metric_space(v.reshape(k * n_views, d), distance).reshape(k, n_views, d)


def clip_embeddings(views: np.ndarray, distance: str = "euclidean") -> np.ndarray:
    """Each support clip's embedding, the mean of its views in :func:`metric_space`: ``[k, d]``
    float32 for ``views [k, S, d]`` (or ``[k, d]``, one view each)."""
    return _metric_views(views, distance).mean(axis=1)


def calibrate_threshold(support: np.ndarray, negatives: np.ndarray | None = None,
                        distance: str = "euclidean",
                        margin: float = SUPPORT_MARGIN) -> tuple[float, dict]:
    """A keyword's rejection threshold from its support embeddings (module docstring: the rule).

    Parameters
    ----------
    support : np.ndarray [shape=(k, S, d) or (k, d)], k >= 2
        Embeddings of each support clip's ``S`` views (one view when 2-D).
    negatives : np.ndarray [shape=(m, d)] or None
        Embeddings of clips that are not the keyword.
    distance : {"euclidean", "cosine"}
    margin : float > 0
        The multiple of the mean leave-one-out distance (``SUPPORT_MARGIN``).

    Returns
    -------
    threshold : float
    calibration : dict
        ``rule``, ``loo`` (the leave-one-out distances), ``support_limit`` and, with negatives,
        ``negatives``, ``negative_limit`` and ``negatives_accepted`` (fraction at the threshold).
    """
    from kws_proto.protonet import squared_distances

    views = _metric_views(support, distance).astype(np.float64)  # [k, S, d]
    k = len(views)
    if k < 2:
        raise ConfigError(f"{k} support clip(s): calibrating a threshold needs at least 2 "
                          "(or give the threshold by hand)")
    clips = metric_space(views.mean(axis=1), distance).astype(np.float64)  # [k, d], as in the bank
    loo_protos = (clips.sum(axis=0, keepdims=True) - clips) / (k - 1)  # [k, d]: without clip i
    loo = np.mean(np.sum((views - loo_protos[:, None, :]) ** 2, axis=2), axis=1)  # [k]
    support_limit = margin * float(loo.mean())
    info = {"rule": f"{margin:g} x mean leave-one-out distance",
            "loo": [round(float(x), 6) for x in loo], "support_limit": support_limit}
    threshold = support_limit
    if negatives is not None and len(negatives):
        n = metric_space(negatives, distance)
        proto = clips.mean(axis=0, keepdims=True).astype(np.float32)  # [1, d]
        nd = squared_distances(n, proto).numpy()[:, 0].astype(np.float64)  # [m]
        negative_limit = float(np.quantile(nd, NEGATIVE_QUANTILE))
        threshold = min(support_limit, negative_limit)
        info.update(rule=f"min({info['rule']}, {NEGATIVE_QUANTILE:g}-quantile of the negatives' "
                         "distances)", negatives=int(len(nd)), negative_limit=negative_limit,
                    negatives_accepted=float(np.mean(nd <= threshold)))
    return float(threshold), info


@dataclass(frozen=True)
class Classification:
    """One clip's result.  ``keyword`` is ``"unknown"`` when no keyword is within threshold;
    ``distance`` is then the nearest keyword's.  ``runner_up`` is the nearest keyword other than
    the one reported (other than ``nearest`` for unknown clips); None with a one-keyword bank."""

    path: str
    keyword: str
    distance: float
    runner_up: str | None
    runner_up_distance: float | None
    nearest: str
    threshold: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def classifications(bank: KeywordBank, distances: np.ndarray, paths) -> list[Classification]:
    """:class:`Classification` of each row of ``distances [n, n_kw]``."""
    labels = decide(distances, bank.thresholds)
    names, out = bank.names, []
    for path, d, label in zip(paths, distances, labels):
        order = np.argsort(d, kind="stable")
        chosen = int(label) if label >= 0 else int(order[0])
        rest = [int(i) for i in order if i != chosen]
        out.append(Classification(
            path=str(path), keyword=names[label] if label >= 0 else UNKNOWN,
            distance=float(d[chosen]), runner_up=names[rest[0]] if rest else None,
            runner_up_distance=float(d[rest[0]]) if rest else None,
            nearest=names[int(order[0])], threshold=float(bank.thresholds[chosen])))
    return out


def audio_files(paths) -> list[Path]:
    """Files of ``paths``, each folder replaced by its audio files (recursively, sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTS)
            if not found:
                raise AudioError(f"{p}: folder holds no {'/'.join(AUDIO_EXTS)} files")
            out.extend(found)
        else:
            out.append(p)
    return out


class KeywordSpotter:
    """A trained encoder with its run's front end, for enrolment, classification and spotting.

    Parameters
    ----------
    model_dir : path
        A run directory (``config.yaml`` + ``best.weights.h5``), e.g. from
        :func:`kws_proto.pretrained.resolve_model`.
    spec : str or None
        The name the model was given by (``"default"``), recorded in banks.
    """

    def __init__(self, model_dir: str | os.PathLike, spec: str | None = None):
        from kws_proto.export import EmbeddingGraph
        from kws_proto.model_io import load_run_network

        self.model_dir = Path(model_dir).resolve()
        self.spec = spec
        self.config, self.network = load_run_network(self.model_dir)
        self.features = self.config.features
        self.distance = self.config.model.distance
        self.fingerprint = weights_fingerprint(self.network.encoder)
        self.graph = EmbeddingGraph(self.network.encoder, self.features)
        self.embedding_dim = int(self.graph.embed(np.zeros((1, self.features.num_samples),
                                                           np.float32)).shape[-1])

    @classmethod
    def from_model(cls, spec: str | os.PathLike) -> "KeywordSpotter":
        """A run directory or ``"default"`` (:func:`kws_proto.pretrained.resolve_model`)."""
        from kws_proto.pretrained import DEFAULT, resolve_model

        path = resolve_model(spec)
        return cls(path, spec=DEFAULT if str(spec) == DEFAULT and path != Path(spec) else None)

    @classmethod
    def pretrained(cls) -> "KeywordSpotter":
        """The encoder shipped in ``kws_proto/models/default``."""
        return cls.from_model("default")

    @classmethod
    def for_bank(cls, bank: KeywordBank, model: str | os.PathLike | None = None) -> "KeywordSpotter":
        """The encoder that made ``bank`` (or ``model`` instead), checked against its fingerprint."""
        given = model is not None
        model = model if given else bank.encoder.spec or bank.encoder.model
        try:
            spotter = cls.from_model(model)
        except CheckpointError as e:
            if given:
                raise
            raise BankError(f"the bank's encoder cannot be loaded ({e}); if it has moved, "
                            "name it with --model") from e
        spotter.check_bank(bank)
        return spotter

    # -- banks ------------------------------------------------------------------------------
    @property
    def encoder_info(self) -> EncoderInfo:
        return EncoderInfo(model=str(self.model_dir), fingerprint=self.fingerprint,
                           encoder=self.config.model.encoder, distance=self.distance,
                           embedding_dim=self.embedding_dim, spec=self.spec)

    def new_bank(self) -> KeywordBank:
        """An empty bank of this encoder and front end."""
        return KeywordBank(self.encoder_info, self.features)

    def check_bank(self, bank: KeywordBank) -> None:
        """Raise :class:`BankError` unless ``bank`` was made by this encoder and front end."""
        if bank.encoder.fingerprint != self.fingerprint:
            raise BankError(
                f"the bank was made by another encoder: bank fingerprint "
                f"{bank.encoder.fingerprint[:16]}... ({bank.encoder.model}), this encoder "
                f"{self.fingerprint[:16]}... ({self.model_dir}); enrol the keywords again "
                "with this encoder")
        if bank.features != self.features:
            raise BankError(f"the bank was made with front end {bank.features.digest}, this "
                            f"encoder's run uses {self.features.digest}")

    # -- embedding --------------------------------------------------------------------------
    def load_clips(self, paths) -> np.ndarray:
        """Clips cut by the run's front end (rate, length, crop): ``[n, num_samples]``."""
        f = self.features
        return np.stack([load_audio(p, f.sample_rate, f.clip_seconds, f.crop) for p in paths])

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Embeddings of ``audio [n, num_samples]``: ``[n, d]`` float32 (``training=False``)."""
        return self.graph(np.asarray(audio, dtype=np.float32))

    def embed_files(self, paths) -> np.ndarray:
        """Embeddings of audio files: ``[n, d]``."""
        return self.embed(self.load_clips(paths))

    def load_views(self, paths, shifts_ms=ENROL_SHIFTS_MS) -> np.ndarray:
        """Each file cut at its crop moved by each of ``shifts_ms``: ``[n, S, num_samples]``
        (the view at 0 ms is :meth:`load_clips`'s clip; zeros where a view leaves the file)."""
        f = self.features
        n = f.num_samples
        out = np.empty((len(paths), len(shifts_ms), n), dtype=np.float32)
        for i, p in enumerate(paths):
            y = read_audio(p, f.sample_rate)
            start = crop_start(y, n, f.crop, f.sample_rate)
            for j, ms in enumerate(shifts_ms):
                out[i, j] = window_at(y, start + int(round(ms * f.sample_rate / 1000.0)), n)
        return out

    def embed_views(self, paths, shifts_ms=ENROL_SHIFTS_MS) -> np.ndarray:
        """Embeddings of :meth:`load_views`: ``[n, S, d]``."""
        views = self.load_views(paths, shifts_ms)
        e = self.embed(views.reshape(-1, views.shape[-1]))
        return np.asarray(e).reshape(len(views), len(shifts_ms), -1)

    # -- the three jobs ---------------------------------------------------------------------
    def enroll(self, bank: KeywordBank, name: str, files, negatives=(), replace: bool = False,
               threshold: float | None = None) -> Keyword:
        """Embed the views of ``files`` (``ENROL_SHIFTS_MS``) and ``negatives`` (at their crop),
        calibrate, add keyword ``name`` to ``bank``."""
        self.check_bank(bank)
        files = audio_files(files)
        if threshold is None and len(files) < 2:
            raise ConfigError(f"keyword {name!r}: {len(files)} clip(s) given; calibrating its "
                              "threshold needs at least 2 (or give --threshold)")
        if not files:
            raise ConfigError(f"keyword {name!r}: no support clips given")
        views = self.embed_views(files)  # [k, S, d]
        neg = self.embed_files(audio_files(negatives)) if negatives else None
        if threshold is None:
            threshold, info = calibrate_threshold(views, neg, self.distance)
        else:
            info = {"rule": "given by hand"}
        info["views_ms"] = list(ENROL_SHIFTS_MS)
        kw = bank.make_keyword(name, clip_embeddings(views, self.distance),
                               [f.name for f in files], threshold, info)
        bank.add(kw, replace=replace)
        return kw

    def classify(self, bank: KeywordBank, files) -> list[Classification]:
        """Nearest keyword, runner-up and unknown-rejection of each audio file."""
        self.check_bank(bank)
        files = list(files)
        return classifications(bank, keyword_distances(bank, self.embed_files(files)), files)

    def detect(self, bank: KeywordBank, audio, hop: float = 0.1, **merge):
        """Keyword events in a long recording (path or ``[n]`` samples at the front end's rate).

        See :func:`kws_proto.detect.detect_audio`; ``merge`` goes to its event merging.
        """
        from kws_proto.detect import detect_audio

        self.check_bank(bank)
        return detect_audio(self, bank, audio, hop=hop, **merge)
