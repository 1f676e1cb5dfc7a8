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

    The defaults were chosen by measurement on real speech none of the encoders trained on
    (stride, head, kernel, block type, widths, layout: experiments/ablation.md): the temporal
    layout is what makes ProtoRes cheap (coefficients as channels; the image layout ends in a
    46,080-dim embedding and trains slower than conv4), and ``block`` "basic" beat the
    pre-activation and bottleneck blocks there.

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

    import keras  # lazy: TensorFlow
    from keras import layers  # lazy: TensorFlow

    from kws_proto.encoders.blocks import BLOCKS, along  # lazy: TensorFlow

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
