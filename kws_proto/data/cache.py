"""Feature and waveform caches of a prepared dataset: computed once, memory-mapped on read.

Layout (``cache_dir`` defaults to ``DIR/.cache`` inside the dataset folder ``DIR``)::

    mfcc-<FeatureConfig.digest>.npy   float32 [n_clips, num_frames, n_mfcc]
    mfcc-<FeatureConfig.digest>.json  sidecar: what the array holds (see below)
    wave-<key digest>.npy             float32 or int16 [n_clips, num_samples]
    wave-<key digest>.json            the key is (sample_rate, clip_seconds, crop, dtype)

Row ``i`` of every array is row ``i`` of ``manifest.csv``.  Arrays are ``.npy`` files opened
with ``np.load(mmap_mode="r")``, so training pages in only the rows it touches.  The sidecar
records the cache kind, the full key (for features: every FeatureConfig field and
``FRONTEND_VERSION``), the manifest fingerprint (sha256 of its rows, so any change of the
manifest invalidates the cache), the shape and the dtype.  A cache is used only when its sidecar
matches all of these and the array has that shape and dtype; otherwise it is rebuilt.

Several processes may open one dataset at once (the workers of a multi-worker run, or runs
side by side): a build holds an exclusive lock (:func:`~kws_proto.util.atomic.exclusive_lock`,
``.<kind>-<digest>.lock`` beside the array), and a process that finds the cache missing takes
the lock, then checks again, so it either builds the cache or waits for the one building it and
reads the result; no two processes write the same cache.  ``kws-prep cache DATASET CONFIG``
builds a config's caches beforehand.

A build first deletes the old sidecar, writes the array batch by batch to a hidden temporary
file (removed if the build fails), renames it into place with ``os.replace`` and writes the
sidecar last (atomically), so an interrupted build never leaves a cache that looks complete.
Audio is loaded with :func:`kws_proto.audio.loading.load_audio` in a small thread pool; a listed file
that cannot be loaded means the manifest is stale, and the build stops with a
:class:`~kws_proto.errors.DatasetError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from kws_proto.audio.loading import load_audio
from kws_proto.data.dataset import MANIFEST, Manifest
from kws_proto.errors import AudioError, ConfigError, DatasetError
from kws_proto.audio.features import FRONTEND_VERSION, FeatureConfig, mfcc_function
from kws_proto.util.atomic import atomic_path, atomic_write_text, exclusive_lock

CACHE_DIR = ".cache"
CACHE_FORMAT = 1
WAVE_DTYPES = ("float32", "int16")
BATCH_SIZE = 128  # clips per mfcc batch; 64-128 ran fastest of 16..1000 on 2 cores
PARTIAL_SHARE = 0.5  # rows asked for below this share of a manifest are computed alone, uncached
INT16_SCALE = 32768.0  # soundfile reads 16-bit PCM as int / 32768, so this round-trips exactly


def feature_cache(
    manifest: Manifest,
    config: FeatureConfig = FeatureConfig(),
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """MFCC of every clip of a dataset, built once with :func:`~kws_proto.audio.features.mfcc_batch`.

    Parameters
    ----------
    manifest : Manifest
        The prepared dataset; clips are loaded with ``config``'s sample rate, length and crop.
    config : FeatureConfig
    cache_dir : path or None
        Where the cache lives; ``manifest.root / ".cache"`` when None.
    progress : bool
        Show a tqdm progress bar while building.
    batch_size : int > 0
        Clips per feature batch.

    Returns
    -------
    features : np.memmap [shape=(len(manifest), config.num_frames, config.n_mfcc), dtype=float32]
        Read-only, row ``i`` = manifest row ``i``.
    """
    key = {"config": config.to_dict(), "frontend_version": FRONTEND_VERSION}

    def compute(Y: np.ndarray) -> np.ndarray:  # TensorFlow is imported only when building
        return mfcc_function(config)(Y).numpy()

    return _cached(manifest, config, cache_dir, "mfcc", config.digest, key,
                   config.shape, "float32", compute, progress, batch_size)


def waveform_cache(
    manifest: Manifest,
    config: FeatureConfig = FeatureConfig(),
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    dtype: str = "float32",
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """Fixed-length waveforms of every clip (for augmentation on the waveform), built once.

    Parameters
    ----------
    manifest : Manifest
    config : FeatureConfig
        Only ``sample_rate``, ``clip_seconds`` and ``crop`` matter (they key the cache).
    cache_dir : path or None
        ``manifest.root / ".cache"`` when None.
    progress : bool
    dtype : {"float32", "int16"}
        Storage type; int16 halves the disk size (``int16 / 32768``, see :func:`to_float32`).
    batch_size : int > 0

    Returns
    -------
    waves : np.memmap [shape=(len(manifest), config.num_samples), dtype=dtype]
        Read-only, row ``i`` = manifest row ``i``.
    """
    if dtype not in WAVE_DTYPES:
        raise ConfigError(f"dtype={dtype!r} must be one of {WAVE_DTYPES}")
    key = {"sample_rate": config.sample_rate, "clip_seconds": config.clip_seconds,
           "crop": config.crop, "dtype": dtype}
    digest = _digest(key)
    if dtype == "int16":
        def store(Y: np.ndarray) -> np.ndarray:
            return np.clip(np.round(Y * INT16_SCALE), -32768, 32767).astype(np.int16)
    else:
        def store(Y: np.ndarray) -> np.ndarray:
            return Y
    return _cached(manifest, config, cache_dir, "wave", digest, key,
                   (config.num_samples,), dtype, store, progress, batch_size)


def to_float32(waves: np.ndarray) -> np.ndarray:
    """Rows of a waveform cache as float32 in [-1, 1] (``int16 / 32768``; float32 unchanged)."""
    waves = np.asarray(waves)
    if waves.dtype == np.int16:
        return waves.astype(np.float32) / np.float32(INT16_SCALE)
    return waves.astype(np.float32, copy=False)


def manifest_fingerprint(manifest: Manifest) -> str:
    """sha256 of the manifest's rows in order (path, keyword, speaker, duration, sample_rate)."""
    h = hashlib.sha256()
    for c in manifest.clips:
        h.update(f"{c.path}\t{c.keyword}\t{c.speaker}\t{c.duration:.4f}\t{c.sample_rate}\n"
                 .encode("utf-8"))
    return h.hexdigest()


def cache_files(
    manifest: Manifest, kind: str, digest: str, cache_dir: str | os.PathLike | None = None
) -> tuple[Path, Path]:
    """``(array .npy, sidecar .json)`` paths of a cache of ``kind`` ("mfcc" or "wave")."""
    d = Path(cache_dir) if cache_dir is not None else Path(manifest.root) / CACHE_DIR
    return d / f"{kind}-{digest}.npy", d / f"{kind}-{digest}.json"


def _digest(key: dict) -> str:
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _cached(
    manifest: Manifest,
    config: FeatureConfig,
    cache_dir: str | os.PathLike | None,
    kind: str,
    digest: str,
    key: dict,
    row_shape: tuple[int, ...],
    dtype: str,
    compute: Callable[[np.ndarray], np.ndarray],
    progress: bool,
    batch_size: int,
    rows=None,
    memo: dict | None = None,
) -> np.ndarray:
    """Open the cache when its sidecar matches; otherwise build it (see the module docstring).

    With ``rows`` (manifest rows a caller needs) and no valid cache on disk, only those rows are
    computed when they, with the rows already in ``memo`` (row -> vector, kept by the caller
    across calls), are fewer than :data:`PARTIAL_SHARE` of the manifest: the other rows of the
    returned ``[n, *row_shape]`` array are zero and nothing is written.  A larger share builds
    the whole cache as without ``rows``."""
    if batch_size <= 0:
        raise ConfigError(f"batch_size={batch_size} must be positive")
    n = len(manifest)
    if n == 0:
        raise DatasetError(f"{manifest.root}: the manifest lists no clips; nothing to cache")
    array_path, meta_path = cache_files(manifest, kind, digest, cache_dir)
    meta = _meta(manifest, kind, key, row_shape, dtype)
    cached = _open_if_valid(array_path, meta_path, meta)
    if cached is not None:
        return cached
    if rows is not None:
        memo = {} if memo is None else memo
        wanted = np.unique(np.asarray(rows, dtype=np.int64))
        if len(set(wanted.tolist()) | set(memo)) < PARTIAL_SHARE * n:
            return embed_rows(manifest, config, wanted, memo, (n, *row_shape), dtype, compute,
                              batch_size)

    try:
        array_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"{array_path.parent}: cannot write the {kind} cache ({e}); "
                           f"pass a writable cache_dir") from e
    with exclusive_lock(array_path.with_name(f".{array_path.stem}.lock")):
        cached = _open_if_valid(array_path, meta_path, meta)  # built while this one waited
        if cached is not None:
            return cached
        _build(manifest, config, array_path, meta_path, meta, kind, compute, progress, batch_size)
    return np.load(array_path, mmap_mode="r")


def whole_cache(manifest: Manifest, kind: str, key: dict, row_shape: tuple[int, ...], dtype: str,
                compute: Callable[[], np.ndarray], cache_dir: str | os.PathLike | None = None
                ) -> np.ndarray:
    """A cache whose rows are not computed clip by clip (a row needs other clips too):
    ``compute() -> [n_clips, *row_shape]`` runs once when no valid cache exists; the array is
    written as :func:`_build` writes it (old sidecar first, the array aside and renamed, the
    sidecar last) under the same lock, and read back memory-mapped."""
    array_path, meta_path = cache_files(manifest, kind, _digest(key), cache_dir)
    meta = _meta(manifest, kind, key, row_shape, dtype)
    cached = _open_if_valid(array_path, meta_path, meta)
    if cached is not None:
        return cached
    array_path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(array_path.with_name(f".{array_path.stem}.lock")):
        cached = _open_if_valid(array_path, meta_path, meta)  # built while this one waited
        if cached is not None:
            return cached
        meta_path.unlink(missing_ok=True)
        out = np.asarray(compute(), dtype)
        if list(out.shape) != meta["shape"]:
            raise ValueError(f"the {kind} cache has shape {meta['shape']}, computed {out.shape}")
        with atomic_path(array_path) as tmp, open(tmp, "wb") as f:
            np.save(f, out)
        atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return np.load(array_path, mmap_mode="r")


def _meta(manifest: Manifest, kind: str, key: dict, row_shape: tuple[int, ...], dtype: str) -> dict:
    """What a cache's sidecar records (see the module docstring)."""
    return {"format": CACHE_FORMAT, "kind": kind, "key": key,
            "manifest": manifest_fingerprint(manifest), "shape": [len(manifest), *row_shape],
            "dtype": dtype}


def _build(manifest: Manifest, config: FeatureConfig, array_path: Path, meta_path: Path,
           meta: dict, kind: str, compute: Callable[[np.ndarray], np.ndarray], progress: bool,
           batch_size: int) -> None:
    """Write the cache array and then its sidecar (see the module docstring)."""
    n, row_shape, dtype = meta["shape"][0], tuple(meta["shape"][1:]), meta["dtype"]
    try:
        meta_path.unlink(missing_ok=True)  # a stale sidecar must not outlive its array
    except OSError as e:
        raise DatasetError(f"{array_path.parent}: cannot write the {kind} cache ({e}); "
                           f"pass a writable cache_dir") from e
    with atomic_path(array_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n, *row_shape))
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool, tqdm(
            total=n, unit="clip", desc=f"{kind} cache", disable=not progress
        ) as bar:
            for start in range(0, n, batch_size):
                rows = range(start, min(start + batch_size, n))
                clips = list(pool.map(lambda i: load_clip(manifest, i, config), rows))
                out[start : rows.stop] = compute(np.stack(clips))  # [rows, *row_shape]
                bar.update(len(rows))
        out.flush()
        del out
    atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")


def embed_rows(manifest: Manifest, config: FeatureConfig, rows: np.ndarray, memo: dict,
               shape: tuple[int, ...], dtype: str, compute: Callable[[np.ndarray], np.ndarray],
               batch_size: int) -> np.ndarray:
    """``shape`` zeros with the unique, sorted ``rows`` filled: those in ``memo`` from it, the
    others computed in batches of ``batch_size`` (and added to it), read as :func:`_build` reads
    them; nothing is cached on disk."""
    missing = [int(r) for r in rows if int(r) not in memo]
    for start in range(0, len(missing), batch_size):
        part = missing[start:start + batch_size]
        out = compute(np.stack([load_clip(manifest, i, config) for i in part]))
        memo.update(zip(part, np.asarray(out, dtype=dtype)))
    table = np.zeros(shape, dtype)
    if len(rows):
        table[rows] = np.stack([memo[int(r)] for r in rows])
    return table


def load_clip(manifest: Manifest, i: int, config: FeatureConfig) -> np.ndarray:
    """Row ``i`` as float32 [num_samples]; a failure is the manifest's fault (stale)."""
    clip = manifest.clips[i]
    try:
        return load_audio(Path(manifest.root) / clip.path, sr=config.sample_rate,
                          duration=config.clip_seconds, crop=config.crop)
    except AudioError as e:
        raise DatasetError(
            f"{Path(manifest.root) / clip.path}: listed in {MANIFEST} but cannot be loaded ({e}); "
            f"the manifest is stale, prepare the dataset again"
        ) from e


def _open_if_valid(array_path: Path, meta_path: Path, meta: dict) -> np.ndarray | None:
    """The memory-mapped array when the sidecar and the array match ``meta``, else None."""
    try:
        found = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if found != json.loads(json.dumps(meta)):  # compare as JSON (tuples become lists)
        return None
    try:
        arr = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if arr.shape != tuple(meta["shape"]) or arr.dtype != np.dtype(meta["dtype"]):
        return None
    return arr
