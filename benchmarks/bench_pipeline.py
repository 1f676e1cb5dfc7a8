"""Feeding overhead: a training step fed by the episode pipeline against the bare step.

The bare step trains on episodes already in memory as tensors.  The fed step does everything a
training run does per episode: sample the indices, gather the clips from the cache, and
(augmented) shift + mix background noise into every waveform and compute the MFCC in the
``tf.data`` graph, prefetched so that this overlaps the step.  The step is ProtoRes (temporal,
the package defaults; ``bench_encoders``' step) on 5-way 5-shot 15-query episodes.  The data
are 420 clips of FSDD (real speech, ../shared/data/fsdd) when present, else 400 synthetic
tones, and 30 s of synthetic noise.

Both thread layouts of ``train.feed_cores`` are measured, each in its own process (TensorFlow
fixes its thread pools per process): 0, TensorFlow's default pools, every core for the step;
1, one core kept free of the step for the feed (:func:`kws_proto.train.devices.set_feed_cores`).

Timing: this machine's host runs in slow bursts that multiply the CPU time of every op (the
same step has measured 20 ms and 980 ms within a minute), so a median measures the host.  Each
variant is timed in short windows of WINDOW episodes, the variants' windows interleaved round
after round, and the figure is the fastest window: what the code costs when the host lets it
run (``timeit``'s rule).  Every window starts on an idle process (see ``_settle``); a fed
window then starts a fresh iterator of its pipeline and trains LEAD episodes off the clock, so
that it times the feed's steady state with empty prefetch buffers (a kept iterator's buffers,
which autotuning grows to tens of episodes, would fill while idle and serve the window), and
closes it afterwards, so no variant's feed work runs in another's time.  "CPU ms" is the process CPU time per episode (all threads) of the
fastest-CPU window.
Run: ``python -m benchmarks.run bench_pipeline``.
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

N_WAY, K_SHOT, N_QUERY = 5, 5, 15
WINDOW = 5  # timed episodes per window
LEAD = 5  # episodes a fed window runs off the clock, on a fresh iterator
ROUNDS = 20
IDLE_WINDOW, IDLE_CPU = 0.05, 0.1  # idle = under 10% of a core over 50 ms
FEED_CORES = {0: "train.feed_cores 0 (every core for the step)",
              1: "train.feed_cores 1 (one core kept for the feed)"}
REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("KWS_SHARED_DATA", REPO.parent / "shared" / "data")) / "fsdd"


def _make_dataset(root: Path):
    """A prepared dataset folder of 10 words x about 40 clips, plus 30 s of noise."""
    import soundfile as sf

    from kws_proto.data.dataset import NOISE_DIR, Clip, load_manifest, write_manifest

    rng = np.random.default_rng(0)
    clips = []
    if FSDD.is_dir():
        for f in sorted(FSDD.glob("*.wav")):
            digit, speaker, take = f.stem.split("_")
            if int(take) < 7:  # 6 speakers x 7 takes = 42 clips per digit
                (root / f.name).symlink_to(f)
                clips.append(Clip(f.name, f"d{digit}", speaker, 0.5, 8000))
        source = "FSDD"
    else:
        t = np.arange(16000) / 16000
        for w in range(10):
            for n in range(40):
                y = 0.3 * np.sin(2 * np.pi * (200 + 150 * w) * t)
                y += 0.02 * rng.standard_normal(16000)
                sf.write(root / f"w{w}_{n}.wav", y.astype(np.float32), 16000)
                clips.append(Clip(f"w{w}_{n}.wav", f"w{w}", f"s{n % 5}", 1.0, 16000))
        source = "synthetic tones"
    (root / NOISE_DIR).mkdir()
    brown = np.cumsum(rng.standard_normal(30 * 16000))
    brown = (brown - np.convolve(brown, np.ones(400) / 400, mode="same")) / 50  # high-passed
    sf.write(root / NOISE_DIR / "noise.wav", np.clip(brown, -1, 1).astype(np.float32), 16000)
    write_manifest(root, clips)
    return load_manifest(root), source


def _settle(timeout: float = 5.0) -> None:
    """Wait until the process is idle: no feed work running.

    A fed window's closed iterator may still finish the episodes it had in flight; without
    this that work would run (and be charged) inside the next window.
    """
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        c0 = time.process_time()
        time.sleep(IDLE_WINDOW)
        if time.process_time() - c0 < IDLE_CPU * IDLE_WINDOW:
            return


def _window(source, step) -> tuple[float, float]:
    """(wall, process CPU) seconds per episode over WINDOW episodes.

    ``source`` is a list of ready episodes (taken in turn) or a ``tf.data.Dataset``, of which a
    fresh iterator runs LEAD episodes off the clock first and is closed after the window.
    ``step`` None: the feed alone (episodes fetched, nothing trained on them).
    """
    _settle()
    if isinstance(source, list):
        episodes = iter(source * (1 + WINDOW // len(source)))
    else:
        episodes = iter(source)
        for _ in range(LEAD):
            episode = next(episodes)
            if step is not None:
                step(*episode)
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(WINDOW):
        episode = next(episodes)
        out = step(*episode) if step is not None else episode[1][0, 0, 0, 0]
    float(out)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    del episodes  # a dataset iterator stops its threads here
    return wall / WINDOW, cpu / WINDOW


def measure(feed_cores: int, rounds: int = ROUNDS) -> dict:
    """Every variant's windows under ``train.feed_cores = feed_cores``; call before TensorFlow
    runs an op in this process.

    Returns
    -------
    dict
        ``{"source", "clips", "intra_op", "inter_op", "variants": {name: {"wall": [s per
        episode, one per window], "cpu": [...]}}}``.
    """
    from kws_proto.train.devices import set_feed_cores, thread_pools

    if not set_feed_cores(feed_cores):
        raise RuntimeError("TensorFlow already runs in this process: measure in a fresh one")
    import tensorflow as tf

    from benchmarks.bench_encoders import INPUT_SHAPE, _train_step
    from kws_proto.audio.augment import AugmentConfig, load_noise
    from kws_proto.data.cache import feature_cache, waveform_cache
    from kws_proto.data.dataset import noise_files
    from kws_proto.encoders import encoder_defaults
    from kws_proto.data.episodes import EpisodeSampler
    from kws_proto.audio.features import FeatureConfig
    from kws_proto.data.pipeline import EpisodePipeline

    tf.keras.utils.set_random_seed(0)
    fc = FeatureConfig()
    assert tuple(fc.shape) == tuple(INPUT_SHAPE), (fc.shape, INPUT_SHAPE)
    with tempfile.TemporaryDirectory() as tmp:
        manifest, source = _make_dataset(Path(tmp))
        features = feature_cache(manifest, fc, progress=False)
        waves = waveform_cache(manifest, fc, progress=False)
        noise = load_noise(noise_files(tmp), fc.sample_rate)
        sampler = EpisodeSampler(manifest, manifest.keywords, N_WAY, K_SHOT, N_QUERY, seed=0)
        augmented = EpisodePipeline(fc, waveforms=waves, noise=noise, augment=AugmentConfig(),
                                    seed=0).dataset(sampler)
        plain = EpisodePipeline(fc, features=features, seed=0).dataset(sampler)
        ready = [tuple(tf.identity(t) for t in e) for e in augmented.take(8)]
        train_step = _train_step("protores", encoder_defaults("protores"))[0]

        def step(support, query):
            return train_step(support, query)[0]  # the loss

        step(*ready[0])  # trace (every episode has the same shapes)
        variants = {
            "bare step (ready tensors)": lambda: _window(ready, step),
            "step fed, augmented (waveform cache)": lambda: _window(augmented, step),
            "step fed, plain (feature cache)": lambda: _window(plain, step),
            "feed alone, augmented": lambda: _window(augmented, None),
        }
        for v in variants.values():  # warm every path once
            v()
        out = {k: {"wall": [], "cpu": []} for k in variants}
        for r in range(rounds):
            for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
                wall, cpu = variants[k]()
                out[k]["wall"].append(wall)
                out[k]["cpu"].append(cpu)
    return {"source": source, "clips": len(manifest), "variants": out, **thread_pools()}


def main(rounds: int = ROUNDS) -> dict[str, float]:
    """Measure both ``train.feed_cores`` layouts, each in a child process; print the tables.

    The overhead of a fed variant is its fastest window over the bare step's fastest window
    in the same process.

    Returns
    -------
    times : dict
        ``{"<feed_cores>: <variant>": fastest wall seconds per episode}``, plus
        ``{"<feed_cores>: <variant> overhead": ratio}`` for the fed steps.
    """
    times: dict[str, float] = {}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for n, label in FEED_CORES.items():
        cmd = [sys.executable, "-m", "benchmarks.bench_pipeline", "--child", str(n), str(rounds)]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        got = json.loads(done.stdout.strip().splitlines()[-1])
        v = got["variants"]
        bare = min(v["bare step (ready tensors)"]["wall"])
        print(f"   {label}: {got['intra_op']} intra-op / {got['inter_op']} inter-op threads "
              f"(0 = one per core)")
        print(f"   {N_WAY}-way {K_SHOT}-shot {N_QUERY}-query, ProtoRes temporal, {got['source']}, "
              f"{got['clips']} clips; {os.cpu_count()} CPU cores, load average {load:.1f}; "
              f"{rounds} rounds of {WINDOW}-episode windows")
        print(f"   {'variant':<38} {'wall ms':>8} {'(median)':>9} {'CPU ms':>7} {'overhead':>9}")
        for k, m in v.items():
            fastest = min(m["wall"])
            times[f"{n}: {k}"] = fastest
            over = ""
            if k.startswith("step fed"):
                times[f"{n}: {k} overhead"] = fastest / bare
                over = f"{100 * (fastest / bare - 1):+8.1f}%"
            print(f"   {k:<38} {1e3 * fastest:>8.1f} {1e3 * np.median(m['wall']):>9.1f} "
                  f"{1e3 * min(m['cpu']):>7.1f} {over:>9}")
    aug = "step fed, augmented (waveform cache)"
    print(f"   augmented training episode: {1e3 * times[f'1: {aug}']:.1f} ms with a core kept for "
          f"the feed vs {1e3 * times[f'0: {aug}']:.1f} ms with every core for the step "
          f"({times[f'0: {aug}'] / times[f'1: {aug}']:.2f}x)")
    print("   target: fed step within +15% of the bare step of the same thread layout (fastest "
          "windows;\n   the median column shows the host's slow bursts)")
    return times


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # one thread layout, in a fresh process: JSON on stdout
        print(json.dumps(measure(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        main()
