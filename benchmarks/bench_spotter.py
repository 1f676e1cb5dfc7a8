"""Keyword spotting speed: embedding latency per clip (Keras vs TFLite, one core) and the
real-time factor of ``detect`` on a minute of audio (all cores).

The model is ``$KWS_BENCH_MODEL`` (a run directory) when set, else the shipped default encoder,
else the default ProtoRes of ``experiments/configs/demo/protores.yaml`` with untrained weights
(speed does not depend on the weight values).  Both latency paths include the front end: raw
1 s of 16 kHz audio in, embedding out, one clip per call.

- Keras: :meth:`KeywordSpotter.embed` on the TensorFlow backend (the in-graph MFCC and the
  Keras encoder in one ``tf.function``); TFLite: the exported ``.tflite`` in the TFLite interpreter with one thread.
  Measured in a child process pinned to one CPU with TensorFlow's thread pools at one thread;
  median over ``LATENCY_CALLS`` calls after warm-up.
- detect: a bank of three keywords and 60 s of audio (real speech from ../shared/data when
  present, else the clips of tests/data, between stretches of noise), 1 s windows every 100 ms;
  best of ``ROUNDS`` runs of :meth:`KeywordSpotter.detect` on the TensorFlow backend (reading
  the file included), goal RTF <= 0.05 on 2 cores.  The whole commands, start to exit, on both
  backends: :mod:`benchmarks.bench_cli`.

    python -m benchmarks.run bench_spotter
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KWS_SHARED_DATA", REPO.parent / "shared" / "data"))
LATENCY_CALLS = 200
ROUNDS = 3
MINUTE = 60.0


def _model(tmp: Path) -> tuple[Path, str]:
    """A run directory to measure, and what it is."""
    if os.environ.get("KWS_BENCH_MODEL"):
        return Path(os.environ["KWS_BENCH_MODEL"]), f"$KWS_BENCH_MODEL={os.environ['KWS_BENCH_MODEL']}"
    from kws_proto.model.pretrained import MODELS_DIR, TRAINED

    if (MODELS_DIR / TRAINED / "best.weights.h5").is_file():
        return MODELS_DIR / TRAINED, "the shipped trained encoder (the default's trained member)"
    from kws_proto.config import load_config
    from kws_proto.model.loading import build_network, save_weights
    from kws_proto.model.runs import RunDir

    cfg = load_config(REPO / "experiments" / "configs" / "demo" / "protores.yaml")
    run = RunDir(tmp / "untrained")
    run.write_config(cfg)
    save_weights(build_network(cfg).encoder, run.best_weights)
    return run.root, "untrained default ProtoRes (demo/protores.yaml; no shipped model)"


def _keyword_files() -> tuple[dict, list[Path], str]:
    """``{keyword: 5 support clips}``, clips to build the stream from, and where they come from."""
    pico = SHARED / "picovoice"
    if pico.is_dir():
        files = {w: sorted((pico / w).glob("*.flac"))[:25] for w in ("computer", "jarvis", "snowboy")}
        return ({w: f[:5] for w, f in files.items()}, [p for f in files.values() for p in f[5:]],
                f"Picovoice clips from {pico}")
    data = REPO / "tests" / "data"
    fsdd, pico = sorted((data / "fsdd").glob("*.wav")), sorted((data / "picovoice").rglob("*.flac"))
    return ({"a": fsdd[:2], "b": fsdd[2:], "c": pico}, fsdd + pico,
            "the clips of tests/data (repeated)")


def _latency_child(run_dir: str, tflite: str) -> None:
    """In a child process: one CPU, one thread; print JSON latencies in ms."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from kws_proto.spot.export import load_exported
    from kws_proto.spot.spotter import KeywordSpotter

    spotter = KeywordSpotter.from_model(run_dir, backend="tf")
    lite = load_exported(tflite, num_threads=1)
    clip = (0.1 * np.random.default_rng(0).standard_normal((1, spotter.features.num_samples))
            ).astype(np.float32)
    out = {}
    for name, fn in (("keras", spotter.embed), ("tflite", lite)):
        for _ in range(20):
            fn(clip)
        times = []
        for _ in range(LATENCY_CALLS):
            t0 = time.perf_counter()
            fn(clip)
            times.append(time.perf_counter() - t0)
        out[name] = 1000 * float(np.median(times))
    print(json.dumps(out))


def _stream(spotter, files: list[Path], seconds: float, seed: int = 0) -> np.ndarray:
    """``seconds`` of audio: the clips' loudest seconds between 0.5-2 s of faint noise."""
    rng = np.random.default_rng(seed)
    clips = spotter.load_clips(files)
    sr, parts, n, i = spotter.features.sample_rate, [], 0, 0
    while n < seconds * sr:
        gap = (0.003 * rng.standard_normal(int(rng.uniform(0.5, 2.0) * sr))).astype(np.float32)
        parts += [gap, clips[i % len(clips)]]
        n += len(gap) + clips.shape[1]
        i += 1
    return np.concatenate(parts)[: int(seconds * sr)]


def main() -> None:
    import soundfile as sf

    from kws_proto.spot.export import export_model
    from kws_proto.spot.spotter import KeywordSpotter

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_dir, what = _model(tmp)
        spotter = KeywordSpotter.from_model(run_dir, backend="tf")
        tflite = export_model(spotter, tmp / "embedder.tflite", "tflite")
        child = subprocess.run(
            [sys.executable, "-c", "import sys; from benchmarks.bench_spotter import _latency_child;"
             " _latency_child(sys.argv[1], sys.argv[2])", str(run_dir), str(tflite)],
            capture_output=True, text=True, cwd=REPO, check=True)
        ms = json.loads(child.stdout.strip().splitlines()[-1])

        support, stream_files, source = _keyword_files()
        bank = spotter.new_bank()
        for name, files in support.items():
            spotter.enroll(bank, name, files)
        wav = tmp / "minute.wav"
        sf.write(wav, _stream(spotter, stream_files, MINUTE), spotter.features.sample_rate)
        spotter.detect(bank, wav)  # warm-up: traces the batch shapes
        runs = [spotter.detect(bank, wav) for _ in range(ROUNDS)]
        best = min(runs, key=lambda r: r.seconds)

    print(f"   model: {what}; {spotter.encoder}, {spotter.embedding_dim}-dim embedding")
    print(f"   embedding latency per 1 s clip, one core, front end included (median of "
          f"{LATENCY_CALLS}):")
    print(f"      Keras (tf.function: in-graph MFCC + encoder): {ms['keras']:.2f} ms")
    print(f"      TFLite interpreter, 1 thread                : {ms['tflite']:.2f} ms  "
          f"(ratio Keras / TFLite {ms['keras'] / ms['tflite']:.2f}x)")
    print(f"   detect on {best.duration:.0f} s of audio ({source} and noise), {best.windows} windows "
          f"every {best.hop * 1000:.0f} ms, {os.cpu_count()} cores: {best.seconds:.2f} s, "
          f"real-time factor {best.rtf:.4f} (goal <= 0.05); {len(best.events)} events")


if __name__ == "__main__":
    main()
