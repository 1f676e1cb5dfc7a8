"""KeywordSpotter: a trained encoder turned into a tool: enrol keywords, classify clips, spot.

    from kws_proto.spot.spotter import KeywordSpotter
    spotter = KeywordSpotter.from_model("runs/smoke")        # or KeywordSpotter.pretrained()
    bank = spotter.new_bank()
    spotter.enroll(bank, "jarvis", ["j1.flac", "j2.flac", "j3.flac", "j4.flac", "j5.flac"])
    save_bank(bank, "my.bank.npz")
    spotter.classify(bank, ["query.wav"])                   # -> [Classification]
    spotter.detect(bank, "long.flac")                       # -> Detection (events, RTF)

Clips go through the run's own front end (``cfg.features``: :func:`kws_proto.audio.loading.load_audio`
with its rate, length and crop, then the in-graph MFCC of :mod:`kws_proto.spot.export`) and the
encoder with ``training=False``.

The decision rule and the threshold calibration: :mod:`kws_proto.spot.decision`.

**Enrolment views.**  A sliding window rarely starts where the front end would crop a clip, so
each support clip is embedded as a sliding window would see it: cut at its crop and at
``ENROL_SHIFTS_MS`` (-100 and +100 ms, one detection hop either side) from it, the recording's own
samples where it has them, zeros beyond.  The clip's support embedding is the mean of its views;
the prototype the mean of the clips'.

Measured (views, margins, streams): experiments/enrolment.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws_proto.audio.loading import check_word, crop_start, load_audio, read_audio, window_at
from kws_proto.errors import AudioError, BankError, CheckpointError, ConfigError
from kws_proto.model.loading import weights_fingerprint
from kws_proto.spot.bank import EncoderInfo, Keyword, KeywordBank
from kws_proto.spot.decision import calibrate_threshold, clip_embeddings, decide, keyword_distances

ENROL_SHIFTS_MS = (-100.0, 0.0, 100.0)
AUDIO_EXTS = (".wav", ".flac", ".ogg")
UNKNOWN = "unknown"


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
        elif not p.exists():
            raise AudioError(f"{p}: no such file or folder")
        else:
            out.append(p)
    return out


class KeywordSpotter:
    """A trained encoder with its run's front end, for enrolment, classification and spotting.

    Parameters
    ----------
    model_dir : path
        A run directory (``config.yaml`` + ``best.weights.h5``), e.g. from
        :func:`kws_proto.model.pretrained.resolve_model`.
    spec : str or None
        The name the model was given by (``"default"``), recorded in banks.
    """

    def __init__(self, model_dir: str | os.PathLike, spec: str | None = None):
        from kws_proto.spot.export import EmbeddingGraph
        from kws_proto.model.loading import load_run_network

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
        """A run directory or ``"default"`` (:func:`kws_proto.model.pretrained.resolve_model`)."""
        from kws_proto.model.pretrained import DEFAULT, resolve_model

        path = resolve_model(spec)
        return cls(path, spec=DEFAULT if str(spec) == DEFAULT and path != Path(spec) else None)

    @classmethod
    def pretrained(cls) -> "KeywordSpotter":
        """The encoder shipped in ``kws_proto/model/pretrained/default``."""
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
            y = check_word(read_audio(p, f.sample_rate), f.sample_rate, p)  # silent, too short
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
            threshold, info = calibrate_threshold(views, neg)
        else:
            info = {"rule": "given by hand"}
        info["views_ms"] = list(ENROL_SHIFTS_MS)
        kw = bank.make_keyword(name, clip_embeddings(views),
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

        See :func:`kws_proto.spot.detect.detect_audio`; ``merge`` goes to its event merging.
        """
        from kws_proto.spot.detect import detect_audio

        self.check_bank(bank)
        return detect_audio(self, bank, audio, hop=hop, **merge)
