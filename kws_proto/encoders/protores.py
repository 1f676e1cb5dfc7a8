"""ProtoRes: the dilated residual encoder with kernels along time only."""

from __future__ import annotations

from kws_proto.encoders.params import choice, input_shape_2d, positive_int, positive_ints
from kws_proto.errors import ConfigError

LAYOUTS = ("temporal", "image")
HEADS = ("avgpool", "global")
BLOCK_TYPES = ("basic", "preact", "bottleneck")
STEM_KERNEL = 3


def build_protores(
    input_shape: tuple[int, int],
    stem_filters: int = 16,
    stem_stride: int = 2,
    filters: tuple[int, ...] = (24, 32, 48),
    dilations: tuple[int, ...] = (1, 2, 4),
    kernel: int = 9,
    layout: str = "temporal",
    head: str = "avgpool",
    block: str = "preact",
):
    """ProtoRes: stem Conv2D (3,1) 'valid', dilated residual blocks, average-pooling head.

    The residual encoder of the TensorFlow 2 prototypical KWS design (REFERENCE.md section 1),
    with the published block's wiring bug fixed (see :mod:`kws_proto.encoders.blocks`). The
    temporal layout is the TC-ResNet idea (Choi et al. 2019, "Temporal convolution for
    real-time keyword spotting on mobile devices", arXiv 1904.03814); TD-ResNet7 of Parnami &
    Lee 2020 (arXiv 2007.14463) is this encoder with (7,1) kernels and ``head="global"``.

    Defaults, chosen from ``python -m benchmarks.run bench_encoders`` (5-way 5-shot 15-query
    training step, 100 clips of 51x40, 2-core CPU; numbers in that benchmark's output):

    - ``layout="temporal"``: MFCC coefficients become channels, so every conv runs over a
      ``[time, 1]`` strip; the image layout runs the same kernels at each of the 40 coefficient
      positions and ends in a 46,080-dim embedding, and is many times slower than conv4 (see
      the benchmark), so it is kept only for comparison.
    - ``head="avgpool"`` (as published): ``(2,1)`` average pooling keeps the coarse time order
      of the word, 24 x 48 = 1,152 dims at 51 frames. ``"global"`` averages over all time into
      48 dims: shift-invariant but order-blind, and a prototype distance over 48 dims has little
      room to separate words; it costs the same time.
    - published widths (16; 24, 32, 48) and kernel 9: a basic-block training step already costs
      a small fraction of conv4's; wider variants are one config word away.
    - ``stem_stride=2`` (published: 1): the stem halves the time resolution (51 frames -> 25),
      so every block does half the work: 12.6x faster than conv4 per training episode against
      7.8x at stride 1 (``bench_encoders``), and trained on the built-in corpus it scored
      higher on real speech (FSDD 5-way 1/5-shot 44.3 / 60.8 against 39.6 / 56.8; Picovoice
      71.5 / 86.0 against 70.9 / 88.0; experiments/README.md).  ``stem_stride=1`` is the
      published encoder.
    - ``block="preact"`` (published: the post-activation ``"basic"`` block): with stride 2,
      trained on the built-in corpus, the full pre-activation block scored FSDD 47.3 / 63.1 and
      Picovoice 78.0 / 89.0 against 44.3 / 60.8 and 71.5 / 86.0 for the basic block, and
      trained faster (experiments/README.md); the bottleneck block scored lower (39.5 / 53.8,
      60.4 / 81.5).

    Parameters
    ----------
    input_shape : tuple of int
        ``(frames, n_mfcc)``; ``frames`` must be at least 3 (4 with ``head="avgpool"``).
    stem_filters : int
        Channels of the stem convolution (kernel ``(3,1)``, 'valid': time shrinks by 2).
    filters : tuple of int
        Output channels of each residual block.
    dilations : tuple of int
        Time dilation of each block; same length as ``filters``.
    kernel : int
        Kernel length along time of the blocks' temporal convolutions.
    layout : {"temporal", "image"}
        ``[time, 1, coeff]`` (coefficients as channels) or ``[time, coeff, 1]``.
    head : {"avgpool", "global"}
        ``AveragePooling2D((2,1))`` + Flatten, or ``GlobalAveragePooling2D``.
    block : {"basic", "preact", "bottleneck"}
        The residual block (:mod:`kws_proto.encoders.blocks`); ``"preact"`` adds the final
        BN -> ReLU that a pre-activation network needs before its head.

    Returns
    -------
    encoder : keras.Model
        Functional model mapping ``x [shape=(batch, frames, n_mfcc)]`` to ``[shape=(batch,
        dim)]``; ``dim`` = ``(frames - 2) // 2 * width * filters[-1]`` for ``"avgpool"`` (width
        1 temporal, ``n_mfcc`` image), ``filters[-1]`` for ``"global"``.
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
