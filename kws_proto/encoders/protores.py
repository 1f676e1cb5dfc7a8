"""ProtoRes: the dilated residual encoder with kernels along time only."""

from __future__ import annotations

from kws_proto.encoders.params import choice, input_shape_2d, positive_int, positive_ints
from kws_proto.encoders.registry import register
from kws_proto.errors import ConfigError

LAYOUTS = ("temporal", "image")
HEADS = ("global", "avgpool")
BLOCK_TYPES = ("basic", "preact", "bottleneck")
STEM_KERNEL = 3


@register("protores")
def build_protores(
    input_shape: tuple[int, int],
    stem_filters: int = 16,
    stem_stride: int = 2,
    filters: tuple[int, ...] = (24, 32, 48),
    dilations: tuple[int, ...] = (1, 2, 4),
    kernel: int = 7,
    layout: str = "temporal",
    head: str = "global",
    block: str = "basic",
):
    """ProtoRes: a stem Conv2D of 3 frames, dilated residual blocks along time, a pooling head.

    The residual encoder of the TensorFlow 2 prototypical KWS design (REFERENCE.md section 1),
    with the published block's wiring bug fixed (see :mod:`kws_proto.encoders.blocks`). The
    temporal layout is the TC-ResNet idea (Choi et al. 2019, "Temporal convolution for
    real-time keyword spotting on mobile devices", arXiv 1904.03814). The defaults are TD-ResNet7
    of Parnami & Lee 2020 ("Few-shot keyword spotting with prototypical networks", arXiv
    2007.14463: temporal layout, blocks of 24/32/48 filters dilated 1/2/4, kernels of 7, global
    average pooling) with a stem of stride 2. The published ProtoRes is ``stem_stride=1,
    kernel=9, head="avgpool"``.

    How the defaults were chosen. Speed: ``python -m benchmarks.run bench_encoders`` (5-way
    5-shot 15-query training step, 100 clips of 51 x 40, 2-core CPU shared with other jobs):
    per training episode the defaults ran 10.0x, 11.0x and 12.9x faster than conv4 in three runs
    (e.g. 18.4 against 202.8 ms wall; 11.7-14.7x in CPU time), the published ProtoRes
    5.7-7.3x.
    Accuracy: trained on the built-in synthetic corpus (3,000 5-way 5-shot episodes, seed 0),
    tested on unseen real speech, 5-way 1-shot / 5-shot, 1,000 episodes
    (``kws-proto eval --data data/fsdd --speaker-disjoint`` and ``--data data/picovoice``; the
    ablation of experiments/README.md):

    - ``layout="temporal"``: the image layout runs the same kernels at each of the 40
      coefficient positions, ends in a 46,080-dim embedding and trains several times *slower*
      than conv4; the temporal layout, coefficients as channels, is what makes ProtoRes cheap.
      Time lies on the width axis (``[1, time, coeff]``): the same arithmetic as ``[time, 1,
      coeff]``, and TensorFlow's oneDNN convolutions ran it 1.03x (idle machine) to 2x (loaded)
      faster, never slower (the benchmark's last lines).
    - ``stem_stride=2``: the blocks run on 25 frames instead of 49 (their receptive field still
      spans the clip) and a training step is ~1.5x cheaper; accuracy rose (basic block,
      avgpool head: FSDD 39.6 / 56.8 -> 44.3 / 60.8, Picovoice 70.9 / 88.0 -> 71.5 / 86.0).
    - ``head="global"``: time-averaged 48-dim embeddings, blind to where the word sits in the
      clip. With stride 2 it beat the published ``(2,1)`` average pooling (576 dims):
      FSDD 48.2 / 63.3 against 44.3 / 60.8, Picovoice 73.9 / 86.9 against 71.5 / 86.0.
    - ``kernel=7`` (TD-ResNet7's): FSDD 50.0 / 65.9 and 52.2 / 67.1 (training seeds 0 and 1),
      Picovoice 77.5 / 89.1 and 76.2 / 88.4, against 48.2 / 63.3 and 73.9 / 86.9 with
      kernel 9, and a step ~1.2x cheaper. conv4 on the same protocol (1,500 episodes):
      FSDD 48.5 / 65.1, Picovoice 62.1 / 83.2.
    - ``block="basic"``: with the global head, full pre-activation blocks scored FSDD
      47.3 / 62.0, Picovoice 72.7 / 83.3 (kernel 7) and 50.0 / 64.3, 74.1 / 85.3 (kernel 9).
      Pre-activation did better with the avgpool head (kernel 9: 47.3 / 63.1, 78.0 / 89.0;
      kernel 7: 41.4 / 56.3, 76.5 / 87.8), still short of the defaults on FSDD; the
      bottleneck block scored lower (global, kernel 7: 46.6 / 61.1, 72.6 / 85.8; avgpool,
      kernel 9: 39.5 / 53.8, 60.4 / 81.5).
    - widths 16; 24, 32, 48 (published): a last block of 64 (64-dim embedding) scored no better
      (48.4 / 64.7, 75.9 / 88.0 with kernel 9) at ~1.25x the cost.

    Parameters
    ----------
    input_shape : tuple of int
        ``(frames, n_mfcc)``; ``frames`` must be at least 3 (``3 + stem_stride`` with
        ``head="avgpool"``).
    stem_filters : int
        Channels of the stem convolution (3 frames, 'valid').
    stem_stride : int
        Time stride of the stem: ``T' = (frames - 3) // stem_stride + 1`` frames reach the
        blocks (1 as published).
    filters : tuple of int
        Output channels of each residual block.
    dilations : tuple of int
        Time dilation of each block; same length as ``filters``.
    kernel : int
        Kernel length along time of the blocks' temporal convolutions.
    layout : {"temporal", "image"}
        ``[1, time, coeff]`` (coefficients as channels) or ``[time, coeff, 1]`` (a picture).
    head : {"global", "avgpool"}
        ``GlobalAveragePooling2D``, or average pooling of 2 frames + Flatten (as published).
    block : {"basic", "preact", "bottleneck"}
        The residual block (:mod:`kws_proto.encoders.blocks`); ``"preact"`` adds the final
        BN -> ReLU that a pre-activation network needs before its head.

    Returns
    -------
    encoder : keras.Model
        Functional model mapping ``x [shape=(batch, frames, n_mfcc)]`` to ``[shape=(batch,
        dim)]``; ``dim = filters[-1]`` for ``"global"`` and ``T' // 2 * width * filters[-1]``
        for ``"avgpool"`` (``width`` 1 temporal, ``n_mfcc`` image).
    """
    frames, n_mfcc = input_shape_2d(input_shape)
    stem_filters = positive_int("stem_filters", stem_filters)
    stem_stride = positive_int("stem_stride", stem_stride)
    filters = positive_ints("filters", filters)
    dilations = positive_ints("dilations", dilations)
    if len(filters) != len(dilations):
        raise ConfigError(
            f"filters={filters} and dilations={dilations} must have the same length "
            "(one dilation per block)"
        )
    kernel = positive_int("kernel", kernel)
    layout = choice("layout", layout, LAYOUTS)
    head = choice("head", head, HEADS)
    block = choice("block", block, BLOCK_TYPES)
    min_frames = STEM_KERNEL + (stem_stride if head == "avgpool" else 0)
    if frames < min_frames:
        raise ConfigError(
            f"protores input_shape=({frames}, {n_mfcc}) is too short: head={head!r} needs "
            f"at least {min_frames} frames"
        )

    import keras
    from keras import layers

    from kws_proto.encoders.blocks import BLOCKS, along

    inputs = keras.Input(shape=(frames, n_mfcc), name="mfcc")
    if layout == "temporal":
        time_axis = 2
        x = layers.Reshape((1, frames, n_mfcc), name="to_temporal")(inputs)  # B x 1 x T x C
    else:
        time_axis = 1
        x = layers.Reshape((frames, n_mfcc, 1), name="to_image")(inputs)  # B x T x C x 1
    x = layers.Conv2D(stem_filters, along(STEM_KERNEL, time_axis),
                      strides=along(stem_stride, time_axis), padding="valid", name="stem")(x)
    # x: B x 1 x T' x stem_filters (temporal) or B x T' x C x stem_filters (image),
    # T' = (T - 3) // stem_stride + 1
    for i, (f, d) in enumerate(zip(filters, dilations)):
        x = BLOCKS[block](f, kernel=kernel, dilation=d, time_axis=time_axis,
                          name=f"block{i + 1}")(x)
    if block == "preact":
        x = layers.BatchNormalization(name="post_bn")(x)
        x = layers.ReLU(name="post_relu")(x)
    if head == "avgpool":
        x = layers.AveragePooling2D(along(2, time_axis), name="avgpool")(x)  # T' -> T' // 2
        x = layers.Flatten(name="flatten")(x)  # B x (T' // 2 * width * filters[-1])
    else:
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)  # B x filters[-1]
    return keras.Model(inputs, x, name="protores")
