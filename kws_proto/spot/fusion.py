"""A fused model (:mod:`kws_proto.model.fusion`) as the spotter's embedder, and how one is made.

:func:`fuse_models` embeds clips of a corpus with every member, records each member's mean
embedding as its centre, and writes the fused model's folder; :func:`open_fused` opens it as a
:class:`FusedEmbedder`, which runs each member's own embedder on the same clips (a trained run on
its backend, :mod:`kws_proto.spot.backends`: the TFLite export in LiteRT or the TensorFlow graph;
the Google speech embedding's two TFLite files in the same backend's interpreter,
:mod:`kws_proto.spot.gse`; EfficientWord-Net's ONNX model in ONNX Runtime, :mod:`kws_proto.spot.ewn`)
and fuses their outputs in NumPy: with LiteRT installed, no member imports TensorFlow.  ``KeywordSpotter.from_model(FOLDER)`` enrols, classifies and detects with it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from kws_proto.audio.features import FeatureConfig
from kws_proto.audio.loading import load_audio
from kws_proto.errors import AudioError, CheckpointError, ConfigError
from kws_proto.model.fusion import Fusion, Member, is_fusion, load_fusion, save_fusion
from kws_proto.model.gse import remember_windows
from kws_proto.model.pretrained import is_shipped, resolve_model
from kws_proto.model.runs import RunDir
from kws_proto.spot.backends import open_embedder
from kws_proto.spot.frozen import frozen_embedder, is_frozen
from kws_proto.spot.lite import BATCH_SIZE

AUDIO_EXTS = (".wav", ".flac", ".ogg")
CLIPS = 1000  # corpus clips a centre is the mean of, by default


def member_name(model: str | os.PathLike) -> str:
    """How a member is recorded: ``"gse"``, ``"ewn"``, a shipped run's name (``"protores_synth"``),
    or a run directory's absolute path."""
    if is_frozen(model) or is_shipped(model):
        return str(model)
    return str(Path(model).resolve())


def member_embedder(model: str | os.PathLike, backend: str | None = None):
    """The embedder of one member on ``backend``: a frozen embedding or a trained run."""
    if is_frozen(model):
        return frozen_embedder(model, backend)
    if is_fusion(model):
        raise ConfigError(f"{model}: a fused model cannot be a member of another")
    return open_embedder(resolve_model(model), backend)


def member_features(model: str, embedder) -> FeatureConfig:
    """The front end of one member: the run's recorded one, or the embedder's own."""
    if is_frozen(model):
        return embedder.features
    return RunDir(resolve_model(model)).read_config().features


def common_front_end(models, features) -> FeatureConfig:
    """The first member's front end, once every member cuts clips alike (rate, length, crop)."""
    cut = {(f.sample_rate, f.clip_seconds, f.crop) for f in features}
    if len(cut) > 1:
        raise ConfigError(f"members {list(map(str, models))} cut clips differently "
                          f"(sample rate, seconds, crop: {sorted(cut)}); they cannot be fused")
    return features[0]


class FusedEmbedder:
    """``__call__(audio [n, num_samples] float32) -> [n, sum d_i]``: every member's embedder on
    the same clips, fused by :meth:`kws_proto.model.fusion.Fusion.fuse`.

    ``backend`` names the members' backends (``"lite+gse"``); ``fingerprint`` is the fusion's.
    """

    def __init__(self, fusion: Fusion, embedders, model_dir: Path, features: FeatureConfig):
        self.fusion, self.embedders, self.model_dir = fusion, list(embedders), Path(model_dir)
        self.features = features
        self.backend = "+".join(e.backend for e in self.embedders)
        self.encoder = "fusion(" + "+".join(Path(m.model).name for m in fusion.members) + ")"
        self.fingerprint = fusion.fingerprint
        self.embedding_dim = fusion.dim

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        with remember_windows():  # members on the speech embedding share its windows
            return self.fusion.fuse([e(audio) for e in self.embedders])


def open_fused(path: str | os.PathLike, backend: str | None = None) -> FusedEmbedder:
    """The :class:`FusedEmbedder` of the fused model in folder ``path``.

    Raises :class:`CheckpointError` when a member's weights fingerprint is no longer the one its
    centre was taken with (its weights changed: fuse again)."""
    path = resolve_model(path).resolve()
    fusion = load_fusion(path)
    embedders = [member_embedder(m.model, backend) for m in fusion.members]
    for m, e in zip(fusion.members, embedders):
        if e.fingerprint != m.fingerprint:
            raise CheckpointError(
                f"{path}: member {m.model} has weights fingerprint {e.fingerprint[:16]}..., but "
                f"its centre was taken with {m.fingerprint[:16]}...; run `kws-proto fuse` again")
    features = [member_features(m.model, e) for m, e in zip(fusion.members, embedders)]
    return FusedEmbedder(fusion, embedders, path,
                         common_front_end([m.model for m in fusion.members], features))


def centre_files(folder: str | os.PathLike, clips: int = CLIPS, seed: int = 0) -> list[Path]:
    """``clips`` audio files of ``folder`` (recursively), drawn without replacement by ``seed``
    from the sorted list (all of them when it holds fewer), in sorted order."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTS and p.is_file())
    if not files:
        raise AudioError(f"{folder}: holds no {'/'.join(AUDIO_EXTS)} files to take centres from")
    if clips < len(files):
        pick = np.random.default_rng(seed).choice(len(files), size=clips, replace=False)
        files = [files[i] for i in sorted(pick)]
    return files


def load_centre_clips(files, features: FeatureConfig, progress: bool = True):
    """The clips of ``files`` cut by ``features`` (``[n, num_samples]``) and the files read
    (an unreadable one is left out)."""
    clips, used = [], []
    for f in tqdm(files, unit="clip", desc="centre clips", disable=not progress):
        try:
            clips.append(load_audio(f, features.sample_rate, features.clip_seconds, features.crop))
            used.append(f)
        except AudioError:
            continue
    if not clips:
        raise AudioError("none of the centre clips could be read")
    return np.stack(clips), used


def fit_members(models, files, weights=None, backend: str | None = None,
                progress: bool = True) -> tuple[tuple[Member, ...], list[Path]]:
    """The members of a fusion of ``models`` (run directories, ``protores_synth``, ``gse``, ``ewn``),
    each centred on its mean embedding of the audio ``files`` (cut by the members' common front
    end; unreadable ones skipped), weighed by ``weights`` (None: all 1).  Returns the members
    and the files used."""
    models = [str(m) for m in models]
    weights = [1.0] * len(models) if weights is None else [float(w) for w in weights]
    if len(weights) != len(models):
        raise ConfigError(f"{len(weights)} weights given for {len(models)} members")
    embedders = [member_embedder(m, backend) for m in models]
    features = common_front_end(models, [member_features(m, e) for m, e in zip(models, embedders)])
    audio, used = load_centre_clips(files, features, progress)
    members = tuple(Member(member_name(m), e.fingerprint, w, mean_embedding(e, audio))
                    for m, e, w in zip(models, embedders, weights))
    return members, used


def fuse_models(models, centre_data: str | os.PathLike, out: str | os.PathLike, weights=None,
                clips: int = CLIPS, seed: int = 0, backend: str | None = None,
                progress: bool = True) -> Fusion:
    """Fuse ``models`` (run directories, ``protores_synth``, ``gse``, ``ewn``) into the folder ``out``.

    Each member's centre is its mean embedding of ``clips`` clips of ``centre_data`` drawn by
    ``seed`` (:func:`centre_files`), cut by the members' common front end; ``weights`` (one
    per member, None: all 1) weigh the members' squared distances.  Returns the fusion written.
    """
    members, used = fit_members(models, centre_files(centre_data, clips, seed), weights, backend,
                                progress)
    listing = "\n".join(f.relative_to(centre_data).as_posix() for f in used)
    fusion = Fusion(members, {"path": str(Path(centre_data).resolve()), "clips": len(used), "seed": int(seed),
                              "files_sha256": hashlib.sha256(listing.encode()).hexdigest()})
    save_fusion(fusion, out)
    return fusion


def mean_embedding(embedder, audio: np.ndarray) -> np.ndarray:
    """Mean embedding ``[d]`` of ``audio [n, num_samples]``, embedded in batches."""
    total = None
    for i in range(0, len(audio), BATCH_SIZE):
        part = np.asarray(embedder(audio[i:i + BATCH_SIZE]), np.float64).sum(axis=0)
        total = part if total is None else total + part
    return (total / len(audio)).astype(np.float32)
