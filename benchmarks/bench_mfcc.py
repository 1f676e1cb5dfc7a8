"""MFCC front end: the TensorFlow batch path against librosa clip by clip, in one run.

1,000 one-second clips (real speech from ../shared/data when present, else tests/data, plus
white noise), default :class:`~kws_proto.audio.features.FeatureConfig`.  librosa runs with its BLAS
limited to one thread (its fastest setting for these tiny products on a busy 2-core machine);
TensorFlow runs in batches of the feature cache's size.  Each side is timed three times,
alternately, and the best time counts.  Prints the times, the ratio (goal >= 5x) and the max abs
difference between the two paths over all clips (goal <= 1e-3).

    python -m benchmarks.run bench_mfcc
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

from kws_proto.audio.loading import load_audio
from kws_proto.data.cache import BATCH_SIZE
from kws_proto.errors import AudioError
from kws_proto.audio.features import FeatureConfig, mfcc, mfcc_batch, mfcc_function

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KWS_SHARED_DATA", REPO.parent / "shared" / "data"))
N_CLIPS = 1000
N_NOISE = 100
BATCH = BATCH_SIZE
ROUNDS = 3


def _speech_paths() -> tuple[list[Path], str]:
    fsdd, pico = SHARED / "fsdd", SHARED / "picovoice"
    if fsdd.is_dir() and pico.is_dir():
        paths = sorted(fsdd.glob("*.wav"))[::4] + sorted(
            p for p in pico.glob("*/*.flac") if p.parent.name != "alexa")[::13]
        return paths, f"real speech from {SHARED}"
    paths = sorted(p for p in (REPO / "tests" / "data").rglob("*") if p.suffix in (".wav", ".flac"))
    return paths, "the real clips of tests/data (repeated)"


def clips(config: FeatureConfig, n: int = N_CLIPS, seed: int = 0) -> tuple[np.ndarray, str]:
    """``[n, num_samples]`` float32: speech cut with ``config.crop``, then noise (random levels)."""
    paths, what = _speech_paths()
    speech = []
    for p in paths:
        try:
            speech.append(load_audio(p, config.sample_rate, config.clip_seconds, config.crop))
        except AudioError:
            continue
    speech = [speech[i % len(speech)] for i in range(n - N_NOISE)]
    rng = np.random.default_rng(seed)
    levels = 10.0 ** rng.uniform(-4, 0, size=(N_NOISE, 1))
    noise = (levels * rng.standard_normal((N_NOISE, config.num_samples))).astype(np.float32)
    what = f"{n - N_NOISE} clips of {what} + {N_NOISE} of noise"
    return np.concatenate([np.stack(speech), noise]), what


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # still a fair measurement on an idle machine
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def main() -> None:
    config = FeatureConfig()
    Y, what = clips(config)
    graph = mfcc_function(config)
    with _one_blas_thread():
        mfcc(Y[0], config)  # warm up librosa's lazy imports and caches
    graph(Y[:BATCH])
    mfcc_batch(Y[:BATCH], config)

    times: dict[str, list[float]] = {"librosa": [], "graph": [], "eager": []}
    for _ in range(ROUNDS):
        with _one_blas_thread():
            t0 = time.perf_counter()
            ref = np.stack([mfcc(y, config) for y in Y])  # [N, T, n_mfcc]
            times["librosa"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fast = np.concatenate([graph(Y[i : i + BATCH]).numpy() for i in range(0, len(Y), BATCH)])
        times["graph"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(0, len(Y), BATCH):
            mfcc_batch(Y[i : i + BATCH], config).numpy()
        times["eager"].append(time.perf_counter() - t0)

    best = {k: min(v) for k, v in times.items()}
    diff = np.abs(fast - ref).max(axis=(1, 2))  # [N]
    print(f"   clips: {what}; features {config.shape} per clip, config {config.digest}")
    print(f"   librosa mfcc, clip by clip            : {best['librosa']:.3f} s")
    print(f"   mfcc_function (tf.function), batch {BATCH}: {best['graph']:.3f} s  "
          f"ratio {best['librosa'] / best['graph']:.1f}x (goal >= 5x)")
    print(f"   mfcc_batch (eager), batch {BATCH}         : {best['eager']:.3f} s  "
          f"ratio {best['librosa'] / best['eager']:.1f}x (op by op, for reference)")
    print(f"   max abs diff over {len(Y)} clips: {diff.max():.2e} (goal <= 1e-3); "
          f"median per clip {np.median(diff):.2e}")


if __name__ == "__main__":
    main()
