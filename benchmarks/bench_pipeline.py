"""Feeding overhead: a training step fed by the episode pipeline against the bare step.

The bare step trains on episodes already in memory as tensors.  The fed step does everything a
training run does per episode: sample the indices, gather the clips from the memory-mapped
cache, and (augmented) shift + mix background noise into every waveform and compute the MFCC
in the ``tf.data`` graph, prefetched so that this overlaps the step.  The step is ProtoRes
(temporal, the default) on 5-way 5-shot 15-query episodes.  The data are 420 clips of FSDD
(real speech, ../shared/data/fsdd) when present, else 400 synthetic tones, and 30 s of synthetic
noise.  Each pipeline gets one iterator, made once and kept for every round (the augmented
one feeds three variants).  Each round times the bare step, every fed variant (3 episodes
first, off the clock) and the bare step again, alternating the order between rounds; every
measurement starts from an idle process (the prefetch buffers refilled, see ``_settle``), so no
variant's feed work runs in another's time.  The printed figures are medians over rounds, and
"CPU ms" is the process CPU time per episode (all threads) up to the moment the process is idle
again, which shows how much work the feed adds even when it overlaps.  A consumer that sleeps
50 ms per episode (no CPU) shows how much of the feed prefetching hides when a core is free;
on a 2-core machine, the fed step's overhead is the feed's CPU time finding no idle core.  The
step is ``bench_encoders``' (the same figure as that benchmark's ProtoRes row).
Run: ``python -m benchmarks.run bench_pipeline``.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_WAY, K_SHOT, N_QUERY = 5, 5, 15
STEPS = 20  # timed steps per variant and round
WARMUP = 3
SLEEP = 0.05  # the idle consumer's "step"
DRAIN = 10  # episodes the feed-alone variants take off the clock (> the prefetch buffers)
IDLE_WINDOW, IDLE_CPU = 0.05, 0.1  # idle = under 10% of a core over 50 ms
REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("KWS_SHARED_DATA", REPO.parent / "shared" / "data")) / "fsdd"


def _make_dataset(root: Path):
    """A prepared dataset folder of 10 words x about 40 clips, plus 30 s of noise."""
    import soundfile as sf

    from kws_proto.dataset import NOISE_DIR, Clip, load_manifest, write_manifest

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
    """Wait until the process is idle: every prefetch buffer refilled, no feed work running.

    A variant's last episodes leave its pipeline refilling the buffers they emptied; without
    this that work would run (and be charged) inside the next variant's timing.
    """
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        c0 = time.process_time()
        time.sleep(IDLE_WINDOW)
        if time.process_time() - c0 < IDLE_CPU * IDLE_WINDOW:
            return


def _clock(variant) -> tuple[float, float]:
    """(wall, process CPU) seconds per episode of a ``(warm, run)`` pair; ``run()`` runs STEPS
    episodes.

    ``warm()`` runs first, off the clock; the clock starts on an idle process, and its CPU time
    runs until the process is idle again, so that it includes the refill of the prefetch
    buffers that the episodes emptied.  ``run()`` may return ``(wall seconds of STEPS
    episodes, episodes consumed)`` when it times only part of what it consumes.
    """
    warm, run = variant
    warm()
    _settle()
    w0, c0 = time.perf_counter(), time.process_time()
    out = run()
    wall, n = (time.perf_counter() - w0, STEPS) if out is None else out
    _settle()
    return wall / STEPS, (time.process_time() - c0) / n


def _fed(step, it):
    """STEPS steps fed from the iterator ``it`` (after WARMUP steps off the clock)."""
    def warm():
        for _ in range(WARMUP):
            float(step(*next(it)))

    def run():
        for _ in range(STEPS):
            loss = step(*next(it))
        float(loss)

    return warm, run


def _bare(step, ready):
    """STEPS steps on the episodes ``ready`` (tensors in memory), in turn."""
    def warm():
        for i in range(WARMUP):
            float(step(*ready[i % len(ready)]))

    def run():
        for i in range(STEPS):
            loss = step(*ready[i % len(ready)])
        float(loss)

    return warm, run


def _sleep_fed(it):
    """A consumer that uses no CPU: SLEEP seconds per episode, fed from ``it``."""
    def warm():
        for _ in range(WARMUP):
            next(it)

    def run():
        for _ in range(STEPS):
            next(it)
            time.sleep(SLEEP)

    return warm, run


def _feed_only(it):
    """The feed alone, as fast as it goes.  The clock starts with full prefetch buffers, so the
    first DRAIN episodes are taken off the clock: it sees the feed's throughput, not its
    buffers (the CPU time is that of all DRAIN + STEPS episodes, see :func:`_clock`)."""
    def run():
        for _ in range(DRAIN):
            next(it)
        w0 = time.perf_counter()
        for _ in range(STEPS):
            s, q = next(it)
        float(q[0, 0, 0, 0])
        return time.perf_counter() - w0, DRAIN + STEPS

    return (lambda: None), run


def main(rounds: int = 8) -> dict[str, float]:
    """Print ms per episode (wall and process CPU) of every variant and the feeding overhead.

    The overhead of a fed variant is its time over the mean of the two bare measurements that
    frame it in the same round (rounds alternate the order of the variants), median over
    rounds; machine load shared with other processes is thus compared side by side.  Every
    pipeline has one iterator, made once and used in all rounds, and every measurement starts
    from an idle process (:func:`_settle`).

    Returns
    -------
    times : dict
        ``{variant: median wall seconds per episode}``, plus ``{variant + " overhead": ratio}``.
    """
    import tensorflow as tf

    from benchmarks.bench_encoders import INPUT_SHAPE, _train_step
    from kws_proto.augment import AugmentConfig, load_noise
    from kws_proto.cache import feature_cache, waveform_cache
    from kws_proto.dataset import noise_files
    from kws_proto.encoders import encoder_defaults
    from kws_proto.episodes import EpisodeSampler
    from kws_proto.features import FeatureConfig
    from kws_proto.pipeline import EpisodePipeline

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
        gc.collect()  # the iterator of take(8) is done; nothing else runs in the background
        train_step = _train_step("protores", encoder_defaults("protores"))[0]

        def step(support, query):
            return train_step(support, query)[0]  # the loss

        step(*ready[0])  # trace (every episode has the same shapes)
        # one iterator per pipeline, kept for every round (the augmented one serves three
        # variants): no stale iterators, no pipeline start-up inside the rounds
        its = {"augmented": iter(augmented), "plain": iter(plain)}

        bare_key = "bare step (ready tensors)"
        fed = {
            "step fed, augmented (waveform cache)": lambda: _fed(step, its["augmented"]),
            "step fed, plain (feature cache)": lambda: _fed(step, its["plain"]),
            "sleep 50 ms fed, augmented": lambda: _sleep_fed(its["augmented"]),
            "feed alone, augmented": lambda: _feed_only(its["augmented"]),
            "feed alone, plain": lambda: _feed_only(its["plain"]),
        }
        wall = {k: [] for k in [bare_key, *fed]}
        cpu = {k: [] for k in wall}
        ratio = {k: [] for k in fed if k.startswith("step")}
        for r in range(rounds):
            order = list(fed) if r % 2 == 0 else list(fed)[::-1]
            b0 = _clock(_bare(step, ready))
            got = {k: _clock(fed[k]()) for k in order}
            b1 = _clock(_bare(step, ready))
            for k, (w, c) in [(bare_key, b0), (bare_key, b1), *got.items()]:
                wall[k].append(w)
                cpu[k].append(c)
            for k in ratio:
                ratio[k].append(got[k][0] / ((b0[0] + b1[0]) / 2))
        del its, fed
        gc.collect()
    times = {k: float(np.median(v)) for k, v in wall.items()}
    times.update({f"{k} overhead": float(np.median(v)) for k, v in ratio.items()})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"   {N_WAY}-way {K_SHOT}-shot {N_QUERY}-query, ProtoRes temporal, {source}, "
          f"{len(manifest)} clips; {os.cpu_count()} CPU cores, load average {load:.1f}; "
          f"medians of {rounds} rounds of {STEPS} episodes")
    print(f"   {'variant':<38} {'wall ms':>8} {'CPU ms':>7} {'overhead':>9}")
    for k in wall:
        over = f"{100 * (times[k + ' overhead'] - 1):+8.1f}%" if k in ratio else ""
        if k.startswith("sleep"):
            over = f"{100 * (times[k] / SLEEP - 1):+8.1f}%"
        print(f"   {k:<38} {1e3 * times[k]:>8.1f} {1e3 * np.median(cpu[k]):>7.1f} {over:>9}")
    print("   target: fed step within +15% of the bare step (overhead = fed / bare of its round);")
    print("   the idle consumer shows what prefetching hides when a core is free (vs 50 ms)")
    return times


if __name__ == "__main__":
    main()
