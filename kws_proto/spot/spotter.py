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
encoder with ``training=False``, on one of two embedding backends
(:mod:`kws_proto.spot.backends`): the TensorFlow graph, or the encoder's TFLite export in LiteRT
without TensorFlow.  Banks made on either are interchangeable.

The decision rule and the threshold calibration: :mod:`kws_proto.spot.decision`; enrolment
(each support clip embedded at ``ENROL_SHIFTS_MS``, the views a sliding window sees):
:mod:`kws_proto.spot.enrolment`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from kws_proto.audio.loading import (
    check_word,
    crop_start,
    fix_length,
    load_audio,
    read_audio,
    window_at,
)
from kws_proto.errors import AudioError, BankError, CheckpointError, ConfigError
from kws_proto.model.fusion import is_fusion
from kws_proto.model.pretrained import DEFAULT, is_shipped, resolve_model
from kws_proto.model.runs import RunDir
from kws_proto.spot.backends import open_embedder, tf_embedder
from kws_proto.spot.background import (Background, build_background, load_background,
                                       shipped_background)
from kws_proto.spot.bank import EncoderInfo, Keyword, KeywordBank
from kws_proto.spot.decision import decide, keyword_distances
from kws_proto.spot.detect import Detection, detect_audio
from kws_proto.spot.context import (NEIGHBOURS, context_views, draw_neighbours, load_neighbours,
                                    shipped_neighbours)
from kws_proto.spot.enrolment import (AUTO, ENROL_SHIFTS_MS, context_rule, enrol_keyword,
                                      enrolment_rule)
from kws_proto.spot.frozen import frozen_embedder, is_frozen
from kws_proto.spot.fusion import open_fused
from kws_proto.spot.text import RECORDED_WEIGHT, VOICES, enroll_text
from kws_proto.spot.windows import HOP

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


@dataclass(frozen=True)
class Unreadable:
    """A file :meth:`KeywordSpotter.classify` could not read (``skip_unreadable=True``):
    ``error`` says why (the :class:`~kws_proto.errors.AudioError` without the path)."""

    path: str
    error: str

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.error}


def read_each(paths, read) -> tuple[list, list[tuple[str, AudioError]]]:
    """``read(path)`` of every path: the results (None where it failed) and the failures,
    ``(path, AudioError)`` each, so one bad file does not stop the others."""
    out, bad = [], []
    for p in paths:
        try:
            out.append(read(p))
        except AudioError as e:
            out.append(None)
            bad.append((str(p), e))
    return out, bad


def _refuse_unreadable(what: str, bad, total: int) -> None:
    """Raise one :class:`AudioError` naming every unreadable file of ``bad`` (if any)."""
    if bad:
        raise AudioError(f"{what}: {len(bad)} of {total} clip(s) cannot be read, so nothing was "
                         f"enrolled: " + "; ".join(str(e) for _, e in bad))


def _without_path(path: str, error: Exception) -> str:
    text = str(error)
    return text[len(path) + 2:] if text.startswith(f"{path}: ") else text


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
    backend : {"auto", "tf", "lite"} or None
        What embeds (:mod:`kws_proto.spot.backends`): the TensorFlow graph or the exported
        ``.tflite`` in LiteRT; None: ``$KWS_PROTO_BACKEND``, else ``auto`` (LiteRT when
        installed).  Banks made either way are interchangeable.
    """

    def __init__(self, model_dir: str | os.PathLike, spec: str | None = None,
                 backend: str | None = None, embedder=None):
        self.model_dir = Path(model_dir).resolve()
        self.spec = spec
        if embedder is None:  # a trained run
            self.embedder = open_embedder(self.model_dir, backend)
            config = RunDir(self.model_dir).read_config()
            self.features, self.encoder = config.features, config.model.encoder
            self.distance = config.model.distance
        else:  # an embedder with its own front end (the Google speech embedding, a fused model)
            self.embedder = embedder
            self.features, self.encoder = embedder.features, embedder.encoder
            self.distance = "euclidean"
        self.fingerprint = self.embedder.fingerprint
        self.embedding_dim = self.embedder.embedding_dim
        self._tf = self.embedder if self.embedder.backend == "tf" else None

    @property
    def backend(self) -> str:
        """``"tf"`` or ``"lite"``: what embeds (:mod:`kws_proto.spot.backends`)."""
        return self.embedder.backend

    def _tf_embedder(self):
        """The TensorFlow embedder (built on first use when the backend is LiteRT)."""
        if self._tf is None:
            self._tf = tf_embedder(self.model_dir)
        return self._tf

    @property
    def network(self):
        """The run's Keras network (loads TensorFlow when the backend is LiteRT)."""
        return self._tf_embedder().network

    @property
    def graph(self):
        """The :class:`~kws_proto.spot.export.EmbeddingGraph` (TensorFlow)."""
        return self._tf_embedder().graph

    @classmethod
    def from_model(cls, spec: str | os.PathLike, backend: str | None = None) -> "KeywordSpotter":
        """A run directory, a shipped model's name (``"default"``, ``"protores_synth"``:
        :mod:`kws_proto.model.pretrained`),
        ``"gse"``: the frozen Google speech embedding (:mod:`kws_proto.spot.gse`; the ``gse``
        extra), ``"ewn"``: EfficientWord-Net's (:mod:`kws_proto.spot.ewn`; ``make ewn``), or a
        fused model's folder (:mod:`kws_proto.spot.fusion`; members on ``backend``)."""
        if is_frozen(spec):
            embedder = frozen_embedder(spec, backend)
            return cls(embedder.model_dir, spec=str(spec), embedder=embedder)
        shipped = str(spec) if is_shipped(spec) else None  # recorded in banks: survives a move
        if is_fusion(spec):
            embedder = open_fused(spec, backend)
            return cls(embedder.model_dir, spec=shipped, embedder=embedder)
        return cls(resolve_model(spec), spec=shipped, backend=backend)

    @classmethod
    def pretrained(cls) -> "KeywordSpotter":
        """The package's default model (:mod:`kws_proto.model.pretrained`)."""
        return cls.from_model(DEFAULT)

    @classmethod
    def for_bank(cls, bank: KeywordBank, model: str | os.PathLike | None = None,
                 backend: str | None = None) -> "KeywordSpotter":
        """The encoder that made ``bank`` (or ``model`` instead), checked against its fingerprint."""
        given = model is not None
        model = model if given else bank.encoder.spec or bank.encoder.model
        try:
            spotter = cls.from_model(model, backend=backend)
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
                           encoder=self.encoder, distance=self.distance,
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
    def load_clip(self, path) -> np.ndarray:
        """One clip (a file, or a 1-D array of samples at the front end's rate) cut by the run's
        front end (rate, length, crop): ``[num_samples]``."""
        f = self.features
        if isinstance(path, np.ndarray):
            return fix_length(path, f.num_samples, f.crop, f.sample_rate)
        return load_audio(path, f.sample_rate, f.clip_seconds, f.crop)

    def load_clips(self, paths) -> np.ndarray:
        """Clips cut by the run's front end (rate, length, crop): ``[n, num_samples]``; an item
        may be a 1-D array of samples at the front end's rate instead of a file."""
        return np.stack([self.load_clip(p) for p in paths])

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Embeddings of ``audio [n, num_samples]``: ``[n, d]`` float32 (``training=False``)."""
        return self.embedder(np.asarray(audio, dtype=np.float32))

    def embed_files(self, paths) -> np.ndarray:
        """Embeddings of audio files: ``[n, d]``."""
        return self.embed(self.load_clips(paths))

    def load_views(self, paths, shifts_ms=ENROL_SHIFTS_MS) -> np.ndarray:
        """Each file cut at its crop moved by each of ``shifts_ms``: ``[n, S, num_samples]``
        (the view at 0 ms is :meth:`load_clips`'s clip; zeros where a view leaves the file; an item
        may be a 1-D array of samples at the front end's rate)."""
        return np.stack([self.load_view(p, shifts_ms) for p in paths])

    def load_view(self, path, shifts_ms=ENROL_SHIFTS_MS) -> np.ndarray:
        """One file's (or 1-D sample array's) views (:meth:`load_views`): ``[S, num_samples]``."""
        f = self.features
        n = f.num_samples
        y = (path if isinstance(path, np.ndarray)  # a file: refused when silent or too short
             else check_word(read_audio(path, f.sample_rate), f.sample_rate, path))
        start = crop_start(y, n, f.crop, f.sample_rate)
        return np.stack([window_at(y, start + int(round(ms * f.sample_rate / 1000.0)), n)
                         for ms in shifts_ms]).astype(np.float32, copy=False)

    def embed_views(self, paths, shifts_ms=ENROL_SHIFTS_MS) -> np.ndarray:
        """Embeddings of :meth:`load_views`: ``[n, S, d]``."""
        return self._embed_views(self.load_views(paths, shifts_ms))

    def embed_support(self, views: np.ndarray, context: int = 0, neighbours=None,
                      seed: int = 0) -> np.ndarray:
        """Embeddings of support clips' views ``[k, S, samples]`` (:meth:`load_views`), and
        with ``context`` that many more of each clip's 0 ms view said between two of
        ``neighbours`` (:func:`kws_proto.spot.context.context_views`, seeded): ``[k, S +
        context, d]``."""
        embedded = self._embed_views(views)
        if not context:
            return embedded
        clips = views[:, list(ENROL_SHIFTS_MS).index(0.0)]
        return np.concatenate([embedded, context_views(self, clips, neighbours, context, seed)],
                              axis=1)

    def _embed_views(self, views: np.ndarray) -> np.ndarray:
        e = self.embed(views.reshape(-1, views.shape[-1]))
        return np.asarray(e).reshape(views.shape[0], views.shape[1], -1)

    # -- the three jobs ---------------------------------------------------------------------
    def enroll(self, bank: KeywordBank, name: str, files, negatives=(), replace: bool = False,
               threshold: float | None = None, fa_per_hour: float | None = None,
               background: Background | None = None, score: str | None = None,
               norm: str | None = AUTO, level: float | None = None, context: int | str = AUTO,
               neighbours=None, seed: int = 0) -> Keyword:
        """Embed the views of ``files`` (``ENROL_SHIFTS_MS``) and ``negatives`` (at their crop),
        calibrate, add keyword ``name`` to ``bank``.  A keyword is never built from fewer clips
        than given: any unreadable support clip or negative raises one
        :class:`~kws_proto.errors.AudioError` naming every such file, and ``bank`` is unchanged.
        With ``fa_per_hour`` the threshold is the one at which the keyword fires at most that many
        times an hour on ``background`` (:mod:`kws_proto.spot.background`; of this encoder).
        ``score``: the scoring rule, ``"prototype"`` or ``"maxcos"`` (:mod:`kws_proto.spot.decision`;
        None: the bank's, ``"prototype"`` for an empty bank).  ``norm="snorm"`` or ``"ratio"``: the
        keyword's distances normalised against ``background`` as its cohort (in units of its
        deviation or of its mean), its threshold a cohort ``level``
        (:mod:`kws_proto.spot.cohort`); None: raw distances; ``"auto"``: the default rule
        (:func:`~kws_proto.spot.enrolment.enrolment_rule`: normalised against the model's own
        background, :attr:`shipped_background`, when it has one).  Without ``background``, a
        rate or a normalisation uses the model's own.  ``context=K``: each clip also gets ``K``
        views said between two of ``neighbours`` (files or folders of other words, a draw of at
        most ``NEIGHBOURS`` of them; None: the model's own, :attr:`shipped_neighbours`; seeded by
        ``seed``), which make the keyword's twin in context (:mod:`kws_proto.spot.context`);
        ``"auto"``: the default rule's (:func:`~kws_proto.spot.enrolment.context_rule`)."""
        self.check_bank(bank)
        shipped = self.shipped_background if background is None else None
        norm, background = enrolment_rule(norm, background, shipped, bank.norms, threshold,
                                          fa_per_hour, negatives)
        context = context_rule(context, norm, bank, score, threshold, fa_per_hour,
                               neighbours is not None
                               or shipped_neighbours(self.model_dir) is not None)
        if background is not None:
            background.check(self.fingerprint, self.features.digest)
        files = audio_files(files)
        if threshold is None and fa_per_hour is None and norm is None and len(files) < 2:
            raise ConfigError(f"keyword {name!r}: {len(files)} clip(s) given; calibrating its "
                              "threshold needs at least 2 (or give --threshold)")
        if not files:
            raise ConfigError(f"keyword {name!r}: no support clips given")
        views, bad = read_each(files, self.load_view)
        _refuse_unreadable(f"keyword {name!r}", bad, len(files))
        negatives = audio_files(negatives) if negatives else []
        neg_clips, bad = read_each(negatives, self.load_clip)
        _refuse_unreadable(f"keyword {name!r}, negatives", bad, len(negatives))
        around = self._neighbours(name, context, neighbours, seed)
        embedded = self.embed_support(np.stack(views), context, around, seed)
        neg = self.embed(np.stack(neg_clips)) if negatives else None
        kw = enrol_keyword(embedded, name, [f.name for f in files], neg, threshold=threshold,
                           fa_per_hour=fa_per_hour, background=background,
                           score=bank.score if score is None else score, norm=norm, level=level,
                           context=context, twin=bool(context))
        bank.add(kw, replace=replace)
        return kw

    def _neighbours(self, name: str, context: int, neighbours, seed: int):
        """The clips a ``context`` enrolment places its support clips between (None without
        one): a seeded draw of the files of ``neighbours`` (any unreadable one is refused), or
        the model's own when None."""
        if not isinstance(context, int) or isinstance(context, bool) or context < 0:
            raise ConfigError(f"keyword {name!r}: context={context!r} must be a whole number of "
                              "views >= 0")
        if not context:
            return None
        if neighbours is None:
            if self.shipped_neighbours is None:
                raise ConfigError(f"keyword {name!r}: context={context} needs clips of other words "
                                  f"as neighbours, and the model {self.model_dir} ships none")
            return self.shipped_neighbours
        paths = draw_neighbours(audio_files(neighbours), NEIGHBOURS, seed)
        if len(paths) < 2:
            raise ConfigError(f"keyword {name!r}: context={context} needs at least 2 clips of other "
                              f"words as neighbours, got {len(paths)}")
        clips, bad = read_each(paths, self.load_clip)
        _refuse_unreadable(f"keyword {name!r}, neighbours", bad, len(paths))
        return clips

    def enroll_text(self, bank: KeywordBank, name: str, text: str, voices: int = VOICES,
                    clips=(), negatives=(), confusables: int = 0, replace: bool = False,
                    threshold: float | None = None, seed: int = 0,
                    recorded_weight: float | None = RECORDED_WEIGHT) -> Keyword:
        """Enrol ``name`` from ``text`` said by ``voices`` built-in eSpeak NG voices, beside the
        recorded ``clips`` (files or folders, may be empty); ``confusables`` synthesised words
        one phoneme away cap the threshold as negatives; beside recorded clips the prototype is
        ``recorded_weight`` x their mean + the rest x the synthesised mean (None: the plain mean).
        Into a new bank by the support rule; into a bank of keywords, as they are (normalised
        against the model's own background or not: :func:`~kws_proto.spot.enrolment.enrolment_rule`).
        See :mod:`kws_proto.spot.text`."""
        norm, background = enrolment_rule(AUTO if len(bank) else None, None,
                                          self.shipped_background, bank.norms, threshold)
        return enroll_text(self, bank, name, text, voices, audio_files(clips) if clips else [],
                           audio_files(negatives) if negatives else [], confusables=confusables,
                           replace=replace, threshold=threshold, seed=seed,
                           recorded_weight=recorded_weight, norm=norm, background=background)

    @cached_property
    def shipped_neighbours(self) -> list[np.ndarray] | None:
        """The clips of other words this model ships (``neighbours.npz`` in its folder: the
        neighbours of its default enrolment's views in context, :mod:`kws_proto.spot.context`),
        or None; read on first use."""
        path = shipped_neighbours(self.model_dir)
        return None if path is None else load_neighbours(path, self.features.sample_rate)

    @cached_property
    def shipped_background(self) -> Background | None:
        """The background this model ships (``background.npz`` in its folder: the cohort of its
        default enrolment, :mod:`kws_proto.spot.enrolment`), or None; read on first use."""
        path = shipped_background(self.model_dir)
        return None if path is None else load_background(path)

    def background(self, files, hop: float = HOP, join: bool = False,
                   skip_unreadable: bool = False) -> Background:
        """Keyword-free audio (files or folders of them: long recordings or clips) cut by the
        detector's window every ``hop`` seconds and embedded: a :class:`Background` for
        ``enroll(..., fa_per_hour=R, background=...)`` (:mod:`kws_proto.spot.background`);
        ``join``: the files back to back as one recording; ``skip_unreadable``: leave out the
        files that cannot be read instead of raising."""
        paths = list(files)
        return build_background(self, audio_files(paths), hop, ", ".join(str(p) for p in paths),
                                join=join, skip_unreadable=skip_unreadable)

    def classify(self, bank: KeywordBank, files, skip_unreadable: bool = False) -> list:
        """Nearest keyword, runner-up and unknown-rejection of each audio file: one
        :class:`Classification` per file, in order.  An unreadable file raises its
        :class:`~kws_proto.errors.AudioError`, or with ``skip_unreadable`` gets an
        :class:`Unreadable` in its place while every other file is classified."""
        self.check_bank(bank)
        files = list(files)
        clips, bad = read_each(files, self.load_clip)
        if bad and not skip_unreadable:
            raise bad[0][1]
        read = [i for i, c in enumerate(clips) if c is not None]
        done = []
        if read:
            distances = keyword_distances(bank, self.embed(np.stack([clips[i] for i in read])))
            done = classifications(bank, distances, [files[i] for i in read])
        done, errors = iter(done), dict(bad)
        return [next(done) if c is not None else Unreadable(str(p), _without_path(str(p), errors[str(p)]))
                for p, c in zip(files, clips)]

    def detect(self, bank: KeywordBank, audio, hop: float = HOP, **merge) -> Detection:
        """Keyword events in a long recording (path or ``[n]`` samples at the front end's rate).

        See :func:`kws_proto.spot.detect.detect_audio`; ``merge`` goes to its event merging.
        """
        self.check_bank(bank)
        return detect_audio(self, bank, audio, hop=hop, **merge)
