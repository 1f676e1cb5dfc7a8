"""Training-episode time of every encoder variant, side by side, as a ratio to conv4.

One step = forward + backward + Adam update of :class:`PrototypicalNetwork` on a 5-way 5-shot
15-query episode: 100 clips of 51 x 40 MFCC (1 s, 40 ms window, 20 ms hop, 40 MFCC), inside one
``tf.function``. Variants are timed in interleaved rounds, each in a fresh random order, so
machine load hits all alike; the printed figures are medians over rounds.
Run: ``python -m benchmarks.run bench_encoders``.
"""

from __future__ import annotations

import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_WAY, K_SHOT, N_QUERY = 5, 5, 15
INPUT_SHAPE = (51, 40)
TARGET_SECONDS = 0.4  # each timed measurement lasts about this long

# ProtoRes as published (temporal layout); the other protores rows change the words shown,
# either from the published encoder or from the package defaults.
PUBLISHED = {"stem_filters": 16, "stem_stride": 1, "filters": (24, 32, 48), "dilations": (1, 2, 4),
             "kernel": 9, "layout": "temporal", "head": "avgpool", "block": "basic"}


def _variants() -> list[tuple[str, str, dict]]:
    """(label, encoder name, params) of every timed encoder."""
    from kws_proto.encoders import encoder_defaults

    default = encoder_defaults("protores")
    return [
        ("conv4 (64 filters)", "conv4", {"filters": 64}),
        ("protores (package defaults)", "protores", default),
        ("published, image layout", "protores", {**PUBLISHED, "layout": "image"}),
        ("published (temporal)", "protores", PUBLISHED),
        ("published + stem stride 2", "protores", {**PUBLISHED, "stem_stride": 2}),
        ("defaults, avgpool head", "protores", {**default, "head": "avgpool"}),
        ("defaults, kernel 9", "protores", {**default, "kernel": 9}),
        ("defaults, last block 64", "protores", {**default, "filters": (24, 32, 64)}),
        ("defaults, preact blocks", "protores", {**default, "block": "preact"}),
        ("defaults, bottleneck blocks", "protores", {**default, "block": "bottleneck"}),
        ("defaults, wide (32; 48, 64, 96)", "protores",
         {**default, "stem_filters": 32, "filters": (48, 64, 96)}),
        ("ensemble of 2 defaults", "ensemble", {"member": "protores", "members": 2}),
        ("ensemble of 3 defaults", "ensemble", {"member": "protores", "members": 3}),
    ]


def _train_step(name: str, params: dict):
    """A compiled training step of a fresh model; returns (step, embedding dim, n params)."""
    import keras
    import tensorflow as tf

    from kws_proto.config import ModelConfig
    from kws_proto.encoders import build_encoder
    from kws_proto.model.protonet import PrototypicalNetwork

    encoder = build_encoder(name, INPUT_SHAPE, **params)
    model = PrototypicalNetwork(encoder, groups=ModelConfig(encoder=name, params=params).groups)
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step(support, query):
        with tf.GradientTape() as tape:
            loss, acc = model(support, query, training=True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, acc

    return step, int(encoder.output_shape[-1]), encoder.count_params()


def _orientation_steps() -> dict:
    """Forward+backward of ProtoRes's largest conv (48 -> 48, kernel 9, dilation 4) on 100 clips
    of 49 frames, with time on the height axis ([T, 1, C], kernel (9,1)) or on the width axis
    ([1, T, C], kernel (1,9)): the same arithmetic on the same bytes, two orientations."""
    import keras
    import tensorflow as tf

    out = {}
    for label, shape, kernel, dilation in [
        ("time on height [T,1,C]", (100, 49, 1, 48), (9, 1), (4, 1)),
        ("time on width  [1,T,C]", (100, 1, 49, 48), (1, 9), (1, 4)),
    ]:
        conv = keras.layers.Conv2D(48, kernel, padding="same", dilation_rate=dilation,
                                   use_bias=False)
        conv.build(shape)
        x = tf.random.stateless_normal(shape, seed=(0, 0))

        @tf.function
        def step(x, conv=conv):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.square(conv(x)))
            return tape.gradient(loss, [x, conv.kernel])[0][0, 0, 0, 0]

        step(x)  # trace
        out[label] = lambda step=step, x=x: step(x)
    return out


def _seconds(fn, n: int) -> tuple[float, float]:
    """(wall, process CPU) seconds per call over ``n`` consecutive calls of ``fn``."""
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        out = fn()
    float(out)  # wait for the last call to finish
    return (time.perf_counter() - w0) / n, (time.process_time() - c0) / n


def _interleaved(fns: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per call of each ``fns[label]()``, in interleaved rounds
    (each round in a fresh random order)."""
    reps = {label: max(1, int(TARGET_SECONDS / max(_seconds(fn, 1)[0], 1e-4)))
            for label, fn in fns.items()}
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in fns}
    order = np.random.default_rng(0)
    for _ in range(rounds):
        for label in order.permutation(list(fns)):  # no variant always runs right after conv4
            samples[label].append(_seconds(fns[label], reps[label]))
    return {label: tuple(np.median(np.asarray(s), axis=0)) for label, s in samples.items()}


def main(rounds: int = 7) -> dict[str, tuple[float, float]]:
    """Print the per-episode training time of each variant and its speed-up over conv4.

    Returns
    -------
    times : dict
        ``{label: (wall, CPU) seconds per training step}`` (medians over ``rounds``).
    """
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    support = tf.constant(rng.standard_normal((N_WAY, K_SHOT, *INPUT_SHAPE), dtype=np.float32))
    query = tf.constant(rng.standard_normal((N_WAY, N_QUERY, *INPUT_SHAPE), dtype=np.float32))

    steps, info = {}, {}
    variants = _variants()
    for label, name, params in variants:
        step, dim, n_params = _train_step(name, params)
        step(support, query)  # trace
        steps[label] = lambda step=step: step(support, query)[0]
        info[label] = (dim, n_params)
    times = _interleaved(steps, rounds)
    conv_times = _interleaved(_orientation_steps(), rounds)

    base_wall, base_cpu = times[variants[0][0]]
    print(f"   {N_WAY}-way {K_SHOT}-shot {N_QUERY}-query training step (forward, backward, Adam) "
          f"on {N_WAY * (K_SHOT + N_QUERY)} clips of {INPUT_SHAPE[0]}x{INPUT_SHAPE[1]}; "
          f"median of {rounds} interleaved rounds; {os.cpu_count()} CPU cores; wall time and "
          f"process CPU time (less sensitive to other load) per episode")
    print(f"   protores defaults: {variants[1][2]}")
    print(f"   {'encoder':<40} {'dim':>6} {'params':>7} {'wall ms':>8} {'vs conv4':>8} "
          f"{'CPU ms':>8} {'vs conv4':>8}")
    for label, (wall, cpu) in times.items():
        dim, n_params = info[label]
        print(f"   {label:<40} {dim:>6} {n_params:>7} {1e3 * wall:>8.1f} {base_wall / wall:>7.1f}x "
              f"{1e3 * cpu:>8.1f} {base_cpu / cpu:>7.1f}x")
    print("   one temporal conv 48->48, kernel 9, dilation 4, 100 clips x 49 frames, fwd+bwd:")
    first_wall, first_cpu = next(iter(conv_times.values()))
    for label, (wall, cpu) in conv_times.items():
        print(f"   {label:<40} wall {1e3 * wall:>6.2f} ms {first_wall / wall:>5.2f}x   "
              f"CPU {1e3 * cpu:>6.2f} ms {first_cpu / cpu:>5.2f}x")
    return times


if __name__ == "__main__":
    main()
