"""The keyword commands as a user runs them: wall time of the whole process, from start to exit,
on the TensorFlow path and the LiteRT path side by side (``$KWS_PROTO_BACKEND=tf`` / ``lite``).

Commands (the shipped default encoder; a bank of three keywords made once beforehand):

- ``kws-proto --help`` and ``kws-proto bank BANK`` (goal: instant, no model loaded);
- ``kws-proto enroll`` of five clips into a fresh bank;
- ``kws-proto classify BANK CLIP`` of one clip (goal <= 1.5 s);
- ``kws-proto detect BANK MINUTE.wav`` on a minute of audio (goal <= 2.5 s; the stream of
  :mod:`benchmarks.bench_spotter`).

Each is run ``ROUNDS`` times, the two paths interleaved, and the median reported with the ratio
TensorFlow / LiteRT.  The LiteRT column needs ``ai-edge-litert`` (``pip install -e '.[lite]'``).

    python -m benchmarks.run bench_cli
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_spotter import MINUTE, REPO, _keyword_files, _stream

ROUNDS = 5
GOALS = {"classify": 1.5, "detect": 2.5}


def _command() -> list[str]:
    script = Path(sys.executable).with_name("kws-proto")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kws_proto.cli"]


def _wall(argv: list[str], backend: str) -> float:
    env = {**os.environ, "KWS_PROTO_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    import soundfile as sf

    from kws_proto.spot.bank import save_bank
    from kws_proto.spot.lite import litert_available
    from kws_proto.spot.spotter import KeywordSpotter

    backends = ["tf"] + (["lite"] if litert_available() else [])
    kws = _command()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spotter = KeywordSpotter.from_model("default")
        support, stream_files, source = _keyword_files()
        bank = spotter.new_bank()
        for name, files in support.items():
            spotter.enroll(bank, name, files)
        bank_path = save_bank(bank, tmp / "three.bank.npz")
        minute = tmp / "minute.wav"
        sf.write(minute, _stream(spotter, stream_files, MINUTE), spotter.features.sample_rate)
        first = next(iter(support.values()))
        commands = {
            "--help": [*kws, "--help"],
            "bank": [*kws, "bank", str(bank_path)],
            "enroll": [*kws, "enroll", "default", "--bank", str(tmp / "new.bank.npz"),
                       "--keyword", "k", *map(str, first)],
            "classify": [*kws, "classify", str(bank_path), str(stream_files[0])],
            "detect": [*kws, "detect", str(bank_path), str(minute)],
        }
        times = {(c, b): [] for c in commands for b in backends}
        for _ in range(ROUNDS):
            for name, argv in commands.items():
                for b in backends:
                    (tmp / "new.bank.npz").unlink(missing_ok=True)
                    times[name, b].append(_wall(argv, b))
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"   wall time of the whole process, median of {ROUNDS} (interleaved), "
          f"{os.cpu_count()} cores; default encoder; detect on {MINUTE:.0f} s ({source})")
    print(f"   {'command':<10} {'TensorFlow':>11} {'LiteRT':>11} {'ratio':>7}  goal")
    for name in commands:
        tf_s = float(np.median(times[name, "tf"]))
        if "lite" in backends:
            lite_s = float(np.median(times[name, "lite"]))
            lite, ratio = f"{lite_s:.2f} s", f"{tf_s / lite_s:.1f}x"
        else:
            lite, ratio = "n/a", "-"
        goal = f"<= {GOALS[name]} s" if name in GOALS else ("instant" if name in ("--help", "bank") else "")
        print(f"   {name:<10} {tf_s:>9.2f} s {lite:>11} {ratio:>7}  {goal}")
    if "lite" not in backends:
        print("   (LiteRT column: pip install -e '.[lite]')")


if __name__ == "__main__":
    main()
