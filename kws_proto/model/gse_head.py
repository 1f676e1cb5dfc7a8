"""A trained head on the frozen Google speech embedding's windows (``gse-head``).

The Google speech embedding (:mod:`kws_proto.model.gse`) gives a 1 s clip three 96-d window
outputs (775 ms each, one every 80 ms); ``gse`` keeps their element-wise maximum.  The head is
a small network trained episodically on those three windows of words' clips
(:mod:`kws_proto.train.gse_head`): flatten ``[3, 96]`` -> dense ``hidden``, ReLU
-> dense ``dim`` -> unit length.  The speech embedding stays frozen; the head learns which of
its directions tell words apart, and the fused ``default`` takes it as a third member.

A head may be an ensemble of ``K`` such networks trained alike from ``K`` seeds (``heads`` of its
config): its output is their ``K`` unit vectors side by side, scaled by ``1 / sqrt(K)`` — unit
length again, and the squared distance of two outputs is the mean of the networks' own.

At run time the head is NumPy (two matrix products), so it runs wherever the speech embedding
runs, with or without TensorFlow.  Its file, ``gse_head.npz``, holds ``w1 [288, hidden]``,
``b1 [hidden]``, ``w2 [hidden, dim]``, ``b2 [dim]`` (float32; an ensemble's with a leading axis of
its ``K`` networks: ``w1 [K, 288, hidden]`` …) and a JSON ``record`` (how it was trained);
:attr:`GSEHead.digest` hashes the four arrays and is part of the fingerprint a bank records.
The package ships one in ``kws_proto/model/pretrained/gse_head/`` (``make pretrained``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws_proto.audio.augment import AugmentConfig, augment_function, load_noise
from kws_proto.audio.neighbours import with_neighbours
from kws_proto.data.cache import _cached, _digest, waveform_cache, whole_cache
from kws_proto.data.dataset import noise_files
from kws_proto.errors import CheckpointError, ConfigError
from kws_proto.model.gse import DIM, SAMPLE_RATE, crop_key, shared_model
from kws_proto.model.pretrained import MODELS_DIR
from kws_proto.util.atomic import atomic_path
from kws_proto.util.vectors import l2_normalize

FILE = "gse_head.npz"
SHIPPED_DIR = MODELS_DIR / "gse_head"  # the shipped head's folder
WINDOWS = 3  # the speech embedding's windows in a 1 s clip
ARRAYS = ("w1", "b1", "w2", "b2")


@dataclass(frozen=True)
class GSEHead:
    """The head's weights and the record of how it was trained: one network (2-d ``w1``) or an
    ensemble of ``K`` (every array with a leading axis ``K``).

    ``__call__(windows [n, 3, 96]) -> [n, dim]``: unit-length embeddings (an ensemble's
    ``dim`` is ``K`` times a network's)."""

    w1: np.ndarray  # [3 * 96, hidden] or [K, 3 * 96, hidden]
    b1: np.ndarray  # [hidden] or [K, hidden]
    w2: np.ndarray  # [hidden, dim] or [K, hidden, dim]
    b2: np.ndarray  # [dim] or [K, dim]
    record: dict = field(default_factory=dict)

    def __post_init__(self):
        for a in ARRAYS:  # float32 whatever it was built from: the file's type, one result
            object.__setattr__(self, a, np.asarray(getattr(self, a), np.float32))
        w1, b1, w2, b2 = shapes = [np.shape(getattr(self, a)) for a in ARRAYS]
        k = w1[:-2]  # () for one network, (K,) for an ensemble
        ok = (len(w1) in (2, 3) and w1[-2] == WINDOWS * DIM and b1 == (*k, w1[-1])
              and w2 == (*k, w1[-1], w2[-1]) and b2 == (*k, w2[-1]) and w2[-1] > 0
              and all(n > 0 for n in k))
        if not ok:
            raise CheckpointError(f"a speech-embedding head needs w1 [{WINDOWS * DIM}, h], b1 [h], "
                                  f"w2 [h, d], b2 [d], each with the same leading axis K for an "
                                  f"ensemble of K; got {shapes}")

    @property
    def heads(self) -> int:
        """``K``: how many networks the head averages (1: one network)."""
        return int(self.w1.shape[0]) if self.w1.ndim == 3 else 1

    @property
    def dim(self) -> int:
        return self.heads * int(self.b2.shape[-1])

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the four arrays (float32 bytes, in order, with their shapes)."""
        h = hashlib.sha256(b"kws_proto.gse_head/1")
        for a in ARRAYS:
            x = np.ascontiguousarray(getattr(self, a), np.float32)
            h.update(f";{a}{x.shape}".encode())
            h.update(x.tobytes())
        return h.hexdigest()

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows, np.float32)
        if x.ndim != 3 or x.shape[1:] != (WINDOWS, DIM):
            raise ValueError(f"the head takes windows [n, {WINDOWS}, {DIM}], got shape {x.shape}")
        flat = x.reshape(len(x), -1)  # [n, 288]
        if self.heads == 1:
            return l2_normalize(np.maximum(flat @ self.w1 + self.b1, 0) @ self.w2 + self.b2)
        hidden = np.maximum(np.einsum("nf,kfh->knh", flat, self.w1) + self.b1[:, None], 0)
        out = l2_normalize(np.einsum("knh,khd->knd", hidden, self.w2) + self.b2[:, None])  # K, n, d
        return (out.transpose(1, 0, 2).reshape(len(x), -1) / np.sqrt(self.heads)).astype(np.float32)

    @classmethod
    def ensemble(cls, heads, record: dict | None = None) -> "GSEHead":
        """One head of the networks of ``heads`` (single networks of one size), stacked."""
        heads = list(heads)
        if not heads or any(h.w1.ndim != 2 for h in heads):
            raise CheckpointError("an ensemble of speech-embedding heads is made of single networks")
        try:
            arrays = [np.stack([getattr(h, a) for h in heads]) for a in ARRAYS]
        except ValueError as e:
            raise CheckpointError(f"an ensemble's heads must be of one size ({e})") from e
        return cls(*arrays, record={} if record is None else record)


def save_head(head: GSEHead, path: str | os.PathLike) -> Path:
    """Write ``head`` to ``path`` (``.npz``) atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {a: np.asarray(getattr(head, a), np.float32) for a in ARRAYS}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, record=np.array(json.dumps(head.record)))
    return path


def load_head(path: str | os.PathLike = SHIPPED_DIR / FILE) -> GSEHead:
    """Read a head written by :func:`save_head`; a missing or malformed file is a
    :class:`CheckpointError` naming it."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {a: np.asarray(z[a], np.float32) for a in ARRAYS}
            record = json.loads(str(z["record"])) if "record" in z.files else {}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no speech-embedding head there (`make pretrained` "
                              "builds the shipped one)") from None
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: not a speech-embedding head ({e})") from e
    return GSEHead(**arrays, record=record)


_HEADS: dict[tuple, GSEHead] = {}


def shipped_head() -> GSEHead:
    """The head the package ships (read once per process, again when its file changes: `make
    pretrained` trains it and fuses the default in one process)."""
    path = SHIPPED_DIR / FILE
    try:
        key = (path, path.stat().st_mtime_ns)
    except FileNotFoundError:
        key = (path, None)  # load_head names the missing file
    if key not in _HEADS:
        _HEADS[key] = load_head(path)
    return _HEADS[key]


def gse_windows(audio: np.ndarray, backend: str = "tf") -> np.ndarray:
    """``audio [n, 16000]`` float32 at 16 kHz -> the speech embedding's ``[n, 3, 96]`` windows."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2 or audio.shape[1] != SAMPLE_RATE:
        raise ValueError(f"the head takes 1 s clips at {SAMPLE_RATE} Hz [n, {SAMPLE_RATE}], "
                         f"got shape {audio.shape}")
    return shared_model(backend).window_embeddings(audio)


def window_table(manifest, config=None, cache_dir=None, progress: bool = True, rows=None,
                 memo: dict | None = None, batch_size: int = 64) -> np.ndarray:
    """``[n_clips, 3, 96]``: the speech embedding's windows of every clip's 1 s crop, cached in
    ``DIR/.cache/gsewin-<digest>.npy`` like :func:`kws_proto.model.gse.crop_table` (``rows`` and
    ``memo``: only the rows needed, when few and nothing is cached)."""
    config, key = crop_key(config)
    if config.num_samples != SAMPLE_RATE:
        raise ConfigError(f"the head takes 1 s clips, not {config.clip_seconds} s")
    return _cached(manifest, config, cache_dir, "gsewin", _digest(key), key, (WINDOWS, DIM),
                   "float32", gse_windows, progress, batch_size, rows, memo)


def context_table(manifest, seed: int = 0, cache_dir=None, progress: bool = True,
                  batch_size: int = 64) -> np.ndarray:
    """``[n_clips, 3, 96]``: the speech embedding's windows of every clip's 1 s crop said between
    two other words of its speaker (:func:`kws_proto.audio.neighbours.with_neighbours`, ``seed``),
    cached in ``DIR/.cache/gsewinctx-<digest>.npy`` (:func:`kws_proto.data.cache.whole_cache`)."""
    def mix(waves: np.ndarray) -> np.ndarray:
        return with_neighbours(waves, [c.speaker for c in manifest.clips], seed)

    return _mixed_table(manifest, "gsewinctx", {"neighbours_seed": int(seed)}, mix, cache_dir,
                        progress, batch_size)


def augmented_table(manifest, augment: AugmentConfig, seed: int = 0, cache_dir=None,
                    progress: bool = True, batch_size: int = 64) -> np.ndarray:
    """``[n_clips, 3, 96]``: the speech embedding's windows of every clip's 1 s crop after the
    waveform augmentation ``augment`` (:func:`kws_proto.audio.augment.augment`: reverberation,
    time shift, the dataset's background noise), one fixed draw per clip (batch ``i`` of
    ``batch_size`` clips has the seed ``[seed, i]``), cached in ``DIR/.cache/gsewinaug-<digest>.npy``
    (:func:`kws_proto.data.cache.whole_cache`); the key holds the augmentation, the seed and the
    noise recordings' names and sizes."""
    import tensorflow as tf  # lazy: TensorFlow

    files = noise_files(manifest.root)
    key = {"augment": augment.to_dict(), "augment_seed": int(seed), "batch": int(batch_size),
           "noise": [[f.name, f.stat().st_size] for f in files]}

    def mix(waves: np.ndarray) -> np.ndarray:
        noise = tf.constant(load_noise(files, sr=SAMPLE_RATE), tf.float32)
        fn = augment_function(augment, SAMPLE_RATE)
        return np.concatenate([fn(tf.constant(waves[start:start + batch_size]), noise,
                                  tf.constant([seed, i], tf.int64)).numpy()
                               for i, start in enumerate(range(0, len(waves), batch_size))])

    return _mixed_table(manifest, "gsewinaug", key, mix, cache_dir, progress, batch_size)


def _mixed_table(manifest, kind: str, key: dict, mix, cache_dir, progress: bool,
                 batch_size: int) -> np.ndarray:
    """``[n_clips, 3, 96]``: the speech embedding's windows of ``mix(waves [n_clips, 16000]) ->
    [n_clips, 16000]``, the clips' 1 s crops changed all at once (a clip's change may need
    others), cached as ``kind`` under the crop's key plus ``key``
    (:func:`kws_proto.data.cache.whole_cache`)."""
    config, crop = crop_key(None)

    def compute() -> np.ndarray:
        waves = np.asarray(waveform_cache(manifest, config, cache_dir, progress=progress), np.float32)
        mixed = np.asarray(mix(waves), np.float32)
        return np.concatenate([gse_windows(mixed[i:i + batch_size])
                               for i in range(0, len(mixed), batch_size)])

    return whole_cache(manifest, kind, {**crop, **key}, (WINDOWS, DIM), "float32", compute,
                       cache_dir)


def head_table(name: str, manifest, progress: bool = True, rows=None,
               memo: dict | None = None) -> np.ndarray:
    """``[n_clips, dim]``: the shipped head on every clip's windows (:func:`window_table`); the
    scored table of ``kws-proto eval gse-head``."""
    return shipped_head()(np.asarray(window_table(manifest, progress=progress, rows=rows, memo=memo)))
