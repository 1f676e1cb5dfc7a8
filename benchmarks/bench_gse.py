"""The Google speech embedding and the fused model on TensorFlow and on LiteRT, side by side.

Two measures, each on both backends (``backend="tf"``: the trained member's ``tf.function``
and the GSE's two TFLite files in ``tf.lite.Interpreter``; ``"lite"``: the trained member's
export and the GSE's files in LiteRT's interpreter), the ratio TensorFlow / LiteRT printed:

- ms per clip: :meth:`KeywordSpotter.embed` of ``BATCH`` clips of 1 s (random, 16 kHz), the
  front end included, median over ``ROUNDS`` calls after one warm-up, the backends interleaved;
  for ``default``, ``gse`` and a fused model of the two (``fuse protores_synth gse`` with the centres of
  the clips of tests/data: the centres do not change the speed).  Interpreters at their default
  threads, as the spotter opens them (the trained export: every CPU; the GSE's: the
  interpreter's default).  This is the measure of ``ms_per_clip`` in experiments/fusion_eval.py.
- ``kws-proto classify BANK CLIP`` of one clip with ``gse`` and with the fused model, the whole
  process from start to exit (``$KWS_PROTO_BACKEND=tf`` / ``lite``), median of ``CLI_ROUNDS``.

The LiteRT column needs ``ai-edge-litert`` (``pip install -e '.[lite]'``); everything needs the
``gse`` extra.

    python -m benchmarks.run bench_gse
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_cli import _command, _wall
from benchmarks.bench_spotter import REPO

BATCH = 64
ROUNDS = 15
CLI_ROUNDS = 3
DATA = REPO / "tests" / "data"


def _embed_ms(spotters: dict, audio: np.ndarray) -> dict:
    """``{key: ms per clip}``: median over ROUNDS interleaved calls of each spotter's embed."""
    for s in spotters.values():
        s.embed(audio)  # warm-up: interpreters allocated, graphs traced
    times = {k: [] for k in spotters}
    for _ in range(ROUNDS):
        for k, s in spotters.items():
            t0 = time.perf_counter()
            s.embed(audio)
            times[k].append(time.perf_counter() - t0)
    return {k: 1000 * float(np.median(t)) / len(audio) for k, t in times.items()}


def _classify_s(models: dict, backends: list, tmp: Path) -> dict:
    """``{(name, backend): s}``: median wall time of ``classify`` with each model's bank."""
    from kws_proto.spot.bank import save_bank
    from kws_proto.spot.spotter import KeywordSpotter

    clips = sorted(p for p in DATA.rglob("*") if p.suffix in (".wav", ".flac"))
    kws, argv = _command(), {}
    for name, model in models.items():
        spotter = KeywordSpotter.from_model(model)
        bank = spotter.new_bank()
        spotter.enroll(bank, "digit", clips[:3])
        argv[name] = [*kws, "classify", str(save_bank(bank, tmp / f"{name}.bank.npz")), str(clips[4])]
    times = {(n, b): [] for n in models for b in backends}
    for _ in range(CLI_ROUNDS):
        for n in models:
            for b in backends:
                times[n, b].append(_wall(argv[n], b))
    return {k: float(np.median(t)) for k, t in times.items()}


def _row(label: str, tf_v: float, lite_v: float | None, unit: str, digits: int) -> str:
    lite = f"{lite_v:.{digits}f} {unit}" if lite_v is not None else "n/a"
    ratio = f"{tf_v / lite_v:.2f}x" if lite_v is not None else "-"
    return f"   {label:<22} {tf_v:>8.{digits}f} {unit} {lite:>11} {ratio:>7}"


def main() -> None:
    from kws_proto.spot.fusion import fuse_models
    from kws_proto.spot.lite import litert_available
    from kws_proto.spot.spotter import KeywordSpotter

    backends = ["tf"] + (["lite"] if litert_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fused = tmp / "fused"
        fuse_models(["protores_synth", "gse"], DATA, fused, progress=False)
        models = {"protores_synth": "protores_synth", "gse": "gse",
                  "fused (protores_synth + gse, as default)": str(fused)}
        spotters = {(n, b): KeywordSpotter.from_model(m, backend=b)
                    for n, m in models.items() for b in backends}
        audio = (0.1 * np.random.default_rng(0).standard_normal((BATCH, 16000))).astype(np.float32)
        ms = _embed_ms(spotters, audio)
        wall = _classify_s({"gse": "gse", "fused": str(fused)}, backends, tmp)

    lite = "lite" in backends
    print(f"   ms per 1 s clip, batches of {BATCH}, median of {ROUNDS} (interleaved), "
          f"{len(os.sched_getaffinity(0))} CPUs")
    print(f"   {'model':<22} {'TensorFlow':>11} {'LiteRT':>11} {'ratio':>7}")
    for n in models:
        print(_row(n, ms[n, "tf"], ms[n, "lite"] if lite else None, "ms", 2))
    print(f"   `kws-proto classify BANK CLIP`, whole process, median of {CLI_ROUNDS}")
    for n in ("gse", "fused"):
        print(_row(n, wall[n, "tf"], wall[n, "lite"] if lite else None, "s", 2))
    if not lite:
        print("   (LiteRT column: pip install -e '.[lite]')")


if __name__ == "__main__":
    main()
